/* softmax over the last axis: y = exp(x) / sum_last(exp(x)). x [..., C],
 * y [..., C] (ops/softmax_prim.h). Its Jacobian is symmetric,
 * diag(y) - y y^T, so the JVP and the VJP are one fused op:
 * softmax_apply(y, v) = y * (v - sum_last(y * v)). */
#include "ops/dnnl/prim.h"
#include "ops/rules.h"
#include "ops/softmax_prim.h"

static enum td_status softmax_prepare(struct td_prep *p)
{
    return td_softmax_prepare(p, dnnl_softmax_accurate);
}

static struct td_node *softmax_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    return t[0] ? td_softmax_apply(g, n, t[0], 1.0f, 0) : NULL;
}

static void softmax_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                        struct td_node **cts)
{
    if (need & 1u) cts[0] = td_softmax_apply(g, n, ct, 1.0f, 0);
}

static void softmax_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_softmax_reference(n, in, out, 0);
}

const struct td_op_def td_op_softmax = {
    .name = "softmax",
    .n_src = 1,
    .shape = td_softmax_shape,
    .prepare = softmax_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = softmax_jvp,
    .vjp = softmax_vjp,
    .test = TD_SOFTMAX_TEST(softmax_reference),
};

struct td_node *td_softmax(struct td_graph *g, struct td_node *x)
{
    return td_node_new(g, &td_op_softmax, &x, 1, NULL);
}
