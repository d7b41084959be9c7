/* y = sqrt(x), oneDNN eltwise. No attributes. */
#include <math.h>

#include "ops/eltwise.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

TD_ELTWISE_PREPARE(sqrt, dnnl_eltwise_sqrt, 0.f, 0.f)
TD_UNARY_REFERENCE(sqrt, sqrt(x))

/* sqrt' = 1 / (2 y) */
static struct td_node *sqrt_denom(struct td_graph *g, struct td_node *n)
{
    return td_scale(g, n, 2.f);
}

TD_UNARY_QUOTIENT_RULES(sqrt, sqrt_denom)

const struct td_op_def td_op_sqrt = {
    .name = "sqrt",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .prepare = sqrt_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = sqrt_jvp,
    .vjp = sqrt_vjp,
    .test = TD_UNARY_TEST(0.5f, 2.f, 1e-2f, sqrt_reference),
};

struct td_node *td_sqrt(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_sqrt, x, NULL);
}
