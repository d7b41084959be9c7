/* The model zoo: named builders of a model's logits and its softmax
 * cross-entropy loss, on labelled images or on text. Used by `tandem train`,
 * `eval`, `sample`, `inspect`, `check` and the benchmark. Every model is
 * built only from the public builders (ops/ops.h, ops/layers.h). */
#ifndef TD_MODELS_H
#define TD_MODELS_H

#include <stddef.h>

#include "graph/tandem.h"

enum td_data_kind {
    TD_DATA_IMAGES, /* x [batch, sample...] float, labels [batch] int32 */
    TD_DATA_TEXT,   /* token ids [batch, context] int32, next-token targets [batch, context] */
};

/* What the data looks like. */
struct td_data_desc {
    enum td_data_kind kind;
    struct td_shape sample; /* images: one sample's shape */
    int classes;            /* images: number of classes; text: vocabulary size */
};

/* Options of the zoo models; a field <= 0 takes the model's default (see
 * td_model_defaults). Models ignore the fields they do not use. */
struct td_model_config {
    int layers, d_model, heads, context;
    double dropout; /* < 0: default */
};

struct td_model {
    struct td_node *x;      /* images [batch, sample...] TD_F32, or token ids [batch, context] */
    struct td_node *labels; /* [batch] or next-token targets [batch, context], TD_I32 */
    struct td_node *logits; /* [batch, classes] or [batch, context, vocabulary] */
    struct td_node *loss;   /* scalar: mean cross-entropy over all targets */
    struct td_node *step;   /* TD_I32 [1] the training step, for dropout; NULL without dropout */
    struct td_model_config config; /* the options used, defaults filled in */
};

struct td_model_info {
    const char *name;
    const char *summary;
    enum td_data_kind data;
    /* The model's default options (NULL: it has none). */
    struct td_model_config defaults;
    /* Builds m->logits (and m->step when it uses dropout) from m->x for the
     * data d with options c (defaults filled in). Returns TD_OK or the
     * graph's error status. */
    enum td_status (*build)(struct td_graph *g, const struct td_data_desc *d,
                            const struct td_model_config *c, struct td_model *m);
};

/* The registered models, NULL-terminated. */
extern const struct td_model_info *const td_models[];

/* The model called `name`, or NULL. */
const struct td_model_info *td_model_find(const char *name);

/* c with every unset field replaced by info's default. */
struct td_model_config td_model_defaults(const struct td_model_info *info,
                                         const struct td_model_config *c);

/* The options a model uses as "key=value" words ("layers=4 d_model=256
 * heads=4 context=128 dropout=0"; "" for models without options), for
 * weights.h5's model_config. Writes at most len bytes into buf; returns buf. */
char *td_model_config_format(const struct td_model_info *info, const struct td_model_config *c,
                             char *buf, size_t len);

/* Parses td_model_config_format's words into *c (fields not named keep
 * their value). Returns 0 on success, -1 with a message in err for an
 * unknown key or a bad value. */
int td_model_config_parse(const char *s, struct td_model_config *c, char *err, size_t errlen);

/* Builds model `info` for a batch of `batch` samples of data d: creates the
 * inputs (named "x" and "labels"), the logits and the loss, with options c
 * (NULL: defaults). Text models take their window from c->context. Returns
 * TD_OK, TD_ERR_ARG (the model does not take this kind of data, a bad
 * option; message on the graph) or the graph's error status. */
enum td_status td_model_build(const struct td_model_info *info, struct td_graph *g, int batch,
                              const struct td_data_desc *d, const struct td_model_config *c,
                              struct td_model *m);

/* The zoo's loss: mean softmax cross-entropy over every target, logits
 * [..., V] against integer targets [...] viewed as rows (reshapes cost
 * nothing). Used by td_model_build, and by tools that build the loss on
 * another output (the linearised network's). */
struct td_node *td_model_loss(struct td_graph *g, struct td_node *logits, struct td_node *labels);

/* Stand-in data for tools that need a batch but no dataset (check,
 * inspect, the benchmark): images [28, 28] in 10 classes, or text over a
 * 73-token vocabulary (the size of the KJV Bible's). */
struct td_data_desc td_model_synthetic_data(const struct td_model_info *info);

/* Fills a random batch for m: x (numel of m->x elements of its dtype) and
 * labels (numel of m->labels int32), drawn from seed: pixels uniform in
 * [0, 1), labels and token ids uniform below d->classes. */
void td_model_random_batch(const struct td_model *m, const struct td_data_desc *d, uint64_t seed,
                           void *x, int32_t *labels);

#endif
