/* The passes that give a tile's per-sample data: the structured method's
 * replicated backward passes (every output's cotangents at the parameter
 * uses in one batched pass) and one-sample backward passes for the rows of
 * the Jacobian the structure does not cover. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "graph/autodiff.h"
#include "graph/node.h"
#include "io/ioutil.h"
#include "ops/ops.h"
#include "optim/ntk_impl.h"

static enum td_status graph_err(struct td_graph *g, const char *what, char *err, size_t errlen)
{
    enum td_status st = td_graph_status(g);
    return td_io_errf(st != TD_OK ? st : TD_ERR_NOMEM, err, errlen, "%s: %s", what,
                      st != TD_OK ? td_graph_error(g) : "out of memory");
}

/* The rebuilt model must show the structure planned on the probe build. */
static enum td_status same_structure(const struct td_ntk_structure *a,
                                     const struct td_ntk_structure *b, char *err, size_t errlen)
{
    int same = a->n_uses == b->n_uses && a->n_fallback == b->n_fallback;
    for (int i = 0; same && i < a->n_uses; i++) {
        const struct td_ntk_use *u = &a->uses[i], *v = &b->uses[i];
        same = u->kind == v->kind && u->w_param == v->w_param && u->b_param == v->b_param &&
               u->R == v->R && u->in == v->in && u->out == v->out && u->batch_ops == v->batch_ops &&
               !memcmp(u->lparam, v->lparam, sizeof(u->lparam));
    }
    if (same) return TD_OK;
    return td_io_errf(TD_ERR_ARG, err, errlen,
                      "the model's structure differs between batch sizes: the builder must "
                      "build the same graph for every batch");
}

/* Output list with duplicates merged: a node bound twice would keep only
 * one binding. */
struct outs {
    struct td_node **node;
    float **buf;
    size_t *bytes;
    int n;
};

static int out_index(struct outs *o, struct td_node *n)
{
    for (int i = 0; i < o->n; i++)
        if (o->node[i] == n) return i;
    o->node[o->n] = n;
    o->bytes[o->n] = td_node_bytes(n);
    o->buf[o->n] = td_alloc_large(o->bytes[o->n]);
    return o->buf[o->n] ? o->n++ : -1;
}

/* A local use's op rebuilt at batch 1 (its per-sample operands sliced to
 * one sample, its parameters and the cotangents fed) and, for each of the
 * seeded plan's `seeds` outputs, the VJP to its selected parameters, laid
 * out as the use's explicit columns: one run per sample and pass. */
static enum td_status init_local(struct td_ntk_passes *ps, const struct td_ntk_use *u,
                                 struct td_ntk_local *L, char *err, size_t errlen)
{
    const struct td_node *y = u->y;
    const int c = (int)ps->seeds;
    struct td_node *src[TD_MAX_SRC], *wrt[TD_MAX_SRC];
    struct td_node **grads = malloc((size_t)c * TD_MAX_SRC * sizeof(*grads));
    struct td_binding *bind = malloc((size_t)c * TD_MAX_SRC * sizeof(*bind));
    int nw = 0;
    L->g = td_graph_new(0);
    L->grad = td_alloc_large((size_t)c * u->width * sizeof(float));
    L->seed = calloc((size_t)c, sizeof(*L->seed));
    if (!L->g || !L->grad || !L->seed || !grads || !bind) {
        free(grads), free(bind);
        return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    }
    for (int k = 0; k < y->n_src; k++) {
        const struct td_node *x = y->src[k];
        struct td_shape sh = x->shape;
        char name[16];
        snprintf(name, sizeof(name), "in%d", k);
        L->in[k] = NULL;
        for (int j = 0; j < k && x->kind == TD_NODE_PARAM; j++)
            if (y->src[j] == x) L->in[k] = L->in[j];
        if (L->in[k]) {
            src[k] = L->in[k];
            continue;
        }
        if (u->batch_ops & (1u << k)) sh.dim[0] = 1;
        if (x->kind == TD_NODE_CONST)
            src[k] = td_constant(L->g, sh, x->const_data);
        else
            src[k] = L->in[k] = td_input(L->g, name, sh, x->dtype);
        if (u->lparam[k] >= 0) wrt[nw++] = src[k];
    }
    struct td_node *y1 =
        td_graph_status(L->g) == TD_OK ? td_node_new(L->g, y->op, src, y->n_src, &y->attr) : NULL;
    enum td_status st = y1 ? TD_OK : TD_ERR_SHAPE;
    for (int j = 0; j < c && st == TD_OK; j++) {
        char name[16];
        snprintf(name, sizeof(name), "seed%d", j);
        L->seed[j] = td_input(L->g, name, y1->shape, TD_F32);
        if (!L->seed[j] || td_vjp(L->g, y1, L->seed[j], wrt, nw, grads + (size_t)j * nw) != TD_OK)
            st = TD_ERR_SHAPE;
        size_t at = (size_t)j * u->width;
        for (int i = 0; i < nw && st == TD_OK; i++) {
            bind[j * nw + i] = (struct td_binding){grads[j * nw + i], L->grad + at};
            at += (size_t)td_shape_numel(td_node_shape(wrt[i]));
        }
    }
    if (st == TD_OK) {
        struct td_compile_options co = {.num_threads = 1, .bindings = bind, .n_bindings = c * nw};
        L->plan = td_compile(L->g, grads, c * nw, &co);
    }
    free(grads), free(bind);
    return L->plan ? TD_OK : graph_err(L->g, "a parameter's per-sample gradient", err, errlen);
}

/* Runs local use i's plan for sample n of pass q (its deltas in the seeded
 * plan's outputs), writing the gradients of outputs k0 .. k0 + valid - 1. */
static enum td_status run_local(struct td_ntk_passes *ps, const struct td_ntk_structure *s, int i,
                                int64_t n, int64_t k0, int64_t valid, struct td_ntk_side *d,
                                char *err, size_t errlen)
{
    const struct td_ntk_use *u = &s->uses[i];
    struct td_ntk_local *L = &ps->local[i];
    const struct td_params *p = td_graph_params(ps->multi.g);
    struct td_feed feeds[TD_MAX_SRC + TD_NTK_MAX_SEEDS];
    int nf = 0;
    for (int k = 0; k < u->y->n_src; k++) {
        const struct td_node *x = u->y->src[k];
        if (!L->in[k]) continue; /* a constant (a repeated parameter is fed twice alike) */
        const void *data;
        if (u->batch_ops & (1u << k))
            data = (const unsigned char *)ps->stage_ops[i * TD_MAX_SRC + k] +
                   (size_t)n * (td_node_bytes(x) / (size_t)x->shape.dim[0]);
        else
            data = p->value + p->info[x->param_index].offset;
        feeds[nf++] = (struct td_feed){L->in[k], data};
    }
    for (int64_t j = 0; j < ps->seeds; j++)
        feeds[nf++] = (struct td_feed){L->seed[j], ps->stage_delta[j * s->n_uses + i] + n * u->out};
    if (td_run(L->plan, feeds, nf) != TD_OK)
        return td_io_errf(TD_ERR_BACKEND, err, errlen, "a parameter's per-sample gradient: %s",
                          td_plan_error(L->plan));
    for (int64_t j = 0; j < valid; j++)
        memcpy(d->E + (size_t)(n * ps->K + k0 + j) * s->width + u->col,
               L->grad + (size_t)j * u->width, u->width * sizeof(float));
    return TD_OK;
}

/* One plan on the model at batch `tile`: the forward pass once, then
 * `seeds` backward passes, pass j seeded by its own input, each giving
 * the cotangents at every use. */
static enum td_status init_seeded(struct td_ntk_passes *ps, const struct td_tangent_model *m,
                                  const struct td_param_select *sel,
                                  const struct td_ntk_structure *s, char *err, size_t errlen)
{
    enum td_status st = td_tinst_init(&ps->multi, m, ps->tile, sel, err, errlen);
    if (st != TD_OK) return st;
    st = td_ntk_find_structure(&ps->multi, 0, &ps->rs);
    if (st != TD_OK) return td_io_errf(st, err, errlen, "out of memory");
    st = same_structure(s, &ps->rs, err, errlen);
    if (st != TD_OK) return st;
    for (int i = 0; i < s->n_uses; i++) {
        ps->rs.uses[i].route = s->uses[i].route;
        ps->rs.uses[i].col = s->uses[i].col;
        ps->rs.uses[i].width = s->uses[i].width;
    }
    ps->rs.width = s->width;
    ps->rs.fallback_col = s->fallback_col;
    struct td_graph *g = ps->multi.g;
    const int nu = ps->rs.n_uses, c = (int)ps->seeds;
    const size_t n_out = (size_t)(c + 1 + TD_MAX_SRC) * (size_t)nu;
    struct td_node *f = ps->multi.net.output;
    const size_t seed_numel = (size_t)td_shape_numel(td_node_shape(f));
    struct td_node **ys = malloc((size_t)nu * sizeof(*ys)), **cts = malloc(n_out * sizeof(*cts));
    struct outs o = {malloc(n_out * sizeof(*o.node)), malloc(n_out * sizeof(float *)),
                     malloc(n_out * sizeof(size_t)), 0};
    int *idx = malloc(n_out * sizeof(int));
    ps->seed = calloc((size_t)c, sizeof(*ps->seed));
    ps->stage_delta = calloc(n_out, sizeof(float *));
    ps->stage_act = calloc((size_t)nu, sizeof(float *));
    ps->stage_ids = calloc((size_t)nu, sizeof(int32_t *));
    ps->stage_ops = calloc((size_t)nu * TD_MAX_SRC, sizeof(float *));
    ps->local = calloc((size_t)nu, sizeof(*ps->local));
    ps->seed_buf = td_alloc_large((size_t)c * seed_numel * sizeof(float));
    struct td_binding *bind = malloc(n_out * sizeof(*bind));
    if (!ys || !cts || !o.node || !o.buf || !o.bytes || !idx || !ps->seed || !ps->stage_delta ||
        !ps->stage_act || !ps->stage_ids || !ps->stage_ops || !ps->local || !ps->seed_buf ||
        !bind) {
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
        goto done;
    }
    for (int i = 0; i < nu; i++) ys[i] = ps->rs.uses[i].y;
    for (int j = 0; j < c && st == TD_OK; j++) {
        char name[32];
        snprintf(name, sizeof(name), "ntk_seed%d", j);
        ps->seed[j] = td_input(g, name, *td_node_shape(f), TD_F32);
        if (td_vjp(g, f, ps->seed[j], ys, nu, cts + (size_t)j * nu) != TD_OK)
            st = graph_err(g, "structured passes", err, errlen);
    }
    for (size_t i = 0; i < (size_t)c * nu && st == TD_OK; i++)
        if ((idx[i] = out_index(&o, cts[i])) < 0)
            st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    /* The activations of dense uses, the ids of embeddings, and every
     * per-sample operand of local uses. */
    int *ops = idx + (size_t)(c + 1) * nu;
    for (int i = 0; i < nu && st == TD_OK; i++) {
        const struct td_ntk_use *u = &ps->rs.uses[i];
        for (int k = 0; k < TD_MAX_SRC; k++) ops[i * TD_MAX_SRC + k] = -1;
        if (u->kind != TD_USE_LOCAL) idx[(size_t)c * nu + i] = out_index(&o, u->a);
        for (int k = 0; u->kind == TD_USE_LOCAL && k < u->y->n_src; k++)
            if (u->batch_ops & (1u << k)) ops[i * TD_MAX_SRC + k] = out_index(&o, u->y->src[k]);
        if (u->kind != TD_USE_LOCAL && idx[(size_t)c * nu + i] < 0)
            st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
        for (int k = 0; k < TD_MAX_SRC; k++)
            if ((u->batch_ops & (1u << k)) && ops[i * TD_MAX_SRC + k] < 0)
                st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    }
    if (st != TD_OK) goto done;
    for (int i = 0; i < o.n; i++) bind[i] = (struct td_binding){o.node[i], o.buf[i]};
    struct td_compile_options co = {
        .num_threads = ps->num_threads, .bindings = bind, .n_bindings = o.n};
    ps->multi_plan = td_compile(g, o.node, o.n, &co);
    if (!ps->multi_plan) {
        st = graph_err(g, "structured passes", err, errlen);
        goto done;
    }
    for (size_t i = 0; i < (size_t)c * nu; i++) ps->stage_delta[i] = o.buf[idx[i]];
    for (int i = 0; i < nu; i++) {
        for (int k = 0; k < TD_MAX_SRC; k++)
            if (ops[i * TD_MAX_SRC + k] >= 0)
                ps->stage_ops[i * TD_MAX_SRC + k] = o.buf[ops[i * TD_MAX_SRC + k]];
        if (ps->rs.uses[i].kind == TD_USE_LOCAL) continue;
        float *a = o.buf[idx[(size_t)c * nu + i]];
        if (ps->rs.uses[i].kind == TD_USE_EMBEDDING)
            ps->stage_ids[i] = (int32_t *)a;
        else
            ps->stage_act[i] = a;
    }
    for (int i = 0; i < nu && st == TD_OK; i++)
        if (ps->rs.uses[i].kind == TD_USE_LOCAL)
            st = init_local(ps, &ps->rs.uses[i], &ps->local[i], err, errlen);
done:
    if (st != TD_OK)
        for (int i = 0; i < o.n; i++) free(o.buf[i]);
    else
        ps->stage_all = o.buf, ps->n_stage = o.n, o.buf = NULL;
    free(ys), free(cts), free(o.node), free(o.buf), free(o.bytes), free(idx), free(bind);
    return st;
}

/* A build of m at `batch` whose selection is the fallback parameters. */
static enum td_status fallback_build(struct td_tinst *t, const struct td_tangent_model *m,
                                     int64_t batch, const struct td_ntk_structure *s,
                                     const struct td_tinst *probe, char *err, size_t errlen)
{
    const struct td_params *pp = td_graph_params(probe->g);
    const char **names = malloc((size_t)s->n_fallback * sizeof(char *));
    if (!names) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    for (int i = 0; i < s->n_fallback; i++) names[i] = pp->info[s->fallback[i]].name;
    struct td_param_select sel = {names, s->n_fallback};
    enum td_status st = td_tinst_init(t, m, batch, &sel, err, errlen);
    free(names);
    if (st == TD_OK && t->sel_total != s->fallback_elems)
        st = td_io_errf(TD_ERR_ARG, err, errlen,
                        "the model's parameters differ between batch sizes");
    return st;
}

static enum td_status init_rows(struct td_ntk_passes *ps, const struct td_tangent_model *m,
                                const struct td_ntk_structure *s, const struct td_tinst *probe,
                                char *err, size_t errlen)
{
    enum td_status st = fallback_build(&ps->one, m, 1, s, probe, err, errlen);
    if (st != TD_OK) return st;
    struct td_graph *g = ps->one.g;
    const struct td_params *p = td_graph_params(g);
    int nf = ps->one.n_sel;
    struct td_node *f = ps->one.net.output;
    struct td_node **wrt = malloc((size_t)nf * sizeof(*wrt)),
                   **grads = malloc((size_t)nf * sizeof(*grads));
    struct td_binding *bind = malloc((size_t)nf * sizeof(*bind));
    ps->row = malloc(ps->one.sel_total * sizeof(float) + 64);
    ps->seed1_buf = malloc((size_t)ps->K * sizeof(float));
    if (!wrt || !grads || !bind || !ps->row || !ps->seed1_buf) {
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
        goto done;
    }
    ps->seed1 = td_input(g, "ntk_seed1", *td_node_shape(f), TD_F32);
    for (int i = 0; i < nf; i++) wrt[i] = p->info[ps->one.sel[i]].node;
    if (td_vjp(g, f, ps->seed1, wrt, nf, grads) != TD_OK) {
        st = graph_err(g, "Jacobian rows", err, errlen);
        goto done;
    }
    size_t off = 0;
    for (int i = 0; i < nf; i++) {
        bind[i] = (struct td_binding){grads[i], ps->row + off};
        off += p->info[ps->one.sel[i]].numel;
    }
    struct td_compile_options co = {
        .num_threads = ps->num_threads, .bindings = bind, .n_bindings = nf};
    ps->row_plan = td_compile(g, grads, nf, &co);
    if (!ps->row_plan) st = graph_err(g, "Jacobian rows", err, errlen);
done:
    free(wrt), free(grads), free(bind);
    return st;
}

/* One plan on the model at batch `tile` with the fallback parameters' JVPs
 * along `col_dirs` tangent directions sharing one forward pass: direction
 * j's tangent inputs read slot j of col_tan (the parameters side by side,
 * as their Jacobian columns). */
static enum td_status init_cols(struct td_ntk_passes *ps, const struct td_tangent_model *m,
                                const struct td_ntk_structure *s, const struct td_tinst *probe,
                                char *err, size_t errlen)
{
    enum td_status st = fallback_build(&ps->colb, m, ps->tile, s, probe, err, errlen);
    if (st != TD_OK) return st;
    struct td_graph *g = ps->colb.g;
    const struct td_params *p = td_graph_params(g);
    const int nf = ps->colb.n_sel, c = (int)ps->col_dirs;
    struct td_node *f = ps->colb.net.output;
    struct td_node **w = malloc((size_t)nf * sizeof(*w));
    struct td_node **outs = malloc((size_t)c * sizeof(*outs));
    struct td_binding *bind = malloc((size_t)c * sizeof(*bind));
    ps->col_in = calloc((size_t)c * (size_t)nf, sizeof(*ps->col_in));
    ps->col_tan = td_alloc_large((size_t)c * s->fallback_elems * sizeof(float));
    ps->col_out = td_alloc_large((size_t)c * (size_t)(ps->tile * ps->K) * sizeof(float));
    if (!w || !outs || !bind || !ps->col_in || !ps->col_tan || !ps->col_out) {
        st = td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
        goto done;
    }
    for (int i = 0; i < nf; i++) w[i] = p->info[ps->colb.sel[i]].node;
    for (int j = 0; j < c && st == TD_OK; j++) {
        struct td_node **t = ps->col_in + (size_t)j * nf;
        for (int i = 0; i < nf; i++) {
            char name[40];
            snprintf(name, sizeof(name), "ntk_tangent%d_%d", j, i);
            t[i] = td_input(g, name, p->info[ps->colb.sel[i]].shape, TD_F32);
        }
        if (td_jvp(g, w, t, nf, &f, 1, &outs[j]) != TD_OK)
            st = graph_err(g, "Jacobian columns", err, errlen);
        else
            bind[j] =
                (struct td_binding){outs[j], ps->col_out + (size_t)j * (size_t)(ps->tile * ps->K)};
    }
    if (st != TD_OK) goto done;
    struct td_compile_options co = {
        .num_threads = ps->num_threads, .bindings = bind, .n_bindings = c};
    ps->col_plan = td_compile(g, outs, c, &co);
    if (!ps->col_plan) st = graph_err(g, "Jacobian columns", err, errlen);
done:
    free(w), free(outs), free(bind);
    return st;
}

enum td_status td_ntk_passes_init(struct td_ntk_passes *ps, const struct td_tangent_model *m,
                                  const struct td_param_select *sel, const struct td_tinst *probe,
                                  const struct td_ntk_structure *s, int64_t K, int64_t tile,
                                  int64_t seeds, int64_t col_dirs, int num_threads, char *err,
                                  size_t errlen)
{
    memset(ps, 0, sizeof(*ps));
    ps->K = K;
    ps->tile = tile;
    ps->seeds = seeds;
    ps->col_dirs = col_dirs;
    ps->num_threads = num_threads;
    enum td_status st = TD_OK;
    if (s->n_uses > 0) st = init_seeded(ps, m, sel, s, err, errlen);
    if (st == TD_OK && s->n_fallback > 0)
        st = col_dirs > 0 ? init_cols(ps, m, s, probe, err, errlen)
                          : init_rows(ps, m, s, probe, err, errlen);
    return st;
}

void td_ntk_passes_free(struct td_ntk_passes *ps)
{
    td_plan_free(ps->multi_plan);
    td_plan_free(ps->row_plan);
    td_plan_free(ps->col_plan);
    free(ps->col_in), free(ps->col_tan), free(ps->col_out);
    if (ps->colb.g) td_tinst_free(&ps->colb);
    for (int i = 0; i < ps->n_stage; i++) free(ps->stage_all[i]);
    free(ps->stage_all);
    for (int i = 0; ps->local && i < ps->rs.n_uses; i++) {
        td_plan_free(ps->local[i].plan);
        td_graph_free(ps->local[i].g);
        free(ps->local[i].grad), free(ps->local[i].seed);
    }
    free(ps->local), free(ps->stage_ops);
    free(ps->seed), free(ps->stage_delta), free(ps->stage_act), free(ps->stage_ids);
    free(ps->row), free(ps->seed_buf), free(ps->seed1_buf);
    td_ntk_structure_free(&ps->rs);
    if (ps->multi.g) td_tinst_free(&ps->multi);
    if (ps->one.g) td_tinst_free(&ps->one);
    memset(ps, 0, sizeof(*ps));
}

/* E row of sample n, output k: the per-sample gradient of use u,
 *   dense:     G [out, in] = sum_t delta_t a_t^T, then sum_t delta_t (bias)
 *   embedding: G [V, d], row ids_t gets delta_t
 * delta [R, out], a [R, in] or ids [R]. */
static void form_gradient(const struct td_ntk_use *u, const float *delta, const float *a,
                          const int32_t *ids, float *e)
{
    const int64_t R = u->R, in = u->in, out = u->out;
    memset(e, 0, u->width * sizeof(float));
    if (u->kind == TD_USE_EMBEDDING) {
        for (int64_t t = 0; t < R; t++) {
            if (ids[t] < 0 || ids[t] >= in) continue; /* the forward pass rejected it already */
            float *row = e + (int64_t)ids[t] * out;
            for (int64_t j = 0; j < out; j++) row[j] += delta[t * out + j];
        }
        return;
    }
    float *bias = e + (u->w_param >= 0 ? out * in : 0);
    for (int64_t t = 0; t < R; t++) {
        const float *d = delta + t * out, *x = a + t * in;
        if (u->w_param >= 0)
            for (int64_t o = 0; o < out; o++) {
                float *row = e + o * in;
                const float s = d[o];
                for (int64_t i = 0; i < in; i++) row[i] += s * x[i];
            }
        if (u->b_param >= 0)
            for (int64_t o = 0; o < out; o++) bias[o] += d[o];
    }
}

static enum td_status run_seeded(struct td_ntk_passes *ps, const struct td_ntk_structure *s,
                                 const struct td_tangent_data *x, int64_t first, int64_t count,
                                 struct td_ntk_side *d, char *err, size_t errlen)
{
    const int64_t K = ps->K, tile = ps->tile, c = ps->seeds;
    const int nu = s->n_uses;
    struct td_feed feeds[TD_TANGENT_MAX_INPUTS + TD_NTK_MAX_SEEDS];
    const int ni = ps->multi.net.n_inputs;
    memcpy(feeds, td_tinst_feed(&ps->multi, x, first, count, 1), (size_t)ni * sizeof(*feeds));
    const size_t seed_n = (size_t)(tile * K);
    for (int64_t j = 0; j < c; j++)
        feeds[ni + j] = (struct td_feed){ps->seed[j], ps->seed_buf + (size_t)j * seed_n};
    for (int64_t k0 = 0; k0 < K; k0 += c) {
        memset(ps->seed_buf, 0, (size_t)c * seed_n * sizeof(float));
        for (int64_t j = 0; j < c && k0 + j < K; j++)
            for (int64_t n = 0; n < tile; n++)
                ps->seed_buf[(size_t)j * seed_n + n * K + k0 + j] = 1.0f;
        if (td_run(ps->multi_plan, feeds, ni + (int)c) != TD_OK)
            return td_io_errf(TD_ERR_BACKEND, err, errlen, "structured pass: %s",
                              td_plan_error(ps->multi_plan));
        const int64_t nk = (K - k0 < c ? K - k0 : c) * count;
        double row_work = 0;
        for (int i = 0; i < nu; i++)
            row_work += (double)(s->uses[i].R * s->uses[i].out) *
                        (s->uses[i].route == TD_ROUTE_EXPLICIT ? (double)s->uses[i].in : 1.0);
        const int team = td_ntk_team(ps->num_threads, (double)nk * row_work);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
        for (int64_t jn = 0; jn < nk; jn++) {
            const int64_t j = jn / count, n = jn % count, k = k0 + j;
            for (int i = 0; i < nu; i++) {
                const struct td_ntk_use *u = &s->uses[i];
                const int64_t drow = u->R * u->out;
                const float *delta = ps->stage_delta[j * nu + i] + n * drow;
                if (u->kind == TD_USE_LOCAL) continue;
                if (u->route == TD_ROUTE_FACTORED) {
                    memcpy(d->delta[i] + (n * K + k) * drow, delta, (size_t)drow * sizeof(float));
                    if (k == 0)
                        memcpy(d->act[i] + n * u->R * u->in, ps->stage_act[i] + n * u->R * u->in,
                               (size_t)(u->R * u->in) * sizeof(float));
                } else {
                    const float *a =
                        u->kind == TD_USE_DENSE ? ps->stage_act[i] + n * u->R * u->in : NULL;
                    const int32_t *ids =
                        u->kind == TD_USE_EMBEDDING ? ps->stage_ids[i] + n * u->R : NULL;
                    form_gradient(u, delta, a, ids, d->E + (size_t)(n * K + k) * s->width + u->col);
                }
            }
        }
        /* Local uses run plans of their own, one per sample and pass. */
        for (int i = 0; i < nu; i++) {
            if (s->uses[i].kind != TD_USE_LOCAL) continue;
            for (int64_t n = 0; n < count; n++) {
                enum td_status st =
                    run_local(ps, s, i, n, k0, K - k0 < c ? K - k0 : c, d, err, errlen);
                if (st != TD_OK) return st;
            }
        }
    }
    return TD_OK;
}

static enum td_status run_rows(struct td_ntk_passes *ps, const struct td_ntk_structure *s,
                               const struct td_tangent_data *x, int64_t first, int64_t count,
                               struct td_ntk_side *d, char *err, size_t errlen)
{
    const int64_t K = ps->K;
    struct td_feed feeds[TD_TANGENT_MAX_INPUTS + 1];
    int nf = ps->one.net.n_inputs;
    for (int64_t n = 0; n < count; n++) {
        memcpy(feeds, td_tinst_feed(&ps->one, x, first + n, 1, 1), (size_t)nf * sizeof(*feeds));
        feeds[nf] = (struct td_feed){ps->seed1, ps->seed1_buf};
        for (int64_t k = 0; k < K; k++) {
            memset(ps->seed1_buf, 0, (size_t)K * sizeof(float));
            ps->seed1_buf[k] = 1.0f;
            if (td_run(ps->row_plan, feeds, nf + 1) != TD_OK)
                return td_io_errf(TD_ERR_BACKEND, err, errlen, "Jacobian row: %s",
                                  td_plan_error(ps->row_plan));
            memcpy(d->E + (size_t)(n * K + k) * s->width + s->fallback_col, ps->row,
                   s->fallback_elems * sizeof(float));
        }
    }
    return TD_OK;
}

/* Fallback columns p0 .. p0 + c - 1 of the tile's Jacobian, c at a time:
 * J e_p for the basis vectors e_p of the fallback parameters. */
static enum td_status run_cols(struct td_ntk_passes *ps, const struct td_ntk_structure *s,
                               const struct td_tangent_data *x, int64_t first, int64_t count,
                               struct td_ntk_side *d, char *err, size_t errlen)
{
    const int64_t K = ps->K, c = ps->col_dirs, P = (int64_t)s->fallback_elems;
    const int nf = ps->colb.n_sel, ni = ps->colb.net.n_inputs;
    const struct td_params *p = td_graph_params(ps->colb.g);
    struct td_feed *feeds = malloc(((size_t)ni + (size_t)c * (size_t)nf) * sizeof(*feeds));
    if (!feeds) return td_io_errf(TD_ERR_NOMEM, err, errlen, "out of memory");
    memcpy(feeds, td_tinst_feed(&ps->colb, x, first, count, 1), (size_t)ni * sizeof(*feeds));
    for (int64_t j = 0; j < c; j++) {
        size_t at = 0;
        for (int i = 0; i < nf; i++) {
            feeds[ni + j * nf + i] =
                (struct td_feed){ps->col_in[j * nf + i], ps->col_tan + (size_t)j * (size_t)P + at};
            at += p->info[ps->colb.sel[i]].numel;
        }
    }
    enum td_status st = TD_OK;
    memset(ps->col_tan, 0, (size_t)(c * P) * sizeof(float));
    for (int64_t p0 = 0; p0 < P && st == TD_OK; p0 += c) {
        for (int64_t j = 0; j < c && p0 + j < P; j++) ps->col_tan[j * P + p0 + j] = 1.0f;
        if (td_run(ps->col_plan, feeds, ni + (int)(c * nf)) != TD_OK) {
            st = td_io_errf(TD_ERR_BACKEND, err, errlen, "Jacobian columns: %s",
                            td_plan_error(ps->col_plan));
            break;
        }
        for (int64_t j = 0; j < c && p0 + j < P; j++) {
            ps->col_tan[j * P + p0 + j] = 0.0f;
            const float *y = ps->col_out + j * ps->tile * K;
            for (int64_t nk = 0; nk < count * K; nk++)
                d->E[(size_t)nk * s->width + s->fallback_col + (size_t)(p0 + j)] = y[nk];
        }
    }
    free(feeds);
    return st;
}

enum td_status td_ntk_passes_run(struct td_ntk_passes *ps, const struct td_ntk_structure *s,
                                 const struct td_tangent_data *x, int64_t first, int64_t count,
                                 struct td_ntk_side *d, char *err, size_t errlen)
{
    d->count = count;
    enum td_status st = TD_OK;
    if (ps->multi_plan) st = run_seeded(ps, s, x, first, count, d, err, errlen);
    if (st == TD_OK && ps->row_plan) st = run_rows(ps, s, x, first, count, d, err, errlen);
    if (st == TD_OK && ps->col_plan) st = run_cols(ps, s, x, first, count, d, err, errlen);
    return st;
}
