/* What `tandem train`, `eval` and `sample` share: from command-line options,
 * load the data a zoo model needs, build the model and a batch source, and
 * describe both to the training loop (optim/train.h). */
#ifndef TD_SETUP_H
#define TD_SETUP_H

#include <stddef.h>

#include "graph/tandem.h"
#include "io/source.h"
#include "optim/train.h"
#include "tools/models/models.h"

/* The command-line options of a zoo model's struct td_model_config, as
 * entries of a struct td_opt array (tools/cli.h). */
#define TD_MODEL_OPTS(mc)                                                                          \
    {"--layers", TD_OPT_INT32, &(mc).layers, 1, 1024},                                             \
        {"--d-model", TD_OPT_INT32, &(mc).d_model, 1, 1 << 20},                                    \
        {"--heads", TD_OPT_INT32, &(mc).heads, 1, 4096},                                           \
        {"--context", TD_OPT_INT32, &(mc).context, 1, 1 << 20},                                    \
    {                                                                                              \
        "--dropout", TD_OPT_FLOAT, &(mc).dropout, 0, 0.99                                          \
    }

struct td_setup_config {
    const char *model;         /* zoo name */
    struct td_model_config mc; /* model options; unset fields take the model's defaults */
    const char *data;          /* images: an IDX directory (Fashion-MNIST) or HDF5 (x, y) */
    const char *test_data;     /* HDF5 evaluation set when data is HDF5; NULL: none */
    const char *text;          /* text models: a file of bytes */
    double val_fraction;       /* text: the last fraction held out for validation */
    long long batch;           /* per rank: the global batch is batch * ranks */
    long long seed;            /* initialisation and batch order */
    int rank, ranks;           /* this process's share of every global batch (0 of 1 alone) */
};

struct td_setup {
    const struct td_model_info *info;
    struct td_data_desc desc;
    struct td_dataset train, test;
    int has_test;
    struct td_text text;
    struct td_graph *g;
    struct td_model m;
    struct td_source src;
    struct td_train_model tm;
    char model_config[256]; /* td_model_config_format of the options used */
};

/* Loads the data (images for image models, c->text for text models),
 * builds the model and the source. Returns TD_OK or an
 * error with a message in err (unknown model, missing data, a model that
 * does not take that data, a bad option). Free with td_setup_free, also
 * after a failure. */
enum td_status td_setup_init(struct td_setup *s, const struct td_setup_config *c, char *err,
                             size_t errlen);
void td_setup_free(struct td_setup *s);

/* The metadata weights.h5 records for this model (points into s). */
struct td_weights_meta td_setup_meta(const struct td_setup *s);

#endif
