/* y = sign(x) in {-1, 0, 1} (NaN stays NaN), a hand-written loop.
 * Piecewise constant: derivatives are zero. No attributes. */
#include "ops/eltwise.h"
#include "ops/rules.h"

TD_UNARY_LOOP(sign, x != x ? x : (float)((x > 0.f) - (x < 0.f)))
TD_UNARY_REFERENCE(sign, x > 0.0 ? 1.0 : x < 0.0 ? -1.0 : x)

const struct td_op_def td_op_sign = {
    .name = "sign",
    .n_src = 1,
    .traits = TD_TRAIT_NONDIFF | TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .forward = sign_forward,
    .jvp = td_rule_zero_jvp,
    .vjp = td_rule_zero_vjp,
    .test = TD_UNARY_TEST(-2.f, 2.f, 1e-3f, sign_reference),
};

struct td_node *td_sign(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_sign, x, NULL);
}
