/* log_softmax over the last axis: y = x - log(sum_last(exp(x))). x [..., C],
 * y [..., C] (ops/softmax_prim.h). exp(y) is the softmax the rules need. */
#include "ops/dnnl/prim.h"
#include "ops/rules.h"
#include "ops/softmax_prim.h"

static enum td_status log_softmax_prepare(struct td_prep *p)
{
    return td_softmax_prepare(p, dnnl_softmax_log);
}

static struct td_node *log_softmax_jvp(struct td_graph *g, struct td_node *n,
                                       struct td_node *const *t)
{
    if (!t[0]) return NULL;
    return td_sub(g, t[0], td_sum_last(g, td_mul(g, td_exp(g, n), t[0])));
}

static void log_softmax_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,
                            unsigned need, struct td_node **cts)
{
    if (need & 1u) cts[0] = td_sub(g, ct, td_mul(g, td_exp(g, n), td_sum_last(g, ct)));
}

static void log_softmax_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_softmax_reference(n, in, out, 1);
}

const struct td_op_def td_op_log_softmax = {
    .name = "log_softmax",
    .n_src = 1,
    .shape = td_softmax_shape,
    .prepare = log_softmax_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = log_softmax_jvp,
    .vjp = log_softmax_vjp,
    .test = TD_SOFTMAX_TEST(log_softmax_reference),
};

struct td_node *td_log_softmax(struct td_graph *g, struct td_node *x)
{
    return td_node_new(g, &td_op_log_softmax, &x, 1, NULL);
}
