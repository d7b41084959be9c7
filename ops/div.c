/* y = a / b with NumPy broadcasting. No attributes. */
#include "ops/binary.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

TD_BINARY_KERNELS(div, dnnl_binary_div, a / b)

/* (ta - y tb) / b, written with y = n so that it differentiates again. */
static struct td_node *div_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    struct td_node *num = t[0];
    if (t[1]) {
        struct td_node *ytb = td_mul(g, n, t[1]);
        num = num ? td_sub(g, num, ytb) : td_neg(g, ytb);
    }
    return num ? td_div(g, num, n->src[1]) : NULL;
}

/* ct / b for a and -(ct / b) y for b, each summed back to its shape. */
static void div_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                    struct td_node **cts)
{
    struct td_node *a = n->src[0], *b = n->src[1];
    struct td_node *q = td_div(g, ct, b);
    if (need & 1u) cts[0] = td_rule_unbroadcast(g, q, &a->shape);
    if (need & 2u) cts[1] = td_neg(g, td_rule_unbroadcast(g, td_mul(g, q, n), &b->shape));
}

const struct td_op_def td_op_div = {
    .name = "div",
    .n_src = 2,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_binary_shape,
    .prepare = div_prepare,
    .release = td_prim_release,
    .forward = div_forward,
    .jvp = div_jvp,
    .vjp = div_vjp,
    .test = TD_BINARY_TEST(0.5f, 2.f, div_reference),
};

struct td_node *td_div(struct td_graph *g, struct td_node *a, struct td_node *b)
{
    return td_binary_new(g, &td_op_div, a, b);
}
