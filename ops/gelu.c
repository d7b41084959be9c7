/* y = 0.5 x (1 + tanh(c (x + k x^3))), c = sqrt(2/pi), k = 0.044715: GELU in
 * its tanh form, oneDNN eltwise "gelu_tanh". No attributes. */
#include <math.h>

#include "ops/eltwise.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

#define GELU_C 0.79788456080286535588 /* sqrt(2/pi) */
#define GELU_K 0.044715

TD_ELTWISE_PREPARE(gelu, dnnl_eltwise_gelu_tanh, 0.f, 0.f)
TD_UNARY_REFERENCE(gelu, 0.5 * x * (1.0 + tanh(GELU_C * (x + GELU_K * x * x * x))))

/* With u = c (x + k x^3) and th = tanh(u):
 * gelu' = 0.5 (1 + th) + 0.5 x (1 - th^2) u',  u' = c (1 + 3 k x^2). */
static struct td_node *gelu_deriv(struct td_graph *g, struct td_node *n)
{
    struct td_node *x = n->src[0];
    struct td_node *x2 = td_square(g, x);
    struct td_node *u = td_mul(g, x, td_affine(g, x2, (float)(GELU_C * GELU_K), (float)GELU_C));
    struct td_node *th = td_tanh(g, u);
    struct td_node *half_du =
        td_affine(g, x2, (float)(1.5 * GELU_C * GELU_K), (float)(0.5 * GELU_C));
    struct td_node *sech2 = td_affine(g, td_square(g, th), -1.f, 1.f);
    struct td_node *inner = td_mul(g, td_mul(g, x, sech2), half_du);
    return td_add(g, td_affine(g, th, 0.5f, 0.5f), inner);
}

TD_UNARY_RULES(gelu, gelu_deriv)

const struct td_op_def td_op_gelu = {
    .name = "gelu",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_unary_shape,
    .prepare = gelu_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = gelu_jvp,
    .vjp = gelu_vjp,
    .test = TD_UNARY_TEST(-2.f, 2.f, 1e-2f, gelu_reference),
};

struct td_node *td_gelu(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_gelu, x, NULL);
}
