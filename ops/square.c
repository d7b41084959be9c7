/* y = x^2, oneDNN eltwise. No attributes. */
#include <math.h>

#include "ops/eltwise.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

TD_ELTWISE_PREPARE(square, dnnl_eltwise_square, 0.f, 0.f)
TD_UNARY_REFERENCE(square, x *x)

/* square' = 2 x */
static struct td_node *square_deriv(struct td_graph *g, struct td_node *n)
{
    return td_scale(g, n->src[0], 2.f);
}

TD_UNARY_RULES(square, square_deriv)

const struct td_op_def td_op_square = {
    .name = "square",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .prepare = square_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = square_jvp,
    .vjp = square_vjp,
    .test = TD_UNARY_TEST(-2.f, 2.f, 1e-2f, square_reference),
};

struct td_node *td_square(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_square, x, NULL);
}
