/* reduce_mean: y = mean of x over the axes in attr i[0] (bitmask), keeping
 * them as size 1 when attr i[1] (keepdims). x [...], y [...] (see
 * ops/reduce.h). Linear: the rules are reduce_sum's scaled by 1/count. */
#include "ops/reduce.h"
#include "ops/rules.h"

/* x [...] averaged into y [...] (see ops/reduce.h). */
static void reduce_mean_forward(const struct td_exec *ex)
{
    td_reduce_run(ex, (float)(1.0 / (double)td_reduce_count(ex->node)));
}

static struct td_node *reduce_mean_jvp(struct td_graph *g, struct td_node *n,
                                       struct td_node *const *t)
{
    return t[0] ? td_reduce_mean(g, t[0], (unsigned)n->attr.i[0], n->attr.i[1]) : NULL;
}

static void reduce_mean_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,
                            unsigned need, struct td_node **cts)
{
    if (!(need & 1u)) return;
    /* Scaling before spreading touches the (smaller) reduced tensor. */
    int64_t count = td_reduce_count(n);
    struct td_node *s = count == 1 ? ct : td_scale(g, ct, (float)(1.0 / (double)count));
    cts[0] = td_reduce_spread(g, n, s);
}

static void reduce_mean_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_reduce_reference(n, in, out, 1);
}

TD_REDUCE_CASES(td_reduce_mean);

const struct td_op_def td_op_reduce_mean = {
    .name = "reduce_mean",
    .n_src = 1,
    .shape = td_reduce_shape,
    .forward = reduce_mean_forward,
    .jvp = reduce_mean_jvp,
    .vjp = reduce_mean_vjp,
    .test = TD_REDUCE_TEST(td_reduce_mean_cases, reduce_mean_reference),
};

struct td_node *td_reduce_mean(struct td_graph *g, struct td_node *x, unsigned axes_mask,
                               int keepdims)
{
    struct td_attr attr = {.i = {(int)axes_mask, keepdims != 0}};
    return td_node_new(g, &td_op_reduce_mean, &x, 1, &attr);
}
