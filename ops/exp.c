/* y = exp(x), a hand-written loop over libm's expf. No attributes.
 * Not oneDNN: its 2.6 eltwise exp maps NaN to +inf, which would hide where
 * a NaN came from. */
#include <math.h>

#include "ops/eltwise.h"
#include "ops/rules.h"

TD_UNARY_LOOP(exp, expf(x))
TD_UNARY_REFERENCE(exp, exp(x))

/* exp' = y */
static struct td_node *exp_deriv(struct td_graph *g, struct td_node *n)
{
    (void)g;
    return n;
}

TD_UNARY_RULES(exp, exp_deriv)

const struct td_op_def td_op_exp = {
    .name = "exp",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .forward = exp_forward,
    .jvp = exp_jvp,
    .vjp = exp_vjp,
    .test = TD_UNARY_TEST(-2.f, 2.f, 1e-2f, exp_reference),
};

struct td_node *td_exp(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_exp, x, NULL);
}
