/* y = 1 / sqrt(x), oneDNN eltwise "pow" (1 * x^-0.5). No attributes. */
#include <math.h>

#include "ops/eltwise.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

TD_ELTWISE_PREPARE(rsqrt, dnnl_eltwise_pow, 1.f, -0.5f)
TD_UNARY_REFERENCE(rsqrt, 1.0 / sqrt(x))

/* rsqrt' = -0.5 x^-1.5 = -0.5 y / x */
static struct td_node *rsqrt_deriv(struct td_graph *g, struct td_node *n)
{
    return td_div(g, td_scale(g, n, -0.5f), n->src[0]);
}

TD_UNARY_RULES(rsqrt, rsqrt_deriv)

const struct td_op_def td_op_rsqrt = {
    .name = "rsqrt",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .prepare = rsqrt_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = rsqrt_jvp,
    .vjp = rsqrt_vjp,
    .test = TD_UNARY_TEST(0.5f, 2.f, 1e-2f, rsqrt_reference),
};

struct td_node *td_rsqrt(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_rsqrt, x, NULL);
}
