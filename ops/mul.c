/* y = a * b with NumPy broadcasting. No attributes. */
#include "ops/binary.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

TD_BINARY_KERNELS(mul, dnnl_binary_mul, a *b)

/* ta b + a tb; each product already has the output's shape. */
static struct td_node *mul_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    struct td_node *a = n->src[0], *b = n->src[1];
    return td_rule_add(g, t[0] ? td_mul(g, t[0], b) : NULL, t[1] ? td_mul(g, a, t[1]) : NULL);
}

static void mul_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                    struct td_node **cts)
{
    struct td_node *a = n->src[0], *b = n->src[1];
    if (need & 1u) cts[0] = td_rule_unbroadcast(g, td_mul(g, ct, b), &a->shape);
    if (need & 2u) cts[1] = td_rule_unbroadcast(g, td_mul(g, ct, a), &b->shape);
}

const struct td_op_def td_op_mul = {
    .name = "mul",
    .n_src = 2,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_binary_shape,
    .prepare = mul_prepare,
    .release = td_prim_release,
    .forward = mul_forward,
    .jvp = mul_jvp,
    .vjp = mul_vjp,
    .test = TD_BINARY_TEST(-2.f, 2.f, mul_reference),
};

struct td_node *td_mul(struct td_graph *g, struct td_node *a, struct td_node *b)
{
    return td_binary_new(g, &td_op_mul, a, b);
}
