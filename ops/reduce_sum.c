/* reduce_sum: y = sum of x over the axes in attr i[0] (bitmask), keeping them
 * as size 1 when attr i[1] (keepdims). x [...], y [...] (see ops/reduce.h).
 * Linear: the JVP sums the tangent, the VJP spreads the cotangent back. */
#include "ops/reduce.h"
#include "ops/rules.h"

/* x [...] summed into y [...] (see ops/reduce.h). */
static void reduce_sum_forward(const struct td_exec *ex)
{
    td_reduce_run(ex, 1.0f);
}

static struct td_node *reduce_sum_jvp(struct td_graph *g, struct td_node *n,
                                      struct td_node *const *t)
{
    return t[0] ? td_reduce_sum(g, t[0], (unsigned)n->attr.i[0], n->attr.i[1]) : NULL;
}

static void reduce_sum_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                           struct td_node **cts)
{
    if (need & 1u) cts[0] = td_reduce_spread(g, n, ct);
}

static void reduce_sum_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_reduce_reference(n, in, out, 0);
}

TD_REDUCE_CASES(td_reduce_sum);

const struct td_op_def td_op_reduce_sum = {
    .name = "reduce_sum",
    .n_src = 1,
    .shape = td_reduce_shape,
    .forward = reduce_sum_forward,
    .jvp = reduce_sum_jvp,
    .vjp = reduce_sum_vjp,
    .test = TD_REDUCE_TEST(td_reduce_sum_cases, reduce_sum_reference),
};

struct td_node *td_reduce_sum(struct td_graph *g, struct td_node *x, unsigned axes_mask,
                              int keepdims)
{
    struct td_attr attr = {.i = {(int)axes_mask, keepdims != 0}};
    return td_node_new(g, &td_op_reduce_sum, &x, 1, &attr);
}

struct td_node *td_sum_all(struct td_graph *g, struct td_node *x)
{
    unsigned mask = x ? (1u << x->shape.rank) - 1u : 0u;
    return td_reduce_sum(g, x, mask, 0);
}
