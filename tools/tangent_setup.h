/* What `tandem ntk`, `curvature`, `ntk-predict` and `train
 * --track-curvature` share: a zoo model with its data and (optionally)
 * trained weights, as a struct td_tangent_model the tangent tools rebuild
 * at any batch size, and fixed sample sets picked from its data. */
#ifndef TD_TANGENT_SETUP_H
#define TD_TANGENT_SETUP_H

#include <stddef.h>
#include <stdint.h>

#include "optim/tangent_model.h"
#include "tools/setup.h"

/* The command-line options naming a model, its weights and its data, as
 * entries of a struct td_opt array (tools/cli.h): sc a struct
 * td_setup_config, weights a const char *. */
#define TD_TANGENT_DATA_OPTS(sc, weights)                                                          \
    {"--model", TD_OPT_STR, &(sc).model, 0, 0}, {"--weights", TD_OPT_STR, &(weights), 0, 0},       \
        {"--data", TD_OPT_STR, &(sc).data, 0, 0},                                                  \
        {"--test-data", TD_OPT_STR, &(sc).test_data, 0, 0},                                        \
        {"--text", TD_OPT_STR, &(sc).text, 0, 0},                                                  \
        {"--val-fraction", TD_OPT_FLOAT, &(sc).val_fraction, 0, 0.9}, TD_MODEL_OPTS((sc).mc)

/* The builder's context: a zoo model for one kind of data, dropout off. */
struct td_zoo_builder {
    const struct td_model_info *info;
    struct td_data_desc desc;
    struct td_model_config mc;
};

/* td_tangent_model's build for a zoo model: inputs {x}, output the logits. */
enum td_status td_zoo_build(void *ctx, struct td_graph *g, int64_t batch,
                            struct td_tangent_net *net);

struct td_tangent_setup {
    struct td_setup s;        /* data, and the model at sc->batch holding the values */
    struct td_zoo_builder zb; /* how to rebuild it */
    struct td_tangent_model tm;
    char model_name[256], model_config[256]; /* read from the weights file */
};

/* Loads what c names (the model and its options default to those recorded
 * in `weights`; weights NULL: the model's initial values from c->seed),
 * imports the weights into s.g and describes the model to the tangent
 * tools. c is modified (model and options filled in). Returns TD_OK or an
 * error with a message in err. Free with td_tangent_setup_free, also after
 * a failure. */
enum td_status td_tangent_setup_init(struct td_tangent_setup *t, struct td_setup_config *c,
                                     const char *weights, char *err, size_t errlen);
void td_tangent_setup_free(struct td_tangent_setup *t);

/* n samples starting at `offset` of the training ("train") or test
 * ("test") part: image models' pictures and labels, text models' windows
 * of context tokens (consecutive, from the start of the part) and their
 * next-token targets. Arrays point into the dataset or are owned here. */
struct td_samples {
    struct td_tangent_data data; /* x[0]: the model's input for n samples */
    const int32_t *labels;       /* [n] or [n, context] */
    int64_t n, offset;
    const char *part;
    void *owned_x, *owned_y;
};

/* Errors (TD_ERR_ARG) before anything is allocated: an unknown part, a
 * part the data lacks, n < 1, or offset + n beyond the samples there are
 * ("--n 20000 from offset 0 needs 20000 test samples; there are 10000"). */
enum td_status td_samples_pick(const struct td_setup *s, const char *part, int64_t offset,
                               int64_t n, struct td_samples *out, char *err, size_t errlen);
void td_samples_free(struct td_samples *s);

/* The model's outputs on the samples at the values of s->g, as doubles
 * [n, K] (K outputs per sample), computed in batches of up to 1000. */
enum td_status td_samples_logits(const struct td_setup *s, const struct td_samples *x,
                                 int num_threads, double *out, char *err, size_t errlen);

/* "512M", "2G", "1.5G", "4096" (bytes) -> bytes; 0 when malformed. */
size_t td_parse_bytes(const char *s);

#endif
