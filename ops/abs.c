/* y = |x|, oneDNN eltwise. No attributes. */
#include <math.h>

#include "ops/eltwise.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

TD_ELTWISE_PREPARE(abs, dnnl_eltwise_abs, 0.f, 0.f)
TD_UNARY_REFERENCE(abs, fabs(x))

/* abs' = sign(x), 0 at 0 as in PyTorch */
static struct td_node *abs_deriv(struct td_graph *g, struct td_node *n)
{
    return td_sign(g, n->src[0]);
}

TD_UNARY_RULES(abs, abs_deriv)

const struct td_op_def td_op_abs = {
    .name = "abs",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .prepare = abs_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = abs_jvp,
    .vjp = abs_vjp,
    .test = TD_UNARY_TEST(-2.f, 2.f, 1e-3f, abs_reference),
};

struct td_node *td_abs(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_abs, x, NULL);
}
