/* softmax_apply: out = alpha * y * (v - sum_last(y * v)), the Jacobian of a
 * softmax along the last axis (symmetric: alpha (diag(y) - y y^T)) applied to
 * v, where y is the softmax output. The JVP and the VJP of softmax and
 * causal_softmax in one pass. y, v, out [..., C] TD_F32, one shape.
 * attr: f[0] = alpha; i[0] = causal (0 or 1).
 *
 * causal = 1 needs y [..., T, T] and reads only the entries j <= i of row i
 * (the rest of y is taken as 0, as causal_softmax leaves it): out is exactly
 * 0 above the diagonal whatever y and v hold there, and rows do half the
 * work. Formally out = SA(M y, v) with M the lower-triangular mask.
 *
 * Linear in v: its v-rule is itself. In y, direction t:
 *   alpha (t (v - s) - y sum_last(t v)),  s = sum_last(y v),
 * and its transpose ct_y = alpha (u (v - s) - v sum_last(u y)); with causal
 * every y, t and u is masked first. Built with builders (second order
 * only).
 * No .cost: measured on one thread it takes what an add of the same size
 * does, causal or not (causal rows read half as much but mask whole
 * vectors), which is the default's elements read and written. */

#include "ops/rules.h"
#include "ops/softmax_prim.h"
#include "ops/vmath.h"

static enum td_status softmax_apply_shape(struct td_node *n)
{
    const struct td_node *y = n->src[0], *v = n->src[1];
    char sy[128], sv[128];
    td_shape_format(&y->shape, sy, sizeof(sy));
    td_shape_format(&v->shape, sv, sizeof(sv));
    if (y->dtype != TD_F32 || v->dtype != TD_F32)
        return td_node_fail(n, "expects float operands, got y %s %s and v %s %s",
                            y->dtype == TD_F32 ? "float32" : "int32", sy,
                            v->dtype == TD_F32 ? "float32" : "int32", sv);
    if (!td_shape_equal(&y->shape, &v->shape))
        return td_node_fail(n, "y %s and v %s must have the same shape", sy, sv);
    if (y->shape.rank < 1) return td_node_fail(n, "needs operands of rank >= 1, got %s", sy);
    if (n->attr.i[0] != 0 && n->attr.i[0] != 1)
        return td_node_fail(n, "causal must be 0 or 1, got %d", n->attr.i[0]);
    if (n->attr.i[0] && !td_causal_size(&y->shape))
        return td_node_fail(n, "causal needs square last axes [..., T, T], got %s", sy);
    n->shape = y->shape;
    n->dtype = TD_F32;
    return TD_OK;
}

/* sum over j < len of y[j] v[j] for a row of c: whole vectors up to
 * td_vround(len, c), the products past len replaced by 0 (they may be NaN);
 * a last partial chunk, only when that reaches c, goes through a padded
 * block. */
static inline float masked_dot(const float *y, const float *v, int64_t len, int64_t c)
{
    td_vf acc = {0}, a, b;
    td_vi index;
    int64_t n = td_vround(len, c), j = 0;
    for (; j < n; j += TD_VLANES) {
        if (j + TD_VLANES <= n) {
            td_vload(&a, y + j);
            td_vload(&b, v + j);
        } else {
            td_vtail(&a, y, j, n, 0.f);
            td_vtail(&b, v, j, n, 0.f);
        }
        a *= b;
        td_vindex(&index, j);
        acc += (td_vf)((td_vi)a & (index < (int32_t)len));
    }
    return td_vf_sum(&acc);
}

/* y, v, out [rows, C] row-major. Row r uses its first len(r) entries:
 * C, or (r mod T) + 1 when causal (C = T); the rest of out is 0. */
static void softmax_apply_forward(const struct td_exec *ex)
{
    const struct td_node *n = ex->node;
    const float *y = ex->in[0], *v = ex->in[1];
    float *out = ex->out;
    float alpha = n->attr.f[0];
    int causal = n->attr.i[0];
    int64_t c = n->shape.dim[n->shape.rank - 1], rows = td_shape_numel(&n->shape) / c;
    TD_PARALLEL_FOR(ex->nthreads, r, rows, {
        const float *yr = y + r * c, *vr = v + r * c;
        float *o = out + r * c;
        int64_t len = causal ? r % c + 1 : c, n16 = td_vround(len, c);
        float s = masked_dot(yr, vr, len, c);
        for (int64_t j = 0; j < n16; j++) {
            float p = alpha * yr[j] * (vr[j] - s);
            o[j] = j < len ? p : 0.f;
        }
        for (int64_t j = n16; j < c; j++) o[j] = 0.f;
    });
}

static struct td_node *masked(struct td_graph *g, const struct td_node *n, struct td_node *t)
{
    return n->attr.i[0] ? td_causal_mask(g, t) : t;
}

static struct td_node *softmax_apply_jvp(struct td_graph *g, struct td_node *n,
                                         struct td_node *const *t)
{
    struct td_node *y = n->src[0], *v = n->src[1], *dy = NULL, *dv = NULL;
    float alpha = n->attr.f[0];
    if (t[1]) dv = td_softmax_apply(g, y, t[1], alpha, n->attr.i[0]);
    if (t[0]) {
        struct td_node *ym = masked(g, n, y), *tm = masked(g, n, t[0]);
        struct td_node *s = td_sum_last(g, td_mul(g, ym, v));
        struct td_node *a = td_mul(g, tm, td_sub(g, v, s));
        struct td_node *b = td_mul(g, ym, td_sum_last(g, td_mul(g, tm, v)));
        dy = td_scale(g, td_sub(g, a, b), alpha);
    }
    return td_rule_add(g, dv, dy);
}

static void softmax_apply_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,
                              unsigned need, struct td_node **cts)
{
    struct td_node *y = n->src[0], *v = n->src[1];
    float alpha = n->attr.f[0];
    if (need & 2u) cts[1] = td_softmax_apply(g, y, ct, alpha, n->attr.i[0]);
    if (need & 1u) {
        struct td_node *ym = masked(g, n, y);
        struct td_node *s = td_sum_last(g, td_mul(g, ym, v));
        struct td_node *a = td_mul(g, ct, td_sub(g, v, s));
        struct td_node *b = td_mul(g, v, td_sum_last(g, td_mul(g, ct, ym)));
        cts[0] = masked(g, n, td_scale(g, td_sub(g, a, b), alpha));
    }
}

static void softmax_apply_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *y = in[0], *v = in[1];
    double alpha = n->attr.f[0];
    int64_t c = n->shape.dim[n->shape.rank - 1], rows = td_shape_numel(&n->shape) / c;
    for (int64_t r = 0; r < rows; r++) {
        const float *yr = y + r * c, *vr = v + r * c;
        int64_t i = r % c; /* the row's index in its matrix when causal */
        double s = 0;
        for (int64_t j = 0; j < c; j++)
            if (!n->attr.i[0] || j <= i) s += (double)yr[j] * vr[j];
        for (int64_t j = 0; j < c; j++)
            out[r * c + j] = !n->attr.i[0] || j <= i ? (float)(alpha * yr[j] * (vr[j] - s)) : 0.0f;
    }
}

static struct td_node *build_plain(struct td_graph *g, struct td_node *const *in)
{
    return td_softmax_apply(g, in[0], in[1], 1.0f, 0);
}

static struct td_node *build_scaled(struct td_graph *g, struct td_node *const *in)
{
    return td_softmax_apply(g, in[0], in[1], -0.75f, 0);
}

static struct td_node *build_causal(struct td_graph *g, struct td_node *const *in)
{
    return td_softmax_apply(g, in[0], in[1], 1.0f, 1);
}

static struct td_node *build_causal_scaled(struct td_graph *g, struct td_node *const *in)
{
    return td_softmax_apply(g, in[0], in[1], 0.35f, 1);
}

/* Random y (not a softmax, not zero above the diagonal): the causal cases
 * check that the masked entries are ignored. */
static const struct td_op_case softmax_apply_cases[] = {
    {.n_in = 2, .shape = {{2, {4, 7}}, {2, {4, 7}}}, .build = build_plain},
    {.n_in = 2, .shape = {{3, {2, 3, 5}}, {3, {2, 3, 5}}}, .build = build_scaled},
    {.n_in = 2, .shape = {{1, {6}}, {1, {6}}}, .build = build_plain},
    {.n_in = 2, .shape = {{2, {5, 5}}, {2, {5, 5}}}, .build = build_causal},
    {.n_in = 2, .shape = {{4, {2, 2, 5, 5}}, {4, {2, 2, 5, 5}}}, .build = build_causal_scaled},
    {.n_in = 2, .shape = {{3, {3, 1, 1}}, {3, {3, 1, 1}}}, .build = build_causal},
};

const struct td_op_def td_op_softmax_apply = {
    .name = "softmax_apply",
    .n_src = 2,
    .shape = softmax_apply_shape,
    .forward = softmax_apply_forward,
    .jvp = softmax_apply_jvp,
    .vjp = softmax_apply_vjp,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(softmax_apply_cases) / sizeof(softmax_apply_cases[0])),
            .cases = softmax_apply_cases,
            .reference = softmax_apply_reference,
        },
};

struct td_node *td_softmax_apply(struct td_graph *g, struct td_node *y, struct td_node *v,
                                 float alpha, int causal)
{
    struct td_node *src[2] = {y, v};
    struct td_attr attr = {.f = {alpha}, .i = {causal}};
    return td_node_new(g, &td_op_softmax_apply, src, 2, &attr);
}
