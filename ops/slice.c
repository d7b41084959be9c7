/* slice: y = x[..., start : start + length, ...] along one axis, a copy;
 * attr i[0] = axis, i[1] = start, i[2] = length.
 * x [.., D, ..] TD_F32 or TD_I32, y [.., length, ..] of x's dtype, with
 * 0 <= start, 1 <= length, start + length <= D. Linear: the JVP slices the
 * tangent, the VJP pads the cotangent with zeros back to D. */
#include "ops/axis.h"
#include "ops/rules.h"

static enum td_status slice_shape(struct td_node *n)
{
    const struct td_shape *xs = &n->src[0]->shape;
    int axis = n->attr.i[0], start = n->attr.i[1], length = n->attr.i[2];
    enum td_status st = td_axis_check(n, xs, axis);
    if (st != TD_OK) return st;
    char s[128];
    td_shape_format(xs, s, sizeof(s));
    if (length < 1) return td_node_fail(n, "length must be >= 1, got %d", length);
    if (start < 0 || (int64_t)start + length > xs->dim[axis])
        return td_node_fail(n, "range [%d, %lld) is outside axis %d of %s (size %lld)", start,
                            (long long)start + length, axis, s, (long long)xs->dim[axis]);
    n->shape = *xs;
    n->shape.dim[axis] = length;
    n->dtype = n->src[0]->dtype;
    return TD_OK;
}

/* x [outer, D, inner] row-major, y [outer, length, inner]: one contiguous
 * run of length * inner elements per outer row. */
static void slice_forward(const struct td_exec *ex)
{
    const struct td_node *n = ex->node;
    const struct td_shape *xs = &n->src[0]->shape;
    int axis = n->attr.i[0];
    int64_t outer, inner, len = n->attr.i[2];
    td_axis_view(xs, axis, &outer, &inner);
    struct td_copy_run run = {
        .src = (const uint32_t *)ex->in[0] + n->attr.i[1] * inner,
        .src_stride = xs->dim[axis] * inner,
        .dst = ex->out,
        .dst_stride = len * inner,
        .len = len * inner,
    };
    td_copy_rows(&run, 1, outer, ex->nthreads);
}

static struct td_node *slice_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    return t[0] ? td_slice(g, t[0], n->attr.i[0], n->attr.i[1], n->attr.i[2]) : NULL;
}

static void slice_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                      struct td_node **cts)
{
    int axis = n->attr.i[0], start = n->attr.i[1], length = n->attr.i[2];
    int after = (int)n->src[0]->shape.dim[axis] - start - length;
    if (need & 1u) cts[0] = td_pad(g, ct, axis, start, after);
}

/* The test reference: each output element's index along the axis shifted
 * by start. */
static void slice_reference(const struct td_node *n, const void *const *in, float *out)
{
    const struct td_shape *xs = &n->src[0]->shape, *ys = &n->shape;
    const float *x = in[0];
    int axis = n->attr.i[0];
    int64_t xst[TD_MAX_DIMS], yst[TD_MAX_DIMS];
    td_shape_strides(xs, xst);
    td_shape_strides(ys, yst);
    for (int64_t i = 0; i < td_shape_numel(ys); i++) {
        int64_t j = 0;
        for (int d = 0; d < ys->rank; d++)
            j += (i / yst[d] % ys->dim[d] + (d == axis ? n->attr.i[1] : 0)) * xst[d];
        out[i] = x[j];
    }
}

static struct td_node *build_0_1_2(struct td_graph *g, struct td_node *const *in)
{
    return td_slice(g, in[0], 0, 1, 2);
}

static struct td_node *build_1_2_3(struct td_graph *g, struct td_node *const *in)
{
    return td_slice(g, in[0], 1, 2, 3);
}

static struct td_node *build_2_0_1(struct td_graph *g, struct td_node *const *in)
{
    return td_slice(g, in[0], 2, 0, 1);
}

static struct td_node *build_last_4_4(struct td_graph *g, struct td_node *const *in)
{
    return td_slice(g, in[0], td_node_shape(in[0])->rank - 1, 4, 4);
}

static struct td_node *build_0_3_1(struct td_graph *g, struct td_node *const *in)
{
    return td_slice(g, in[0], 0, 3, 1);
}

static const struct td_op_case slice_cases[] = {
    {.n_in = 1, .shape = {{2, {4, 3}}}, .build = build_0_1_2},
    {.n_in = 1, .shape = {{3, {2, 5, 3}}}, .build = build_1_2_3},
    {.n_in = 1, .shape = {{3, {2, 3, 4}}}, .build = build_2_0_1},
    {.n_in = 1, .shape = {{1, {8}}}, .build = build_last_4_4},
    {.n_in = 1, .shape = {{4, {2, 1, 3, 8}}}, .build = build_last_4_4},
    {.n_in = 1, .shape = {{1, {4}}}, .build = build_0_3_1},
};

/* Reads length / D of x: elements written and read, not x's size. */
static double slice_cost(const struct td_node *n)
{
    return 2.0 * (double)td_shape_numel(&n->shape);
}

const struct td_op_def td_op_slice = {
    .name = "slice",
    .n_src = 1,
    .shape = slice_shape,
    .forward = slice_forward,
    .jvp = slice_jvp,
    .vjp = slice_vjp,
    .cost = slice_cost,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(slice_cases) / sizeof(slice_cases[0])),
            .cases = slice_cases,
            .reference = slice_reference,
        },
};

struct td_node *td_slice(struct td_graph *g, struct td_node *x, int axis, int start, int length)
{
    if (x && axis >= 0 && axis < x->shape.rank && start == 0 && length == x->shape.dim[axis])
        return x;
    struct td_attr attr = {.i = {axis, start, length}};
    return td_node_new(g, &td_op_slice, &x, 1, &attr);
}
