#include "optim/tangent_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "graph/node.h"
#include "io/ioutil.h"

static int selects(const char *name, const char *pattern)
{
    size_t n = strlen(pattern);
    return strcmp(name, pattern) == 0 || (strncmp(name, pattern, n) == 0 && name[n] == '/');
}

/* "fc1/weight, fc1/bias, ..." (truncated) for messages naming what exists. */
static void param_names(const struct td_params *p, char *buf, size_t len)
{
    buf[0] = '\0';
    for (int i = 0; i < p->count; i++) {
        size_t at = strlen(buf);
        if (at + strlen(p->info[i].name) + 8 >= len) {
            snprintf(buf + at, len - at, ", ...");
            return;
        }
        snprintf(buf + at, len - at, "%s%s", i ? ", " : "", p->info[i].name);
    }
}

static enum td_status resolve_selection(struct td_tinst *t, const struct td_param_select *sel,
                                        char *err, size_t errlen)
{
    const struct td_params *p = td_graph_params(t->g);
    t->sel = malloc((size_t)(p->count > 0 ? p->count : 1) * sizeof(int));
    if (!t->sel) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    int n = sel ? sel->n : 0;
    for (int k = 0; k < n; k++) {
        int hit = 0;
        for (int i = 0; i < p->count && !hit; i++) hit = selects(p->info[i].name, sel->names[k]);
        if (!hit) {
            char names[400];
            param_names(p, names, sizeof(names));
            return td_io_errf(TD_ERR_ARG, err, errlen,
                              "unknown parameter '%s' (the model's parameters: %s)", sel->names[k],
                              names);
        }
    }
    t->n_sel = 0;
    t->sel_total = 0;
    for (int i = 0; i < p->count; i++) {
        int chosen = n == 0;
        for (int k = 0; k < n && !chosen; k++) chosen = selects(p->info[i].name, sel->names[k]);
        if (!chosen) continue;
        t->sel[t->n_sel++] = i;
        t->sel_total += p->info[i].numel;
    }
    if (t->n_sel == 0) return td_io_errf(TD_ERR_ARG, err, errlen, "the model has no parameters");
    return TD_OK;
}

static enum td_status copy_values(struct td_tinst *t, const struct td_params *from, char *err,
                                  size_t errlen)
{
    struct td_params *p = td_graph_params(t->g);
    if (p->count != from->count)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "the model built at batch %lld has %d parameters, the values %d",
                          (long long)t->batch, p->count, from->count);
    for (int i = 0; i < p->count; i++) {
        int j = td_params_find(from, p->info[i].name);
        char a[96], b[96];
        if (j < 0)
            return td_io_errf(TD_ERR_ARG, err, errlen,
                              "parameter '%s' of the model built at batch %lld has no value",
                              p->info[i].name, (long long)t->batch);
        if (!td_shape_equal(&p->info[i].shape, &from->info[j].shape))
            return td_io_errf(
                TD_ERR_ARG, err, errlen, "parameter '%s' is %s at batch %lld but %s in the values",
                p->info[i].name, td_shape_format(&p->info[i].shape, a, sizeof(a)),
                (long long)t->batch, td_shape_format(&from->info[j].shape, b, sizeof(b)));
        memcpy(p->value + p->info[i].offset, from->value + from->info[j].offset,
               p->info[i].numel * sizeof(float));
    }
    return TD_OK;
}

static enum td_status check_net(struct td_tinst *t, char *err, size_t errlen)
{
    const struct td_tangent_net *net = &t->net;
    char s[96];
    if (!net->output || net->n_inputs < 1 || net->n_inputs > TD_TANGENT_MAX_INPUTS)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "the builder gave no output or %d inputs (1 to %d expected)",
                          net->n_inputs, TD_TANGENT_MAX_INPUTS);
    const struct td_shape *fs = td_node_shape(net->output);
    if (td_node_dtype(net->output) != TD_F32 || fs->rank < 1 || fs->dim[0] != t->batch)
        return td_io_errf(TD_ERR_ARG, err, errlen,
                          "the output is %s at batch %lld: it must be float with the batch first",
                          td_shape_format(fs, s, sizeof(s)), (long long)t->batch);
    t->K = td_shape_numel(fs) / t->batch;
    for (int i = 0; i < net->n_inputs; i++) {
        const struct td_shape *is = net->inputs[i] ? td_node_shape(net->inputs[i]) : NULL;
        if (!is || is->rank < 1 || is->dim[0] != t->batch ||
            strcmp(td_node_op_name(net->inputs[i]), "input") != 0)
            return td_io_errf(TD_ERR_ARG, err, errlen,
                              "input %d is not a graph input with the batch %lld first", i,
                              (long long)t->batch);
        t->sample_bytes[i] =
            (size_t)(td_shape_numel(is) / t->batch) * td_dtype_size(td_node_dtype(net->inputs[i]));
    }
    return TD_OK;
}

enum td_status td_tinst_init(struct td_tinst *t, const struct td_tangent_model *m, int64_t batch,
                             const struct td_param_select *sel, char *err, size_t errlen)
{
    memset(t, 0, sizeof(*t));
    t->batch = batch;
    if (!m || !m->build || batch < 1)
        return td_io_errf(TD_ERR_ARG, err, errlen, "tangent model: no builder or batch < 1");
    t->g = td_graph_new(m->seed);
    if (!t->g) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    if (m->build(m->ctx, t->g, batch, &t->net) != TD_OK || td_graph_status(t->g) != TD_OK)
        return td_io_errf(td_graph_status(t->g) != TD_OK ? td_graph_status(t->g) : TD_ERR_ARG, err,
                          errlen, "building the model at batch %lld: %s", (long long)batch,
                          td_graph_error(t->g));
    enum td_status st = check_net(t, err, errlen);
    if (st == TD_OK && m->values) st = copy_values(t, m->values, err, errlen);
    if (st == TD_OK) st = resolve_selection(t, sel, err, errlen);
    for (int i = 0; i < t->net.n_inputs && st == TD_OK; i++) {
        t->stage[i] = td_alloc_large(t->sample_bytes[i] * (size_t)batch);
        if (!t->stage[i]) st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    }
    return st;
}

void td_tinst_refresh(struct td_tinst *t, const struct td_tangent_model *m)
{
    if (!t->g || !m->values) return;
    struct td_params *p = td_graph_params(t->g);
    for (int i = 0; i < p->count; i++) {
        int j = td_params_find(m->values, p->info[i].name);
        if (j >= 0)
            memcpy(p->value + p->info[i].offset, m->values->value + m->values->info[j].offset,
                   p->info[i].numel * sizeof(float));
    }
}

void td_tinst_free(struct td_tinst *t)
{
    for (int i = 0; i < TD_TANGENT_MAX_INPUTS; i++) free(t->stage[i]);
    free(t->sel);
    td_graph_free(t->g);
    memset(t, 0, sizeof(*t));
}

const struct td_feed *td_tinst_feed(struct td_tinst *t, const struct td_tangent_data *d,
                                    int64_t first, int64_t count, int copies)
{
    int64_t per_copy = t->batch / copies;
    for (int i = 0; i < t->net.n_inputs; i++) {
        const size_t sb = t->sample_bytes[i];
        const unsigned char *src = (const unsigned char *)d->x[i] + (size_t)first * sb;
        t->feeds[i].node = t->net.inputs[i];
        if (copies == 1 && count == t->batch) {
            t->feeds[i].data = src;
            continue;
        }
        unsigned char *dst = t->stage[i];
        for (int c = 0; c < copies; c++) {
            unsigned char *block = dst + (size_t)c * (size_t)per_copy * sb;
            memcpy(block, src, (size_t)count * sb);
            for (int64_t s = count; s < per_copy; s++) memcpy(block + (size_t)s * sb, src, sb);
        }
        t->feeds[i].data = dst;
    }
    return t->feeds;
}

size_t td_tinst_sel_offset(const struct td_tinst *t, int i)
{
    const struct td_params *p = td_graph_params(t->g);
    size_t off = 0;
    for (int k = 0; k < i; k++) off += p->info[t->sel[k]].numel;
    return off;
}

void td_tinst_describe(const struct td_tinst *t, char *buf, size_t len)
{
    const struct td_shape *fs = td_node_shape(t->net.output);
    buf[0] = '\0';
    if (fs->rank == 1) snprintf(buf, len, "1");
    for (int d = 1; d < fs->rank; d++) {
        size_t at = strlen(buf);
        snprintf(buf + at, len - at, "%s%lld", d > 1 ? "x" : "", (long long)fs->dim[d]);
    }
}

/* Multiply-adds of a node whose work is a matrix product, else 0. */
static double product_flops(const struct td_node *n)
{
    const char *op = td_node_op_name(n);
    const struct td_shape *y = &n->shape;
    if (!strcmp(op, "linear")) {
        const struct td_shape *x = &n->src[0]->shape;
        return 2.0 * (double)td_shape_numel(y) * (double)x->dim[x->rank - 1];
    }
    if (!strcmp(op, "matmul")) {
        const struct td_shape *a = &n->src[0]->shape;
        int64_t inner = n->attr.i[0] ? a->dim[a->rank - 2] : a->dim[a->rank - 1];
        return 2.0 * (double)td_shape_numel(y) * (double)inner;
    }
    return 0;
}

double td_tinst_flops_per_sample(const struct td_tinst *t)
{
    int n = td_node_id(t->net.output) + 1;
    unsigned char *live = calloc((size_t)n, 1);
    if (!live) return 0;
    live[n - 1] = 1;
    double flops = 0;
    for (int id = n - 1; id >= 0; id--) {
        if (!live[id]) continue;
        struct td_node *node = td_graph_node(t->g, id);
        if (node->kind != TD_NODE_OP) continue;
        double c = product_flops(node);
        if (c == 0) {
            c = (double)td_shape_numel(&node->shape);
            for (int s = 0; s < node->n_src; s++) c += (double)td_shape_numel(&node->src[s]->shape);
        }
        flops += c;
        for (int s = 0; s < node->n_src; s++) live[node->src[s]->id] = 1;
    }
    free(live);
    return flops / (double)t->batch;
}
