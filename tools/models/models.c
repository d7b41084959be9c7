#include "tools/models/models.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/node.h"

extern const struct td_model_info td_model_mlp, td_model_mlp_gelu, td_model_wide_mlp, td_model_cnn,
    td_model_gpt;

const struct td_model_info *const td_models[] = {
    &td_model_mlp, &td_model_mlp_gelu, &td_model_wide_mlp, &td_model_cnn, &td_model_gpt, NULL};

const struct td_model_info *td_model_find(const char *name)
{
    for (int i = 0; td_models[i]; i++)
        if (strcmp(td_models[i]->name, name) == 0) return td_models[i];
    return NULL;
}

struct td_model_config td_model_defaults(const struct td_model_info *info,
                                         const struct td_model_config *c)
{
    struct td_model_config r = info->defaults;
    if (!c) return r;
    if (c->layers > 0) r.layers = c->layers;
    if (c->d_model > 0) r.d_model = c->d_model;
    if (c->heads > 0) r.heads = c->heads;
    if (c->context > 0) r.context = c->context;
    if (c->dropout >= 0) r.dropout = c->dropout;
    return r;
}

char *td_model_config_format(const struct td_model_info *info, const struct td_model_config *c,
                             char *buf, size_t len)
{
    if (info->data != TD_DATA_TEXT) {
        snprintf(buf, len, "%s", "");
        return buf;
    }
    snprintf(buf, len, "layers=%d d_model=%d heads=%d context=%d dropout=%.9g", c->layers,
             c->d_model, c->heads, c->context, c->dropout);
    return buf;
}

int td_model_config_parse(const char *s, struct td_model_config *c, char *err, size_t errlen)
{
    char key[32];
    double value;
    int used;
    while (*s == ' ') s++;
    while (*s) {
        if (sscanf(s, "%31[^= ]=%lf%n", key, &value, &used) != 2) {
            snprintf(err, errlen, "model options: cannot read '%.40s'", s);
            return -1;
        }
        int iv = (int)value, whole = value == iv && value >= 1;
        if (!strcmp(key, "dropout") && value >= 0 && value < 1)
            c->dropout = value;
        else if (!strcmp(key, "layers") && whole)
            c->layers = iv;
        else if (!strcmp(key, "d_model") && whole)
            c->d_model = iv;
        else if (!strcmp(key, "heads") && whole)
            c->heads = iv;
        else if (!strcmp(key, "context") && whole)
            c->context = iv;
        else {
            snprintf(err, errlen, "model options: bad option '%s=%g'", key, value);
            return -1;
        }
        s += used;
        while (*s == ' ') s++;
    }
    return 0;
}

struct td_node *td_model_loss(struct td_graph *g, struct td_node *logits, struct td_node *labels)
{
    const struct td_shape *s = td_node_shape(logits);
    if (s->rank == 2) return td_softmax_cross_entropy(g, logits, labels);
    int64_t classes = s->dim[s->rank - 1], rows = td_shape_numel(s) / classes;
    return td_softmax_cross_entropy(g, td_reshape(g, logits, TD_SHAPE(rows, classes)),
                                    td_reshape(g, labels, TD_SHAPE(rows)));
}

enum td_status td_model_build(const struct td_model_info *info, struct td_graph *g, int batch,
                              const struct td_data_desc *d, const struct td_model_config *c,
                              struct td_model *m)
{
    memset(m, 0, sizeof(*m));
    m->config = td_model_defaults(info, c);
    if (d->kind != info->data) {
        td_graph_fail(g, TD_ERR_ARG, "model %s takes %s, not %s", info->name,
                      info->data == TD_DATA_TEXT ? "text (--text FILE)" : "labelled images",
                      d->kind == TD_DATA_TEXT ? "text" : "labelled images");
        return td_graph_status(g);
    }
    if (d->kind == TD_DATA_TEXT) {
        int64_t t = m->config.context;
        m->x = td_input(g, "x", TD_SHAPE(batch, t), TD_I32);
        m->labels = td_input(g, "labels", TD_SHAPE(batch, t), TD_I32);
    } else {
        struct td_shape s = {.rank = d->sample.rank + 1};
        s.dim[0] = batch;
        for (int i = 0; i < d->sample.rank && i + 1 < TD_MAX_DIMS; i++)
            s.dim[i + 1] = d->sample.dim[i];
        m->x = td_input(g, "x", s, TD_F32);
        m->labels = td_input(g, "labels", TD_SHAPE(batch), TD_I32);
    }
    if (!m->x || !m->labels || info->build(g, d, &m->config, m) != TD_OK) return td_graph_status(g);
    m->loss = td_node_set_name(td_model_loss(g, m->logits, m->labels), "loss");
    return td_graph_status(g);
}

struct td_data_desc td_model_synthetic_data(const struct td_model_info *info)
{
    struct td_data_desc d = {.kind = info->data, .sample = TD_SHAPE(28, 28), .classes = 10};
    if (info->data == TD_DATA_TEXT) d.classes = 73;
    return d;
}

void td_model_random_batch(const struct td_model *m, const struct td_data_desc *d, uint64_t seed,
                           void *x, int32_t *labels)
{
    int64_t nx = td_shape_numel(td_node_shape(m->x)), ny = td_shape_numel(td_node_shape(m->labels));
    for (int64_t i = 0; i < nx; i++) {
        if (td_node_dtype(m->x) == TD_I32)
            ((int32_t *)x)[i] = (int32_t)(td_rng_u64(seed, 1, (uint64_t)i) % (uint64_t)d->classes);
        else
            ((float *)x)[i] = td_rng_uniform(seed, 1, (uint64_t)i);
    }
    for (int64_t i = 0; i < ny; i++)
        labels[i] = (int32_t)(td_rng_u64(seed, 2, (uint64_t)i) % (uint64_t)d->classes);
}
