/* The model zoo: named builders that turn an input batch into logits and a
 * softmax cross-entropy loss. Used by `tandem train`, `eval`, `inspect`,
 * `check` and the benchmark. */
#ifndef TD_MODELS_H
#define TD_MODELS_H

#include "graph/tandem.h"

struct td_model {
    struct td_node *x;      /* input [batch, features...] */
    struct td_node *labels; /* TD_I32 [batch] */
    struct td_node *logits; /* [batch, classes] */
    struct td_node *loss;   /* scalar mean cross-entropy */
};

struct td_model_info {
    const char *name;
    const char *summary;
    enum td_status (*build)(struct td_graph *g, struct td_node *x, int classes,
                            struct td_node **logits);
};

/* The registered models, NULL-terminated. */
extern const struct td_model_info *const td_models[];

/* The model called `name`, or NULL. */
const struct td_model_info *td_model_find(const char *name);

/* Builds model `info` for inputs [batch, sample...] and `classes` classes,
 * with input node "x" and label node "labels". Returns TD_OK or the graph's
 * error status (message on the graph). */
enum td_status td_model_build(const struct td_model_info *info, struct td_graph *g, int batch,
                              const struct td_shape *sample, int classes, struct td_model *m);

#endif
