/* y = a + b with NumPy broadcasting. No attributes. */
#include "ops/binary.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

TD_BINARY_KERNELS(add, dnnl_binary_add, a + b)

static struct td_node *add_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    if (t[0] && t[1]) return td_add(g, t[0], t[1]);
    return td_binary_expand(g, t[0] ? t[0] : t[1], n);
}

static void add_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                    struct td_node **cts)
{
    if (need & 1u) cts[0] = td_rule_unbroadcast(g, ct, &n->src[0]->shape);
    if (need & 2u) cts[1] = td_rule_unbroadcast(g, ct, &n->src[1]->shape);
}

const struct td_op_def td_op_add = {
    .name = "add",
    .n_src = 2,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_binary_shape,
    .prepare = add_prepare,
    .release = td_prim_release,
    .forward = add_forward,
    .jvp = add_jvp,
    .vjp = add_vjp,
    .test = TD_BINARY_TEST(-2.f, 2.f, add_reference),
};

struct td_node *td_add(struct td_graph *g, struct td_node *a, struct td_node *b)
{
    return td_binary_new(g, &td_op_add, a, b);
}
