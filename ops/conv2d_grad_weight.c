/* conv2d_grad_weight: dw = dT/dw of ops/conv.h, the weight gradient of a
 * convolution: x [N, C, H, W], dy [N, O, OH, OW] -> dw [O, C, KH, KW] with
 * (KH, KW) from attr i[6..7]. One oneDNN convolution backward-weights
 * primitive. Bilinear in (x, dy): the JVP is conv2d_grad_weight of the
 * tangents; the VJP of a cotangent u [O, C, KH, KW] is
 * conv2d_grad_input(dy, u) for x and conv2d(x, u) for dy. */
#include "ops/conv.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

static enum td_status grad_weight_shape(struct td_node *n)
{
    return td_conv_shape(n, TD_CONV_BWD_WEIGHTS);
}

static enum td_status grad_weight_prepare(struct td_prep *p)
{
    return td_conv_prepare(p, TD_CONV_BWD_WEIGHTS);
}

static struct td_node *apply(struct td_graph *g, struct td_node *n, struct td_node *x,
                             struct td_node *dy)
{
    struct td_conv2d_params p = td_conv_params(n);
    return td_conv2d_grad_weight(g, x, dy, &p, n->attr.i[6], n->attr.i[7]);
}

static struct td_node *grad_weight_jvp(struct td_graph *g, struct td_node *n,
                                       struct td_node *const *t)
{
    struct td_node *a = t[0] ? apply(g, n, t[0], n->src[1]) : NULL;
    struct td_node *b = t[1] ? apply(g, n, n->src[0], t[1]) : NULL;
    return td_rule_add(g, a, b);
}

static void grad_weight_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,
                            unsigned need, struct td_node **cts)
{
    struct td_node *x = n->src[0], *dy = n->src[1];
    struct td_conv2d_params p = td_conv_params(n);
    if (need & 1u)
        cts[0] = td_conv2d_grad_input(g, dy, ct, &p, (int)x->shape.dim[2], (int)x->shape.dim[3]);
    if (need & 2u) cts[1] = td_conv2d_op(g, x, ct, NULL, &p);
}

static void grad_weight_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_conv_reference(n, TD_CONV_BWD_WEIGHTS, in, out);
}

static double grad_weight_cost(const struct td_node *n)
{
    return td_conv_cost(n, TD_CONV_BWD_WEIGHTS);
}

static double grad_weight_flops(const struct td_node *n)
{
    return td_conv_flops(n, TD_CONV_BWD_WEIGHTS);
}

#define GW_BUILD(name, sh, sw, ph, pw, dh, dw, kh, kw)                                             \
    static struct td_node *name(struct td_graph *g, struct td_node *const *in)                     \
    {                                                                                              \
        const struct td_conv2d_params p = {{sh, sw}, {ph, pw}, {dh, dw}};                          \
        return td_conv2d_grad_weight(g, in[0], in[1], &p, kh, kw);                                 \
    }

GW_BUILD(build_plain, 1, 1, 0, 0, 1, 1, 3, 3)
GW_BUILD(build_s2p1, 2, 2, 1, 1, 1, 1, 3, 3)
GW_BUILD(build_d2p2, 1, 1, 2, 2, 2, 2, 3, 3)
GW_BUILD(build_s21p12, 2, 1, 1, 2, 1, 1, 2, 5)
GW_BUILD(build_s2_odd, 2, 2, 0, 0, 1, 1, 3, 2)
GW_BUILD(build_p1_3x3, 1, 1, 1, 1, 1, 1, 3, 3)
GW_BUILD(build_s3d2p1, 3, 2, 1, 0, 2, 1, 3, 2)
GW_BUILD(build_s2d2p1_3x3, 2, 2, 1, 1, 2, 2, 3, 3)
GW_BUILD(build_s2_3x3, 2, 2, 0, 0, 1, 1, 3, 3)

/* The operands of conv2d's cases seen from the other side: dy has the
 * convolution's output shape. */
static const struct td_op_case grad_weight_cases[] = {
    {.n_in = 2, .shape = {{4, {2, 3, 7, 7}}, {4, {2, 4, 5, 5}}}, .build = build_plain},
    {.n_in = 2, .shape = {{4, {1, 3, 8, 8}}, {4, {1, 5, 4, 4}}}, .build = build_s2p1},
    {.n_in = 2, .shape = {{4, {2, 2, 9, 9}}, {4, {2, 3, 9, 9}}}, .build = build_d2p2},
    {.n_in = 2, .shape = {{4, {2, 3, 6, 9}}, {4, {2, 4, 4, 9}}}, .build = build_s21p12},
    {.n_in = 2, .shape = {{4, {2, 3, 8, 7}}, {4, {2, 4, 3, 3}}}, .build = build_s2_odd},
    {.n_in = 2, .shape = {{4, {2, 16, 5, 5}}, {4, {2, 16, 5, 5}}}, .build = build_p1_3x3},
    {.n_in = 2, .shape = {{4, {1, 16, 8, 9}}, {4, {1, 16, 3, 4}}}, .build = build_s2d2p1_3x3},
    {.n_in = 2, .shape = {{4, {1, 16, 8, 8}}, {4, {1, 16, 3, 3}}}, .build = build_s2_3x3},
    {.n_in = 2, .shape = {{4, {2, 1, 8, 8}}, {4, {2, 16, 8, 8}}}, .build = build_p1_3x3},
    {.n_in = 2, .shape = {{4, {1, 2, 10, 7}}, {4, {1, 3, 3, 3}}}, .build = build_s3d2p1},
};

const struct td_op_def td_op_conv2d_grad_weight = {
    .name = "conv2d_grad_weight",
    .n_src = 2,
    .shape = grad_weight_shape,
    .prepare = grad_weight_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = grad_weight_jvp,
    .vjp = grad_weight_vjp,
    .cost = grad_weight_cost,
    .flops = grad_weight_flops,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .fwd_tol = 1e-4f,
            .n_cases = (int)(sizeof(grad_weight_cases) / sizeof(grad_weight_cases[0])),
            .cases = grad_weight_cases,
            .reference = grad_weight_reference,
        },
};

struct td_node *td_conv2d_grad_weight(struct td_graph *g, struct td_node *x, struct td_node *dy,
                                      const struct td_conv2d_params *params, int kh, int kw)
{
    struct td_attr attr = td_conv_attr(params, kh, kw);
    struct td_node *src[2] = {x, dy};
    return td_node_new(g, &td_op_conv2d_grad_weight, src, 2, &attr);
}
