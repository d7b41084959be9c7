/* y = 1 where x > 0, else 0 (Heaviside), a hand-written
 * loop. Piecewise constant: derivatives are zero. No attributes. */
#include "ops/eltwise.h"
#include "ops/rules.h"

TD_UNARY_LOOP(step, x > 0.f ? 1.f : 0.f)
TD_UNARY_REFERENCE(step, x > 0.0 ? 1.0 : 0.0)

const struct td_op_def td_op_step = {
    .name = "step",
    .n_src = 1,
    .traits = TD_TRAIT_NONDIFF | TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .forward = step_forward,
    .jvp = td_rule_zero_jvp,
    .vjp = td_rule_zero_vjp,
    .test = TD_UNARY_TEST(-2.f, 2.f, 1e-3f, step_reference),
};

struct td_node *td_step(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_step, x, NULL);
}
