/* y = max(x, 0), a hand-written loop. No attributes.
 * Not oneDNN: its 2.6 eltwise relu maps NaN to 0; here NaN stays NaN, as in
 * PyTorch, so a NaN upstream still reaches the loss. */
#include "ops/eltwise.h"
#include "ops/rules.h"

TD_UNARY_LOOP(relu, x < 0.f ? 0.f : x)
TD_UNARY_REFERENCE(relu, x > 0.0 ? x : 0.0)

/* relu' = step(x), applied in one mask_positive pass. The mask is the
 * output y rather than x (y > 0 exactly where x > 0, NaN masks in both):
 * the next layer's weight gradient keeps y alive anyway, so x is free to
 * die at the relu, which can then overwrite it in place. */
static struct td_node *relu_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    return t[0] ? td_mask_positive(g, t[0], n) : NULL;
}

static void relu_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                     struct td_node **cts)
{
    if (need & 1u) cts[0] = td_mask_positive(g, ct, n);
}

const struct td_op_def td_op_relu = {
    .name = "relu",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .forward = relu_forward,
    .jvp = relu_jvp,
    .vjp = relu_vjp,
    .test = TD_UNARY_TEST(-2.f, 2.f, 1e-3f, relu_reference),
};

struct td_node *td_relu(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_relu, x, NULL);
}
