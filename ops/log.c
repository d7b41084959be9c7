/* y = log(x), a hand-written loop over libm's logf. No attributes.
 * Not oneDNN: its 2.6 eltwise log is off by up to 3.4e-6 absolute near
 * x = 1 (relative error 1.4e-3 on [0.5, 2]), where logf is within an ulp. */
#include <math.h>

#include "ops/eltwise.h"
#include "ops/rules.h"

TD_UNARY_LOOP(log, logf(x))
TD_UNARY_REFERENCE(log, log(x))

/* log' = 1 / x */
static struct td_node *log_denom(struct td_graph *g, struct td_node *n)
{
    (void)g;
    return n->src[0];
}

TD_UNARY_QUOTIENT_RULES(log, log_denom)

const struct td_op_def td_op_log = {
    .name = "log",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .forward = log_forward,
    .jvp = log_jvp,
    .vjp = log_vjp,
    .test = TD_UNARY_TEST(0.5f, 2.f, 1e-2f, log_reference),
};

struct td_node *td_log(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_log, x, NULL);
}
