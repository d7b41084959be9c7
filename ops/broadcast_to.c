/* broadcast_to: y = x copied to a target shape by NumPy broadcasting; attr
 * i[0] = rank, i[1 .. rank] = target dims (ops/attr_shape.h).
 * x [...] aligned on the right with y [...]; each x dim equals y's or is 1.
 * Linear: the JVP broadcasts the tangent, the VJP sums the cotangent back
 * over the stretched axes. */
#include "ops/attr_shape.h"
#include "ops/rules.h"
#include "ops/strided.h"

static enum td_status broadcast_to_shape(struct td_node *n)
{
    const struct td_shape *xs = &n->src[0]->shape;
    struct td_shape ys;
    char sx[128], sy[128];
    int valid = td_attr_get_shape(&n->attr, &ys);
    td_shape_format(xs, sx, sizeof(sx));
    td_shape_format(&ys, sy, sizeof(sy));
    if (!valid) return td_node_fail(n, "invalid target shape %s (rank %d)", sy, n->attr.i[0]);
    int lead = ys.rank - xs->rank, ok = lead >= 0;
    for (int d = 0; ok && d < xs->rank; d++) ok = xs->dim[d] == 1 || xs->dim[d] == ys.dim[lead + d];
    if (!ok) return td_node_fail(n, "cannot broadcast %s to %s", sx, sy);
    n->shape = ys;
    n->dtype = n->src[0]->dtype;
    return TD_OK;
}

/* x [...] read through strides aligned with y [...]; stretched axes stride 0. */
static void broadcast_to_forward(const struct td_exec *ex)
{
    const struct td_shape *ys = &ex->node->shape, *xs = &ex->node->src[0]->shape;
    int64_t xst[TD_MAX_DIMS], st[TD_MAX_DIMS];
    int lead = ys->rank - xs->rank;
    td_shape_strides(xs, xst);
    for (int d = 0; d < ys->rank; d++)
        st[d] = d < lead || xs->dim[d - lead] == 1 ? 0 : xst[d - lead];
    td_strided_gather(ys, st, ex->in[0], ex->out, ex->nthreads);
}

static struct td_node *broadcast_to_jvp(struct td_graph *g, struct td_node *n,
                                        struct td_node *const *t)
{
    return t[0] ? td_broadcast_to(g, t[0], n->shape) : NULL;
}

static void broadcast_to_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,
                             unsigned need, struct td_node **cts)
{
    if (need & 1u) cts[0] = td_rule_unbroadcast(g, ct, &n->src[0]->shape);
}

/* The test reference: each output index mapped back to x's index. */
static void broadcast_to_reference(const struct td_node *n, const void *const *in, float *out)
{
    const struct td_shape *ys = &n->shape, *xs = &n->src[0]->shape;
    const float *x = in[0];
    int lead = ys->rank - xs->rank;
    int64_t yst[TD_MAX_DIMS], xst[TD_MAX_DIMS];
    td_shape_strides(ys, yst);
    td_shape_strides(xs, xst);
    for (int64_t i = 0; i < td_shape_numel(ys); i++) {
        int64_t j = 0;
        for (int d = 0; d < xs->rank; d++)
            if (xs->dim[d] > 1) j += (i / yst[lead + d] % ys->dim[lead + d]) * xst[d];
        out[i] = x[j];
    }
}

static struct td_node *build_to_345(struct td_graph *g, struct td_node *const *in)
{
    return td_broadcast_to(g, in[0], TD_SHAPE(3, 4, 5));
}

static struct td_node *build_to_24(struct td_graph *g, struct td_node *const *in)
{
    return td_broadcast_to(g, in[0], TD_SHAPE(2, 4));
}

static const struct td_op_case broadcast_to_cases[] = {
    {.n_in = 1, .shape = {{1, {5}}}, .build = build_to_345},
    {.n_in = 1, .shape = {{3, {3, 1, 5}}}, .build = build_to_345},
    {.n_in = 1, .shape = {{2, {4, 1}}}, .build = build_to_345},
    {.n_in = 1, .shape = {{3, {1, 4, 1}}}, .build = build_to_345},
    {.n_in = 1, .shape = {{0}}, .build = build_to_24},
    {.n_in = 1, .shape = {{2, {1, 4}}}, .build = build_to_24},
};

const struct td_op_def td_op_broadcast_to = {
    .name = "broadcast_to",
    .n_src = 1,
    .shape = broadcast_to_shape,
    .forward = broadcast_to_forward,
    .jvp = broadcast_to_jvp,
    .vjp = broadcast_to_vjp,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(broadcast_to_cases) / sizeof(broadcast_to_cases[0])),
            .cases = broadcast_to_cases,
            .reference = broadcast_to_reference,
        },
};

struct td_node *td_broadcast_to(struct td_graph *g, struct td_node *x, struct td_shape shape)
{
    struct td_attr attr;
    td_attr_put_shape(&attr, &shape);
    return td_node_new(g, &td_op_broadcast_to, &x, 1, &attr);
}
