/* linear: y = x W^T + b, the dense layer in one oneDNN matmul that adds the
 * bias itself (no separate pass over y). No attributes.
 * x [..., K] (rank >= 2), W [N, K] (PyTorch layout), b [N], y [..., N].
 * The leading axes of x are folded into the rows of one 2-D product (x is
 * contiguous); W^T is W read with swapped strides, so nothing is copied.
 * Rules are matmuls and linears of the tangents, and a reduce_sum for b. */
#include <stdio.h>

#include "ops/dnnl/prim.h"
#include "ops/rules.h"

static int64_t in_features(const struct td_shape *x)
{
    return x->dim[x->rank - 1];
}

static int64_t rows(const struct td_shape *x)
{
    return td_shape_numel(x) / in_features(x);
}

static enum td_status linear_shape(struct td_node *n)
{
    const struct td_shape *x = &n->src[0]->shape, *w = &n->src[1]->shape, *b = &n->src[2]->shape;
    char sx[128], sw[128], sb[128];
    td_shape_format(x, sx, sizeof(sx));
    td_shape_format(w, sw, sizeof(sw));
    td_shape_format(b, sb, sizeof(sb));
    for (int i = 0; i < 3; i++)
        if (n->src[i]->dtype != TD_F32)
            return td_node_fail(n, "expects float operands, got %sx %s, %sW %s, %sb %s",
                                n->src[0]->dtype == TD_I32 ? "int32 " : "", sx,
                                n->src[1]->dtype == TD_I32 ? "int32 " : "", sw,
                                n->src[2]->dtype == TD_I32 ? "int32 " : "", sb);
    if (x->rank < 2) return td_node_fail(n, "input needs rank >= 2, got %s", sx);
    if (w->rank != 2) return td_node_fail(n, "weight must be [out, in], got %s", sw);
    if (in_features(x) != w->dim[1])
        return td_node_fail(n, "input features %lld differ from weight %s (input %s)",
                            (long long)in_features(x), sw, sx);
    if (b->rank != 1 || b->dim[0] != w->dim[0])
        return td_node_fail(n, "bias %s does not match weight %s: expected [%lld]", sb, sw,
                            (long long)w->dim[0]);
    n->shape = *x;
    n->shape.dim[x->rank - 1] = w->dim[0];
    n->dtype = TD_F32;
    return TD_OK;
}

static enum td_status linear_prepare(struct td_prep *p)
{
    const struct td_node *n = p->node;
    int64_t m = rows(&n->shape), k = in_features(&n->src[0]->shape), nn = n->src[1]->shape.dim[0];
    struct td_prim_arg args[4] = {{.dnnl_arg = DNNL_ARG_SRC, .buf = TD_BUF_IN0},
                                  {.dnnl_arg = DNNL_ARG_WEIGHTS, .buf = TD_BUF_IN0 + 1},
                                  {.dnnl_arg = DNNL_ARG_BIAS, .buf = TD_BUF_IN0 + 2},
                                  {.dnnl_arg = DNNL_ARG_DST, .buf = TD_BUF_OUT}};
    dnnl_matmul_desc_t desc;
    dnnl_status_t st = td_md_strided(&args[0].md, 2, (int64_t[]){m, k}, (int64_t[]){k, 1});
    if (st == dnnl_success)
        st = td_md_strided(&args[1].md, 2, (int64_t[]){k, nn}, (int64_t[]){1, k});
    if (st == dnnl_success)
        st = td_md_strided(&args[2].md, 2, (int64_t[]){1, nn}, (int64_t[]){nn, 1});
    if (st == dnnl_success)
        st = td_md_strided(&args[3].md, 2, (int64_t[]){m, nn}, (int64_t[]){nn, 1});
    if (st == dnnl_success)
        st = dnnl_matmul_desc_init(&desc, &args[0].md, &args[1].md, &args[2].md, &args[3].md);
    if (st != dnnl_success) {
        snprintf(p->err, p->err_len, "linear: oneDNN matmul descriptor failed (status %d)",
                 (int)st);
        return TD_ERR_BACKEND;
    }
    return td_prim_create(p, &desc, args, 4);
}

/* x [..., C] viewed as [(...), C]; x itself when already 2-D. */
static struct td_node *as_rows(struct td_graph *g, struct td_node *x)
{
    if (x->shape.rank == 2) return x;
    return td_reshape(g, x, TD_SHAPE(rows(&x->shape), in_features(&x->shape)));
}

/* d(x W^T + b) = dx W^T + x dW^T + db. The bias tangent rides in whichever
 * product exists (as a linear's bias), so it never costs a pass of its own,
 * and the second product accumulates onto the first (matmul_add). */
static struct td_node *linear_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    struct td_node *x = n->src[0], *w = n->src[1];
    struct td_node *tx = t[0], *tw = t[1], *tb = t[2];
    struct td_node *dx = NULL;
    if (tx) dx = tb ? td_linear(g, tx, w, tb) : td_matmul(g, tx, w, 0, 1);
    if (tw && dx) return td_matmul_add(g, x, tw, 0, 1, dx);
    if (tw) return tb ? td_linear(g, x, tw, tb) : td_matmul(g, x, tw, 0, 1);
    if (!tx && tb) return td_broadcast_to(g, tb, n->shape);
    return dx;
}

/* With G = ct viewed as [M, N] and X = x as [M, K]: dX = G W, dW = G^T X,
 * db = column sums of G. */
static void linear_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                       struct td_node **cts)
{
    struct td_node *x = n->src[0], *w = n->src[1];
    struct td_node *ct2 = as_rows(g, ct);
    /* Built first so the planner runs it first among its equals, while ct is
     * still in cache (the products stream more data through it). */
    if (need & 4u) cts[2] = td_reduce_sum(g, ct2, 1u, 0);
    if (need & 1u) {
        struct td_node *dx = td_matmul(g, ct2, w, 0, 0);
        cts[0] = x->shape.rank == 2 ? dx : td_reshape(g, dx, x->shape);
    }
    if (need & 2u) cts[1] = td_matmul(g, ct2, as_rows(g, x), 1, 0);
}

/* The test reference: one dot product per output element, in double. */
static void linear_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *x = in[0], *w = in[1], *b = in[2];
    int64_t m = rows(&n->shape), k = in_features(&n->src[0]->shape), nn = n->src[1]->shape.dim[0];
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < nn; j++) {
            double acc = b[j];
            for (int64_t l = 0; l < k; l++) acc += (double)x[i * k + l] * w[j * k + l];
            out[i * nn + j] = (float)acc;
        }
}

/* The cases below hold one operand constant, so the rules also run with
 * each pair of tangents (the op-table test varies all, or one at a time). */
static struct td_node *constant(struct td_graph *g, struct td_shape s)
{
    float v[64];
    for (int64_t i = 0; i < td_shape_numel(&s); i++) v[i] = (float)((i * 7) % 11 - 5) / 5.0f;
    return td_constant(g, s, v);
}

static struct td_node *build_const_x(struct td_graph *g, struct td_node *const *in)
{
    return td_linear(g, constant(g, TD_SHAPE(2, 3, 4)), in[0], in[1]);
}

static struct td_node *build_const_w(struct td_graph *g, struct td_node *const *in)
{
    return td_linear(g, in[0], constant(g, TD_SHAPE(5, 4)), in[1]);
}

static struct td_node *build_const_b(struct td_graph *g, struct td_node *const *in)
{
    return td_linear(g, in[0], in[1], constant(g, TD_SHAPE(5)));
}

static const struct td_op_case linear_cases[] = {
    {.n_in = 3, .shape = {{2, {4, 6}}, {2, {5, 6}}, {1, {5}}}},
    {.n_in = 3, .shape = {{2, {7, 3}}, {2, {8, 3}}, {1, {8}}}},
    {.n_in = 3, .shape = {{3, {3, 4, 6}}, {2, {5, 6}}, {1, {5}}}},
    {.n_in = 3, .shape = {{3, {2, 5, 9}}, {2, {4, 9}}, {1, {4}}}},
    {.n_in = 3, .shape = {{4, {2, 2, 3, 5}}, {2, {6, 5}}, {1, {6}}}},
    {.n_in = 2, .shape = {{2, {6, 4}}, {1, {6}}}, .build = build_const_x},
    {.n_in = 2, .shape = {{3, {2, 3, 4}}, {1, {5}}}, .build = build_const_w},
    {.n_in = 2, .shape = {{2, {3, 4}}, {2, {5, 4}}}, .build = build_const_b},
};

/* As matmul's: one multiply-add of a blocked product is about a sixteenth of
 * an element touched by a streaming op; the bias add is free in comparison. */
static double linear_cost(const struct td_node *n)
{
    return (double)td_shape_numel(&n->shape) * (double)in_features(&n->src[0]->shape) / 16.0;
}

static double linear_flops(const struct td_node *n)
{
    return 2.0 * (double)td_shape_numel(&n->shape) * (double)in_features(&n->src[0]->shape);
}

const struct td_op_def td_op_linear = {
    .name = "linear",
    .n_src = 3,
    .shape = linear_shape,
    .prepare = linear_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = linear_jvp,
    .vjp = linear_vjp,
    .cost = linear_cost,
    .flops = linear_flops,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(linear_cases) / sizeof(linear_cases[0])),
            .cases = linear_cases,
            .reference = linear_reference,
        },
};

struct td_node *td_linear(struct td_graph *g, struct td_node *x, struct td_node *w,
                          struct td_node *b)
{
    struct td_node *src[3] = {x, w, b};
    return td_node_new(g, &td_op_linear, src, 3, NULL);
}
