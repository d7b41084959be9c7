#include "tools/models/models.h"

#include <string.h>

extern const struct td_model_info td_model_mlp, td_model_mlp_gelu, td_model_cnn;

const struct td_model_info *const td_models[] = {&td_model_mlp, &td_model_mlp_gelu, &td_model_cnn,
                                                 NULL};

const struct td_model_info *td_model_find(const char *name)
{
    for (int i = 0; td_models[i]; i++)
        if (strcmp(td_models[i]->name, name) == 0) return td_models[i];
    return NULL;
}

enum td_status td_model_build(const struct td_model_info *info, struct td_graph *g, int batch,
                              const struct td_shape *sample, int classes, struct td_model *m)
{
    struct td_shape s = {.rank = sample->rank + 1};
    s.dim[0] = batch;
    for (int i = 0; i < sample->rank && i + 1 < TD_MAX_DIMS; i++) s.dim[i + 1] = sample->dim[i];
    m->x = td_input(g, "x", s, TD_F32);
    m->labels = td_input(g, "labels", TD_SHAPE(batch), TD_I32);
    m->logits = NULL;
    if (!m->x || info->build(g, m->x, classes, &m->logits) != TD_OK) return td_graph_status(g);
    m->loss = td_node_set_name(td_softmax_cross_entropy(g, m->logits, m->labels), "loss");
    return td_graph_status(g);
}
