/* y = 1 / (1 + exp(-x)), oneDNN eltwise "logistic". No attributes. */
#include <math.h>

#include "ops/eltwise.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

TD_ELTWISE_PREPARE(sigmoid, dnnl_eltwise_logistic, 0.f, 0.f)
TD_UNARY_REFERENCE(sigmoid, 1.0 / (1.0 + exp(-x)))

/* sigmoid' = y (1 - y) */
static struct td_node *sigmoid_deriv(struct td_graph *g, struct td_node *n)
{
    return td_mul(g, n, td_affine(g, n, -1.f, 1.f));
}

TD_UNARY_RULES(sigmoid, sigmoid_deriv)

const struct td_op_def td_op_sigmoid = {
    .name = "sigmoid",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .prepare = sigmoid_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = sigmoid_jvp,
    .vjp = sigmoid_vjp,
    .test = TD_UNARY_TEST(-2.f, 2.f, 1e-2f, sigmoid_reference),
};

struct td_node *td_sigmoid(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_sigmoid, x, NULL);
}
