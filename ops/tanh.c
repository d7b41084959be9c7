/* y = tanh(x), oneDNN eltwise. No attributes. */
#include <math.h>

#include "ops/eltwise.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

TD_ELTWISE_PREPARE(tanh, dnnl_eltwise_tanh, 0.f, 0.f)
TD_UNARY_REFERENCE(tanh, tanh(x))

/* tanh' = 1 - y^2 */
static struct td_node *tanh_deriv(struct td_graph *g, struct td_node *n)
{
    return td_affine(g, td_square(g, n), -1.f, 1.f);
}

TD_UNARY_RULES(tanh, tanh_deriv)

const struct td_op_def td_op_tanh = {
    .name = "tanh",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .prepare = tanh_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = tanh_jvp,
    .vjp = tanh_vjp,
    .test = TD_UNARY_TEST(-2.f, 2.f, 1e-2f, tanh_reference),
};

struct td_node *td_tanh(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_tanh, x, NULL);
}
