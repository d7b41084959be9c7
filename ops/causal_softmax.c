/* causal_softmax: masked softmax of attention scores. x [..., T, T] (rank
 * >= 2, last two axes equal) TD_F32, y of x's shape:
 *   y[..., i, j] = softmax over j <= i of scale * x[..., i, j],
 *   y[..., i, j] = 0 exactly for j > i (the future).
 * attr: f[0] = scale. x above the diagonal is never read (it may hold
 * anything, NaN included). One fused pass per row, in cache: scale, max,
 * exp (ops/vmath.h), sum, normalize; rows skip the masked part.
 * Rules: softmax_apply(y, t, alpha = scale, causal) and the same with ct:
 * the Jacobian is scale (diag(y) - y y^T) on each row's visible part. */
#include <math.h>

#include "ops/rules.h"
#include "ops/softmax_prim.h"
#include "ops/vmath.h"

static enum td_status causal_softmax_shape(struct td_node *n)
{
    const struct td_node *x = n->src[0];
    char s[128];
    td_shape_format(&x->shape, s, sizeof(s));
    if (x->dtype != TD_F32) return td_node_fail(n, "expects a float operand, got int32 %s", s);
    if (!td_causal_size(&x->shape))
        return td_node_fail(n, "needs square last axes [..., T, T], got %s", s);
    n->shape = x->shape;
    n->dtype = TD_F32;
    return TD_OK;
}

/* x, y [rows, T] row-major, rows = (leading axes) * T; row r is row
 * r mod T of its matrix and sees len = r mod T + 1 columns. Whole vectors
 * run up to n16 = td_vround(len, T): the columns in [len, n16) are set to
 * -inf before the max (x there is never used), so their exponentials are 0,
 * and they are written as 0. */
static void causal_softmax_forward(const struct td_exec *ex)
{
    const struct td_node *n = ex->node;
    const float *x = ex->in[0];
    float *y = ex->out;
    float scale = n->attr.f[0];
    int64_t t = n->shape.dim[n->shape.rank - 1], rows = td_shape_numel(&n->shape) / t;
    TD_PARALLEL_FOR(ex->nthreads, r, rows, {
        const float *xr = x + r * t;
        float *yr = y + r * t;
        int64_t len = r % t + 1, n16 = td_vround(len, t);
        for (int64_t j = 0; j < n16; j++) {
            float s = scale * xr[j];
            yr[j] = j < len ? s : -INFINITY;
        }
        float m = td_vmax(yr, n16);
        for (int64_t j = 0; j < n16; j++) yr[j] = td_vexpf(yr[j] - m);
        float inv = 1.0f / td_vsum(yr, n16);
        for (int64_t j = 0; j < n16; j++) {
            float p = yr[j] * inv;
            yr[j] = j < len ? p : 0.f;
        }
        for (int64_t j = n16; j < t; j++) yr[j] = 0.f;
    });
}

static struct td_node *causal_softmax_jvp(struct td_graph *g, struct td_node *n,
                                          struct td_node *const *t)
{
    return t[0] ? td_softmax_apply(g, n, t[0], n->attr.f[0], 1) : NULL;
}

static void causal_softmax_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,
                               unsigned need, struct td_node **cts)
{
    if (need & 1u) cts[0] = td_softmax_apply(g, n, ct, n->attr.f[0], 1);
}

/* In double: max-shifted exponentials of the visible columns only. */
static void causal_softmax_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *x = in[0];
    double scale = n->attr.f[0];
    int64_t t = n->shape.dim[n->shape.rank - 1], rows = td_shape_numel(&n->shape) / t;
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * t;
        int64_t i = r % t;
        double mx = scale * xr[0], sum = 0;
        for (int64_t j = 1; j <= i; j++) mx = fmax(mx, scale * xr[j]);
        for (int64_t j = 0; j <= i; j++) sum += exp(scale * xr[j] - mx);
        for (int64_t j = 0; j < t; j++)
            out[r * t + j] = j <= i ? (float)(exp(scale * xr[j] - mx) / sum) : 0.0f;
    }
}

static struct td_node *build_unit(struct td_graph *g, struct td_node *const *in)
{
    return td_causal_softmax(g, in[0], 1.0f);
}

static struct td_node *build_head(struct td_graph *g, struct td_node *const *in)
{
    return td_causal_softmax(g, in[0], 0.125f);
}

static struct td_node *build_negative(struct td_graph *g, struct td_node *const *in)
{
    return td_causal_softmax(g, in[0], -0.7f);
}

static const struct td_op_case causal_softmax_cases[] = {
    {.n_in = 1, .shape = {{2, {5, 5}}}, .build = build_unit},
    {.n_in = 1, .shape = {{4, {2, 2, 5, 5}}}, .build = build_head},
    {.n_in = 1, .shape = {{2, {1, 1}}}, .build = build_unit},
    {.n_in = 1, .shape = {{3, {3, 1, 1}}}, .build = build_head},
    {.n_in = 1, .shape = {{3, {2, 19, 19}}}, .build = build_negative},
};

/* Half of each matrix is read, all of it written, an exp per visible
 * element: measured at 2x (data in DRAM) to 4x (in cache) an add of the
 * same size (3 elements touched) on one thread. */
static double causal_softmax_cost(const struct td_node *n)
{
    return 9.0 * (double)td_shape_numel(&n->shape);
}

const struct td_op_def td_op_causal_softmax = {
    .name = "causal_softmax",
    .n_src = 1,
    .shape = causal_softmax_shape,
    .forward = causal_softmax_forward,
    .jvp = causal_softmax_jvp,
    .vjp = causal_softmax_vjp,
    .cost = causal_softmax_cost,
    .test =
        {
            .lo = -3.0f,
            .hi = 3.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(causal_softmax_cases) / sizeof(causal_softmax_cases[0])),
            .cases = causal_softmax_cases,
            .reference = causal_softmax_reference,
        },
};

struct td_node *td_causal_softmax(struct td_graph *g, struct td_node *x, float scale)
{
    struct td_attr attr = {.f = {scale}};
    return td_node_new(g, &td_op_causal_softmax, &x, 1, &attr);
}
