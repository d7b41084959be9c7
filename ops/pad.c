/* pad: y = x with `before` zeros ahead of and `after` zeros behind it along
 * one axis; attr i[0] = axis, i[1] = before, i[2] = after.
 * x [.., D, ..] TD_F32 or TD_I32, y [.., before + D + after, ..] of x's
 * dtype; before, after >= 0. Linear: the JVP pads the tangent, the VJP
 * slices the cotangent. */
#include "ops/axis.h"
#include "ops/rules.h"

static enum td_status pad_shape(struct td_node *n)
{
    const struct td_shape *xs = &n->src[0]->shape;
    int axis = n->attr.i[0], before = n->attr.i[1], after = n->attr.i[2];
    enum td_status st = td_axis_check(n, xs, axis);
    if (st != TD_OK) return st;
    if (before < 0 || after < 0)
        return td_node_fail(n, "padding before %d and after %d must be >= 0", before, after);
    n->shape = *xs;
    n->shape.dim[axis] += (int64_t)before + after;
    n->dtype = n->src[0]->dtype;
    return TD_OK;
}

/* x [outer, D, inner] row-major, y [outer, before + D + after, inner]:
 * per outer row a run of zeros, x's run, and zeros again. */
static void pad_forward(const struct td_exec *ex)
{
    const struct td_node *n = ex->node;
    int axis = n->attr.i[0];
    int64_t outer, inner, before = n->attr.i[1], after = n->attr.i[2];
    int64_t d = n->src[0]->shape.dim[axis], row = n->shape.dim[axis];
    td_axis_view(&n->shape, axis, &outer, &inner);
    uint32_t *y = ex->out;
    struct td_copy_run runs[3] = {
        {.dst = y, .dst_stride = row * inner, .len = before * inner},
        {.src = ex->in[0],
         .src_stride = d * inner,
         .dst = y + before * inner,
         .dst_stride = row * inner,
         .len = d * inner},
        {.dst = y + (before + d) * inner, .dst_stride = row * inner, .len = after * inner},
    };
    td_copy_rows(runs, 3, outer, ex->nthreads);
}

static struct td_node *pad_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    return t[0] ? td_pad(g, t[0], n->attr.i[0], n->attr.i[1], n->attr.i[2]) : NULL;
}

static void pad_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                    struct td_node **cts)
{
    int axis = n->attr.i[0];
    if (need & 1u) cts[0] = td_slice(g, ct, axis, n->attr.i[1], (int)n->src[0]->shape.dim[axis]);
}

/* The test reference: every output element is x's element at the index
 * shifted back by `before`, or zero outside x. */
static void pad_reference(const struct td_node *n, const void *const *in, float *out)
{
    const struct td_shape *xs = &n->src[0]->shape, *ys = &n->shape;
    const float *x = in[0];
    int axis = n->attr.i[0];
    int64_t xst[TD_MAX_DIMS], yst[TD_MAX_DIMS];
    td_shape_strides(xs, xst);
    td_shape_strides(ys, yst);
    for (int64_t i = 0; i < td_shape_numel(ys); i++) {
        int64_t j = 0, k = i / yst[axis] % ys->dim[axis] - n->attr.i[1];
        for (int d = 0; d < ys->rank; d++) j += (d == axis ? k : i / yst[d] % ys->dim[d]) * xst[d];
        out[i] = k >= 0 && k < xs->dim[axis] ? x[j] : 0.0f;
    }
}

static struct td_node *build_0_1_2(struct td_graph *g, struct td_node *const *in)
{
    return td_pad(g, in[0], 0, 1, 2);
}

static struct td_node *build_1_0_3(struct td_graph *g, struct td_node *const *in)
{
    return td_pad(g, in[0], 1, 0, 3);
}

static struct td_node *build_2_2_0(struct td_graph *g, struct td_node *const *in)
{
    return td_pad(g, in[0], 2, 2, 0);
}

static struct td_node *build_1_1_1(struct td_graph *g, struct td_node *const *in)
{
    return td_pad(g, in[0], 1, 1, 1);
}

static const struct td_op_case pad_cases[] = {
    {.n_in = 1, .shape = {{2, {3, 4}}}, .build = build_0_1_2},
    {.n_in = 1, .shape = {{3, {2, 3, 4}}}, .build = build_1_0_3},
    {.n_in = 1, .shape = {{3, {2, 3, 4}}}, .build = build_2_2_0},
    {.n_in = 1, .shape = {{1, {5}}}, .build = build_0_1_2},
    {.n_in = 1, .shape = {{4, {2, 1, 3, 2}}}, .build = build_1_1_1},
};

const struct td_op_def td_op_pad = {
    .name = "pad",
    .n_src = 1,
    .shape = pad_shape,
    .forward = pad_forward,
    .jvp = pad_jvp,
    .vjp = pad_vjp,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(pad_cases) / sizeof(pad_cases[0])),
            .cases = pad_cases,
            .reference = pad_reference,
        },
};

struct td_node *td_pad(struct td_graph *g, struct td_node *x, int axis, int before, int after)
{
    if (x && axis >= 0 && axis < x->shape.rank && before == 0 && after == 0) return x;
    struct td_attr attr = {.i = {axis, before, after}};
    return td_node_new(g, &td_op_pad, &x, 1, &attr);
}
