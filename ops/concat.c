/* concat: y = the operands joined along one axis, in order; attr i[0] =
 * axis. Variadic: 1 to TD_MAX_SRC operands x_k [.., D_k, ..] of one dtype
 * (TD_F32 or TD_I32), equal off the axis; y [.., sum D_k, ..]. Linear: the
 * VJP slices the cotangent, the JVP joins the tangents (a lone tangent is
 * padded instead, so zeros are only made when two or more operands have
 * tangents and another has none). */
#include <stdio.h>

#include "ops/axis.h"
#include "ops/rules.h"

static const char *dtype_name(enum td_dtype t)
{
    return t == TD_F32 ? "float32" : "int32";
}

static enum td_status concat_shape(struct td_node *n)
{
    const struct td_node *x0 = n->src[0];
    int axis = n->attr.i[0];
    enum td_status st = td_axis_check(n, &x0->shape, axis);
    if (st != TD_OK) return st;
    n->shape = x0->shape;
    for (int k = 1; k < n->n_src; k++) {
        const struct td_node *xk = n->src[k];
        char s0[128], sk[128];
        td_shape_format(&x0->shape, s0, sizeof(s0));
        td_shape_format(&xk->shape, sk, sizeof(sk));
        if (xk->dtype != x0->dtype)
            return td_node_fail(n, "operand %d is %s %s but operand 1 is %s %s", k + 1,
                                dtype_name(xk->dtype), sk, dtype_name(x0->dtype), s0);
        int same = xk->shape.rank == x0->shape.rank;
        for (int d = 0; same && d < x0->shape.rank; d++)
            same = d == axis || xk->shape.dim[d] == x0->shape.dim[d];
        if (!same)
            return td_node_fail(n, "operand %d %s does not match operand 1 %s off axis %d", k + 1,
                                sk, s0, axis);
        n->shape.dim[axis] += xk->shape.dim[axis];
    }
    n->dtype = x0->dtype;
    return TD_OK;
}

/* x_k [outer, D_k, inner] row-major, y [outer, sum D_k, inner]: per outer
 * row one run from each operand, side by side. */
static void concat_forward(const struct td_exec *ex)
{
    const struct td_node *n = ex->node;
    int axis = n->attr.i[0];
    int64_t outer, inner, row = n->shape.dim[axis], at = 0;
    td_axis_view(&n->shape, axis, &outer, &inner);
    struct td_copy_run runs[TD_MAX_SRC];
    for (int k = 0; k < n->n_src; k++) {
        int64_t d = n->src[k]->shape.dim[axis];
        runs[k] = (struct td_copy_run){
            .src = ex->in[k],
            .src_stride = d * inner,
            .dst = (uint32_t *)ex->out + at * inner,
            .dst_stride = row * inner,
            .len = d * inner,
        };
        at += d;
    }
    td_copy_rows(runs, n->n_src, outer, ex->nthreads);
}

static struct td_node *concat_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    int axis = n->attr.i[0], lone = -1, count = 0;
    for (int k = 0; k < n->n_src; k++)
        if (t[k]) lone = k, count++;
    if (count == 0) return NULL;
    if (count == 1) {
        int before = 0;
        for (int k = 0; k < lone; k++) before += (int)n->src[k]->shape.dim[axis];
        int after = (int)n->shape.dim[axis] - before - (int)n->src[lone]->shape.dim[axis];
        return td_pad(g, t[lone], axis, before, after);
    }
    struct td_node *parts[TD_MAX_SRC];
    for (int k = 0; k < n->n_src; k++) parts[k] = t[k] ? t[k] : td_fill(g, n->src[k]->shape, 0);
    return td_concat(g, parts, n->n_src, axis);
}

static void concat_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                       struct td_node **cts)
{
    int axis = n->attr.i[0], at = 0;
    for (int k = 0; k < n->n_src; k++) {
        int d = (int)n->src[k]->shape.dim[axis];
        if (need & (1u << k)) cts[k] = td_slice(g, ct, axis, at, d);
        at += d;
    }
}

/* The test reference: each output element taken from the operand whose
 * range along the axis holds its index. */
static void concat_reference(const struct td_node *n, const void *const *in, float *out)
{
    const struct td_shape *ys = &n->shape;
    int axis = n->attr.i[0];
    int64_t yst[TD_MAX_DIMS];
    td_shape_strides(ys, yst);
    for (int64_t i = 0; i < td_shape_numel(ys); i++) {
        int64_t a = i / yst[axis] % ys->dim[axis];
        int k = 0;
        while (a >= n->src[k]->shape.dim[axis]) a -= n->src[k++]->shape.dim[axis];
        const struct td_shape *xs = &n->src[k]->shape;
        int64_t xst[TD_MAX_DIMS], j = 0;
        td_shape_strides(xs, xst);
        for (int d = 0; d < ys->rank; d++) j += (d == axis ? a : i / yst[d] % ys->dim[d]) * xst[d];
        out[i] = ((const float *)in[k])[j];
    }
}

static struct td_node *build_axis0_2(struct td_graph *g, struct td_node *const *in)
{
    return td_concat(g, in, 2, 0);
}

static struct td_node *build_axis1_2(struct td_graph *g, struct td_node *const *in)
{
    return td_concat(g, in, 2, 1);
}

static struct td_node *build_axis1_3(struct td_graph *g, struct td_node *const *in)
{
    return td_concat(g, in, 3, 1);
}

static struct td_node *build_last_3(struct td_graph *g, struct td_node *const *in)
{
    return td_concat(g, in, 3, td_node_shape(in[0])->rank - 1);
}

static const struct td_op_case concat_cases[] = {
    {.n_in = 2, .shape = {{2, {2, 3}}, {2, {4, 3}}}, .build = build_axis0_2},
    {.n_in = 2, .shape = {{3, {2, 3, 4}}, {3, {2, 1, 4}}}, .build = build_axis1_2},
    {.n_in = 3, .shape = {{3, {2, 2, 3}}, {3, {2, 1, 3}}, {3, {2, 3, 3}}}, .build = build_axis1_3},
    {.n_in = 3, .shape = {{2, {3, 2}}, {2, {3, 5}}, {2, {3, 1}}}, .build = build_last_3},
    {.n_in = 3, .shape = {{1, {2}}, {1, {1}}, {1, {3}}}, .build = build_last_3},
    {.n_in = 3,
     .shape = {{4, {2, 3, 1, 2}}, {4, {2, 3, 1, 1}}, {4, {2, 3, 1, 2}}},
     .build = build_last_3},
};

const struct td_op_def td_op_concat = {
    .name = "concat",
    .n_src = 0,
    .shape = concat_shape,
    .forward = concat_forward,
    .jvp = concat_jvp,
    .vjp = concat_vjp,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(concat_cases) / sizeof(concat_cases[0])),
            .cases = concat_cases,
            .reference = concat_reference,
        },
};

struct td_node *td_concat(struct td_graph *g, struct td_node *const *xs, int n, int axis)
{
    if (!g) return NULL;
    if (!xs || n < 1 || n > TD_MAX_SRC) {
        td_graph_fail(g, TD_ERR_ARG, "concat: takes 1 to %d operands (TD_MAX_SRC), got %d%s",
                      TD_MAX_SRC, n, xs ? "" : " and a NULL array");
        return NULL;
    }
    struct td_attr attr = {.i = {axis}};
    if (n == 1 && xs[0] && axis >= 0 && axis < xs[0]->shape.rank) return xs[0];
    return td_node_new(g, &td_op_concat, xs, n, &attr);
}

enum td_status td_split(struct td_graph *g, struct td_node *x, int axis, int n,
                        struct td_node **out)
{
    if (!g) return TD_ERR_ARG;
    for (int k = 0; out && k < n; k++) out[k] = NULL;
    if (!x || !out) {
        td_graph_fail(g, TD_ERR_ARG, "split: %s is NULL", x ? "the output array" : "the operand");
        return td_graph_status(g);
    }
    char s[128];
    td_shape_format(&x->shape, s, sizeof(s));
    if (axis < 0 || axis >= x->shape.rank) {
        td_graph_fail(g, TD_ERR_SHAPE, "split: axis %d out of range for %s", axis, s);
        return TD_ERR_SHAPE;
    }
    if (n < 1 || x->shape.dim[axis] % n != 0) {
        td_graph_fail(g, TD_ERR_SHAPE,
                      "split: axis %d of %s (size %lld) does not split into %d "
                      "equal parts",
                      axis, s, (long long)x->shape.dim[axis], n);
        return TD_ERR_SHAPE;
    }
    int part = (int)(x->shape.dim[axis] / n);
    for (int k = 0; k < n; k++) {
        out[k] = td_slice(g, x, axis, k * part, part);
        if (!out[k]) {
            for (int j = 0; j < k; j++) out[j] = NULL;
            return td_graph_status(g);
        }
    }
    return TD_OK;
}
