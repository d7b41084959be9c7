/* y = a - b with NumPy broadcasting. No attributes. */
#include "ops/binary.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

TD_BINARY_KERNELS(sub, dnnl_binary_sub, a - b)

static struct td_node *sub_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    if (t[0] && t[1]) return td_sub(g, t[0], t[1]);
    if (t[0]) return td_binary_expand(g, t[0], n);
    return t[1] ? td_binary_expand(g, td_neg(g, t[1]), n) : NULL;
}

static void sub_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                    struct td_node **cts)
{
    if (need & 1u) cts[0] = td_rule_unbroadcast(g, ct, &n->src[0]->shape);
    if (need & 2u) cts[1] = td_neg(g, td_rule_unbroadcast(g, ct, &n->src[1]->shape));
}

const struct td_op_def td_op_sub = {
    .name = "sub",
    .n_src = 2,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_binary_shape,
    .prepare = sub_prepare,
    .release = td_prim_release,
    .forward = sub_forward,
    .jvp = sub_jvp,
    .vjp = sub_vjp,
    .test = TD_BINARY_TEST(-2.f, 2.f, sub_reference),
};

struct td_node *td_sub(struct td_graph *g, struct td_node *a, struct td_node *b)
{
    return td_binary_new(g, &td_op_sub, a, b);
}
