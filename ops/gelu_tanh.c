/* y = 0.5 x (1 + tanh(c (x + k x^3))), c = sqrt(2/pi), k = 0.044715: GELU in
 * its tanh approximation, oneDNN eltwise "gelu_tanh". No attributes.
 * Rules: the fused gelu_tanh_grad(x, t) and gelu_tanh_grad(x, ct). */
#include <math.h>

#include "ops/eltwise.h"
#include "ops/dnnl/prim.h"
#include "ops/gelu_common.h"
#include "ops/rules.h"

TD_ELTWISE_PREPARE(gelu_tanh, dnnl_eltwise_gelu_tanh, 0.f, 0.f)
TD_UNARY_REFERENCE(gelu_tanh, 0.5 * x * (1.0 + tanh(TD_GELU_C * (x + TD_GELU_K * x * x * x))))

static struct td_node *gelu_tanh_jvp(struct td_graph *g, struct td_node *n,
                                     struct td_node *const *t)
{
    return t[0] ? td_gelu_tanh_grad(g, n->src[0], t[0]) : NULL;
}

static void gelu_tanh_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                          struct td_node **cts)
{
    if (need & 1u) cts[0] = td_gelu_tanh_grad(g, n->src[0], ct);
}

const struct td_op_def td_op_gelu_tanh = {
    .name = "gelu_tanh",
    .n_src = 1,
    .traits = TD_TRAIT_ELEMENTWISE | TD_TRAIT_REMAT,
    .shape = td_unary_shape,
    .prepare = gelu_tanh_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = gelu_tanh_jvp,
    .vjp = gelu_tanh_vjp,
    .test = TD_UNARY_TEST(-2.f, 2.f, 1e-2f, gelu_tanh_reference),
};

struct td_node *td_gelu_tanh(struct td_graph *g, struct td_node *x)
{
    return td_unary_new(g, &td_op_gelu_tanh, x, NULL);
}
