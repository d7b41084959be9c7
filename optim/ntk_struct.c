/* The structured method's view of a graph: which selected parameters enter
 * only through products whose per-sample derivatives factor, which fall
 * back to Jacobian rows, and how each use is contracted. */
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "graph/node.h"
#include "ops/op.h"
#include "optim/ntk_impl.h"

/* A parameter reference: the parameter itself, or rows [r0, r0 + rows) of
 * it taken by a slice along axis 0. */
struct pref {
    int param;
    int64_t r0, rows;
};

static struct pref param_ref(const struct td_node *n)
{
    struct pref r = {-1, 0, 0};
    if (n->kind == TD_NODE_PARAM) {
        r.param = n->param_index;
        r.rows = n->shape.rank > 0 ? n->shape.dim[0] : 1;
    } else if (n->kind == TD_NODE_OP && !strcmp(td_node_op_name(n), "slice") && n->attr.i[0] == 0 &&
               n->src[0]->kind == TD_NODE_PARAM) {
        /* slice's attributes: i[0] axis, i[1] start, i[2] length. */
        r.param = n->src[0]->param_index;
        r.r0 = n->attr.i[1];
        r.rows = n->attr.i[2];
    }
    return r;
}

static int is_op(const struct td_node *n, const char *name)
{
    return n->kind == TD_NODE_OP && !strcmp(td_node_op_name(n), name);
}

/* A per-sample float activation: batch first. */
static int batch_data(const struct td_node *n, int64_t batch)
{
    return n->dtype == TD_F32 && n->shape.rank >= 2 && n->shape.dim[0] == batch;
}

struct range {
    int param;
    int64_t r0, rows;
};

struct finder {
    int64_t batch;
    unsigned char *fallback; /* per parameter */
    struct td_ntk_use *uses;
    int n_uses;
    struct range *ranges;
    int n_ranges;
};

static void add_range(struct finder *f, struct pref r)
{
    f->ranges[f->n_ranges++] = (struct range){r.param, r.r0, r.rows};
}

/* Any other op: parameters whole, every other operand per-sample data
 * (batch first) or a constant, and the output per-sample. Its per-sample
 * gradient is its VJP on one sample. */
static int recognise_local(struct finder *f, struct td_node *y)
{
    if (f->n_uses > 0 && f->uses[f->n_uses - 1].y == y) return 1; /* another operand of it */
    struct td_ntk_use u = {.kind = TD_USE_LOCAL,
                           .route = TD_ROUTE_EXPLICIT,
                           .w_param = -1,
                           .b_param = -1,
                           .y = y,
                           .R = 1,
                           .in = 1};
    if (y->dtype != TD_F32 || (y->op->traits & TD_TRAIT_VIEW)) return 0;
    for (int k = 0; k < y->n_src; k++) {
        const struct td_node *x = y->src[k];
        u.lparam[k] = -1;
        if (x->kind == TD_NODE_PARAM)
            u.lparam[k] = x->param_index;
        else if (x->shape.rank >= 1 && x->shape.dim[0] == f->batch)
            u.batch_ops |= 1u << k;
        else if (x->kind != TD_NODE_CONST)
            return 0;
    }
    if (!u.batch_ops) return 0;
    u.out = td_shape_numel(&y->shape) / f->batch;
    for (int k = 0; k < y->n_src; k++)
        if (u.lparam[k] >= 0)
            add_range(f, (struct pref){u.lparam[k], 0,
                                       y->src[k]->shape.rank ? y->src[k]->shape.dim[0] : 1});
    f->uses[f->n_uses++] = u;
    return 1;
}

/* Recognises node y consuming a parameter through operand s as a use;
 * returns 1 when it is one (recorded), 0 when the parameter must fall back. */
static int recognise(struct finder *f, struct td_node *y, int s)
{
    struct td_ntk_use u = {.w_param = -1, .b_param = -1};
    struct pref w = param_ref(y->src[s]);
    if (y->shape.dim[0] != f->batch || y->shape.rank < 2) return 0;
    if (is_op(y, "linear") && s == 1 && batch_data(y->src[0], f->batch)) {
        struct td_node *x = y->src[0];
        struct pref b = param_ref(y->src[2]);
        u.kind = TD_USE_DENSE;
        u.in = x->shape.dim[x->shape.rank - 1];
        u.out = y->shape.dim[y->shape.rank - 1];
        u.R = td_shape_numel(&x->shape) / (f->batch * u.in);
        u.a = x;
        u.w_param = w.param;
        add_range(f, w);
        if (b.param >= 0) {
            u.b_param = b.param;
            add_range(f, b);
        }
    } else if (is_op(y, "linear") && s == 2) {
        /* Recorded with its weight (s == 1, seen first) when that was a use. */
        return f->n_uses > 0 && f->uses[f->n_uses - 1].y == y;
    } else if (is_op(y, "matmul") && s == 1 && y->attr.i[0] == 0 && y->src[1]->shape.rank == 2 &&
               batch_data(y->src[0], f->batch)) {
        const struct td_shape *ws = &y->src[1]->shape;
        int tb = y->attr.i[1];
        u.kind = TD_USE_DENSE;
        u.in = tb ? ws->dim[1] : ws->dim[0];
        u.out = tb ? ws->dim[0] : ws->dim[1];
        u.R = td_shape_numel(&y->src[0]->shape) / (f->batch * u.in);
        u.a = y->src[0];
        u.w_param = w.param;
        add_range(f, w);
    } else if (is_op(y, "embedding") && s == 0 && y->src[1]->shape.dim[0] == f->batch) {
        u.kind = TD_USE_EMBEDDING;
        u.in = y->src[0]->shape.dim[0];
        u.out = y->src[0]->shape.dim[1];
        u.R = td_shape_numel(&y->src[1]->shape) / f->batch;
        u.a = y->src[1];
        u.w_param = w.param;
        add_range(f, w);
    } else {
        return recognise_local(f, y);
    }
    u.y = y;
    u.route = TD_ROUTE_FACTORED;
    f->uses[f->n_uses++] = u;
    return 1;
}

/* Marks parameters whose recorded row ranges overlap: their uses' Jacobians
 * would add up, and the cross terms are not in any single use's block. */
static void mark_overlaps(struct finder *f)
{
    for (int i = 0; i < f->n_ranges; i++)
        for (int j = i + 1; j < f->n_ranges; j++) {
            const struct range *a = &f->ranges[i], *b = &f->ranges[j];
            if (a->param == b->param && a->r0 < b->r0 + b->rows && b->r0 < a->r0 + a->rows)
                f->fallback[a->param] = 1;
        }
}

enum td_status td_ntk_find_structure(const struct td_tinst *t, int jacobian_only,
                                     struct td_ntk_structure *s)
{
    memset(s, 0, sizeof(*s));
    const struct td_params *p = td_graph_params(t->g);
    int n = td_node_id(t->net.output) + 1;
    unsigned char *live = calloc((size_t)n, 1), *selected = calloc((size_t)p->count + 1, 1);
    unsigned char *used = calloc((size_t)p->count + 1, 1);
    struct finder f = {.batch = t->batch, .fallback = calloc((size_t)p->count + 1, 1)};
    f.uses = malloc((size_t)n * sizeof(*f.uses));
    f.ranges = malloc(2 * (size_t)n * sizeof(*f.ranges));
    s->fallback = malloc(((size_t)p->count + 1) * sizeof(int));
    enum td_status st = TD_OK;
    if (!live || !selected || !used || !f.fallback || !f.uses || !f.ranges || !s->fallback) {
        st = TD_ERR_NOMEM;
        goto done;
    }
    for (int i = 0; i < t->n_sel; i++) selected[t->sel[i]] = 1;
    live[n - 1] = 1;
    for (int id = n - 1; id >= 0; id--) {
        if (!live[id]) continue;
        struct td_node *y = td_graph_node(t->g, id);
        for (int k = 0; k < y->n_src; k++) live[y->src[k]->id] = 1;
        if (y->kind != TD_NODE_OP) continue;
        for (int k = 0; k < y->n_src; k++) {
            struct pref r = param_ref(y->src[k]);
            if (r.param < 0) continue;
            used[r.param] = 1;
            /* A slice of a parameter is judged by its consumer. */
            if (y->src[k]->kind == TD_NODE_PARAM && param_ref(y).param >= 0) continue;
            if (jacobian_only || !recognise(&f, y, k)) f.fallback[r.param] = 1;
        }
    }
    mark_overlaps(&f);
    for (int i = 0; i < f.n_uses; i++) {
        struct td_ntk_use u = f.uses[i];
        int any = 0;
        if (u.w_param >= 0 && (f.fallback[u.w_param] || !selected[u.w_param])) u.w_param = -1;
        if (u.b_param >= 0 && (f.fallback[u.b_param] || !selected[u.b_param])) u.b_param = -1;
        for (int k = 0; u.kind == TD_USE_LOCAL && k < u.y->n_src; k++) {
            if (u.lparam[k] >= 0 && (f.fallback[u.lparam[k]] || !selected[u.lparam[k]]))
                u.lparam[k] = -1;
            any |= u.lparam[k] >= 0;
        }
        if (u.w_param < 0 && u.b_param < 0 && !any) continue;
        f.uses[s->n_uses++] = u;
    }
    for (int i = 0; i < p->count; i++) {
        if (!selected[i] || !used[i] || !f.fallback[i]) continue;
        s->fallback[s->n_fallback++] = i;
        s->fallback_elems += p->info[i].numel;
    }
    if (s->n_uses) {
        s->uses = malloc((size_t)s->n_uses * sizeof(*s->uses));
        if (!s->uses)
            st = TD_ERR_NOMEM;
        else
            memcpy(s->uses, f.uses, (size_t)s->n_uses * sizeof(*s->uses));
    }
done:
    free(live), free(selected), free(used), free(f.fallback), free(f.uses), free(f.ranges);
    return st;
}

void td_ntk_structure_free(struct td_ntk_structure *s)
{
    free(s->uses);
    free(s->fallback);
    memset(s, 0, sizeof(*s));
}

size_t td_ntk_factored_bytes(const struct td_ntk_use *u, int64_t K, int64_t tile, int trace)
{
    double rows = (double)tile * (double)u->R;
    double d = trace ? rows * rows + 2.0 * rows * (double)K * (double)u->out
                     : rows * rows * (double)K * (double)K;
    return (size_t)((d + rows * rows) * sizeof(float));
}

/* Floating-point work of one tile pair through each route (the per-sample
 * gradients' formation counted once per sample of the tile). */
static double factored_flops(const struct td_ntk_use *u, int64_t K, int trace)
{
    double R2 = (double)u->R * (double)u->R, kk = trace ? (double)K : (double)K * (double)K;
    double a = u->w_param >= 0 ? 2.0 * R2 * (double)u->in : 0;
    return kk * R2 * 2.0 * (double)u->out + a + kk * R2 * 2.0;
}

static double explicit_flops(const struct td_ntk_use *u, int64_t K, int64_t tile, int trace)
{
    double width = (double)u->out * (u->w_param >= 0 ? (double)u->in : 0) +
                   (u->b_param >= 0 ? (double)u->out : 0);
    double kk = trace ? (double)K : (double)K * (double)K;
    double form = 2.0 * (double)K * (double)u->R * width;
    return kk * 2.0 * width + 2.0 * form / (double)tile;
}

/* Elements of a local use's distinct parameters in theta. */
static size_t local_width(const struct td_ntk_use *u)
{
    size_t w = 0;
    for (int k = 0; k < u->y->n_src; k++) {
        int dup = 0;
        for (int j = 0; j < k; j++) dup |= u->lparam[j] == u->lparam[k];
        if (u->lparam[k] >= 0 && !dup) w += (size_t)td_shape_numel(&u->y->src[k]->shape);
    }
    return w;
}

void td_ntk_choose_routes(struct td_ntk_structure *s, int64_t K, int64_t tile, int trace,
                          size_t factored_bytes_max)
{
    size_t col = 0;
    for (int i = 0; i < s->n_uses; i++) {
        struct td_ntk_use *u = &s->uses[i];
        u->route = TD_ROUTE_EXPLICIT;
        if (u->kind == TD_USE_LOCAL) {
            u->col = col;
            u->width = local_width(u);
            col += u->width;
            continue;
        }
        if (u->kind == TD_USE_DENSE &&
            td_ntk_factored_bytes(u, K, tile, trace) <= factored_bytes_max &&
            factored_flops(u, K, trace) <= explicit_flops(u, K, tile, trace))
            u->route = TD_ROUTE_FACTORED;
        u->col = col;
        u->width = 0;
        if (u->route == TD_ROUTE_EXPLICIT) {
            u->width = (size_t)u->out * (u->w_param >= 0 ? (size_t)u->in : 0) +
                       (u->b_param >= 0 ? (size_t)u->out : 0);
            col += u->width;
        }
    }
    s->fallback_col = col;
    s->width = col + s->fallback_elems;
}

size_t td_ntk_side_bytes(const struct td_ntk_structure *s, int64_t K, int64_t cap)
{
    size_t floats = (size_t)cap * (size_t)K * s->width;
    for (int i = 0; i < s->n_uses; i++) {
        const struct td_ntk_use *u = &s->uses[i];
        if (u->route == TD_ROUTE_FACTORED)
            floats += (size_t)cap * (size_t)u->R * ((size_t)K * (size_t)u->out + (size_t)u->in);
    }
    return floats * sizeof(float);
}

enum td_status td_ntk_side_alloc(struct td_ntk_side *d, const struct td_ntk_structure *s, int64_t K,
                                 int64_t cap)
{
    memset(d, 0, sizeof(*d));
    d->cap = cap;
    int n = s->n_uses > 0 ? s->n_uses : 1;
    d->delta = calloc((size_t)n, sizeof(float *));
    d->act = calloc((size_t)n, sizeof(float *));
    if (!d->delta || !d->act) return TD_ERR_NOMEM;
    for (int i = 0; i < s->n_uses; i++) {
        const struct td_ntk_use *u = &s->uses[i];
        if (u->route != TD_ROUTE_FACTORED) continue;
        d->delta[i] =
            td_alloc_large((size_t)cap * (size_t)K * (size_t)(u->R * u->out) * sizeof(float));
        d->act[i] = td_alloc_large((size_t)cap * (size_t)(u->R * u->in) * sizeof(float));
        if (!d->delta[i] || !d->act[i]) return TD_ERR_NOMEM;
    }
    if (s->width) {
        d->E = td_alloc_large((size_t)cap * (size_t)K * s->width * sizeof(float));
        if (!d->E) return TD_ERR_NOMEM;
    }
    return TD_OK;
}

void td_ntk_side_free(struct td_ntk_side *d, const struct td_ntk_structure *s)
{
    for (int i = 0; i < s->n_uses && d->delta; i++) {
        free(d->delta[i]);
        free(d->act[i]);
    }
    free(d->delta);
    free(d->act);
    free(d->E);
    memset(d, 0, sizeof(*d));
}
