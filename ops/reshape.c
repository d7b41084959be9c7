/* reshape: y = x's elements in a new shape of equal element count; attr
 * i[0] = rank, i[1 .. rank] = dims (ops/attr_shape.h). x [...], y [...] are
 * the same row-major bytes, so the planner normally aliases y to x and the
 * kernel only copies when it did not. Linear: the rules reshape back. */
#include <string.h>

#include "ops/attr_shape.h"
#include "ops/rules.h"

static enum td_status reshape_shape(struct td_node *n)
{
    const struct td_shape *xs = &n->src[0]->shape;
    struct td_shape ys;
    char sx[128], sy[128];
    int valid = td_attr_get_shape(&n->attr, &ys);
    td_shape_format(xs, sx, sizeof(sx));
    td_shape_format(&ys, sy, sizeof(sy));
    if (!valid) return td_node_fail(n, "invalid target shape %s (rank %d)", sy, n->attr.i[0]);
    if (td_shape_numel(xs) != td_shape_numel(&ys))
        return td_node_fail(n, "cannot reshape %s (%lld elements) to %s (%lld elements)", sx,
                            (long long)td_shape_numel(xs), sy, (long long)td_shape_numel(&ys));
    n->shape = ys;
    n->dtype = n->src[0]->dtype;
    return TD_OK;
}

static void reshape_forward(const struct td_exec *ex)
{
    if (ex->out != ex->in[0]) memcpy(ex->out, ex->in[0], td_node_bytes(ex->node));
}

static struct td_node *reshape_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    return t[0] ? td_reshape(g, t[0], n->shape) : NULL;
}

static void reshape_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                        struct td_node **cts)
{
    if (need & 1u) cts[0] = td_reshape(g, ct, n->src[0]->shape);
}

static void reshape_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *x = in[0];
    for (int64_t i = 0; i < td_shape_numel(&n->shape); i++) out[i] = x[i];
}

static struct td_node *build_to_6_4(struct td_graph *g, struct td_node *const *in)
{
    return td_reshape(g, in[0], TD_SHAPE(6, 4));
}

static struct td_node *build_to_scalar(struct td_graph *g, struct td_node *const *in)
{
    return td_reshape(g, in[0], TD_SHAPE());
}

static const struct td_op_case reshape_cases[] = {
    {.n_in = 1, .shape = {{3, {2, 3, 4}}}, .build = build_to_6_4},
    {.n_in = 1, .shape = {{1, {24}}}, .build = build_to_6_4},
    {.n_in = 1, .shape = {{2, {1, 1}}}, .build = build_to_scalar},
};

const struct td_op_def td_op_reshape = {
    .name = "reshape",
    .n_src = 1,
    .traits = TD_TRAIT_VIEW,
    .shape = reshape_shape,
    .forward = reshape_forward,
    .jvp = reshape_jvp,
    .vjp = reshape_vjp,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(reshape_cases) / sizeof(reshape_cases[0])),
            .cases = reshape_cases,
            .reference = reshape_reference,
        },
};

struct td_node *td_reshape(struct td_graph *g, struct td_node *x, struct td_shape shape)
{
    struct td_attr attr;
    td_attr_put_shape(&attr, &shape);
    return td_node_new(g, &td_op_reshape, &x, 1, &attr);
}
