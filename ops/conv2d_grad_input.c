/* conv2d_grad_input: dx = dT/dx of ops/conv.h, the input gradient of a
 * convolution: dy [N, O, OH, OW], w [O, C, KH, KW] -> dx [N, C, H, W] with
 * (H, W) from attr i[6..7]. One oneDNN convolution backward-data primitive.
 * Bilinear in (dy, w): the JVP is conv2d_grad_input of the tangents; the
 * VJP of a cotangent u [N, C, H, W] is conv2d(u, w) for dy and
 * conv2d_grad_weight(u, dy) for w. */
#include "ops/conv.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

static enum td_status grad_input_shape(struct td_node *n)
{
    return td_conv_shape(n, TD_CONV_BWD_DATA);
}

static enum td_status grad_input_prepare(struct td_prep *p)
{
    return td_conv_prepare(p, TD_CONV_BWD_DATA);
}

static struct td_node *apply(struct td_graph *g, struct td_node *n, struct td_node *dy,
                             struct td_node *w)
{
    struct td_conv2d_params p = td_conv_params(n);
    return td_conv2d_grad_input(g, dy, w, &p, n->attr.i[6], n->attr.i[7]);
}

static struct td_node *grad_input_jvp(struct td_graph *g, struct td_node *n,
                                      struct td_node *const *t)
{
    struct td_node *a = t[0] ? apply(g, n, t[0], n->src[1]) : NULL;
    struct td_node *b = t[1] ? apply(g, n, n->src[0], t[1]) : NULL;
    return td_rule_add(g, a, b);
}

static void grad_input_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                           struct td_node **cts)
{
    struct td_node *dy = n->src[0], *w = n->src[1];
    struct td_conv2d_params p = td_conv_params(n);
    if (need & 1u) cts[0] = td_conv2d_op(g, ct, w, NULL, &p);
    if (need & 2u)
        cts[1] = td_conv2d_grad_weight(g, ct, dy, &p, (int)w->shape.dim[2], (int)w->shape.dim[3]);
}

static void grad_input_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_conv_reference(n, TD_CONV_BWD_DATA, in, out);
}

static double grad_input_cost(const struct td_node *n)
{
    return td_conv_cost(n, TD_CONV_BWD_DATA);
}

static double grad_input_flops(const struct td_node *n)
{
    return td_conv_flops(n, TD_CONV_BWD_DATA);
}

#define GI_BUILD(name, sh, sw, ph, pw, dh, dw, h, w)                                               \
    static struct td_node *name(struct td_graph *g, struct td_node *const *in)                     \
    {                                                                                              \
        const struct td_conv2d_params p = {{sh, sw}, {ph, pw}, {dh, dw}};                          \
        return td_conv2d_grad_input(g, in[0], in[1], &p, h, w);                                    \
    }

GI_BUILD(build_plain, 1, 1, 0, 0, 1, 1, 7, 7)
GI_BUILD(build_s2p1, 2, 2, 1, 1, 1, 1, 8, 8)
GI_BUILD(build_d2p2, 1, 1, 2, 2, 2, 2, 9, 9)
GI_BUILD(build_s21p12, 2, 1, 1, 2, 1, 1, 6, 9)
GI_BUILD(build_s2_odd, 2, 2, 0, 0, 1, 1, 8, 7)
GI_BUILD(build_p1_16, 1, 1, 1, 1, 1, 1, 5, 5)
GI_BUILD(build_s3d2p1, 3, 2, 1, 0, 2, 1, 10, 7)
GI_BUILD(build_s2d2p1_16, 2, 2, 1, 1, 2, 2, 8, 9)
GI_BUILD(build_s2_16, 2, 2, 0, 0, 1, 1, 8, 8)

/* The operands of conv2d's cases seen from the other side: dy has the
 * convolution's output shape. */
static const struct td_op_case grad_input_cases[] = {
    {.n_in = 2, .shape = {{4, {2, 4, 5, 5}}, {4, {4, 3, 3, 3}}}, .build = build_plain},
    {.n_in = 2, .shape = {{4, {1, 5, 4, 4}}, {4, {5, 3, 3, 3}}}, .build = build_s2p1},
    {.n_in = 2, .shape = {{4, {2, 3, 9, 9}}, {4, {3, 2, 3, 3}}}, .build = build_d2p2},
    {.n_in = 2, .shape = {{4, {2, 4, 4, 9}}, {4, {4, 3, 2, 5}}}, .build = build_s21p12},
    {.n_in = 2, .shape = {{4, {2, 4, 3, 3}}, {4, {4, 3, 3, 2}}}, .build = build_s2_odd},
    {.n_in = 2, .shape = {{4, {2, 16, 5, 5}}, {4, {16, 16, 3, 3}}}, .build = build_p1_16},
    {.n_in = 2, .shape = {{4, {1, 16, 3, 4}}, {4, {16, 16, 3, 3}}}, .build = build_s2d2p1_16},
    {.n_in = 2, .shape = {{4, {1, 16, 3, 3}}, {4, {16, 16, 3, 3}}}, .build = build_s2_16},
    /* one input channel: blocked layouts would pad dx's 1 channel to 16 */
    {.n_in = 2, .shape = {{4, {2, 16, 5, 5}}, {4, {16, 1, 3, 3}}}, .build = build_p1_16},
    {.n_in = 2, .shape = {{4, {1, 3, 3, 3}}, {4, {3, 2, 3, 2}}}, .build = build_s3d2p1},
};

const struct td_op_def td_op_conv2d_grad_input = {
    .name = "conv2d_grad_input",
    .n_src = 2,
    .shape = grad_input_shape,
    .prepare = grad_input_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = grad_input_jvp,
    .vjp = grad_input_vjp,
    .cost = grad_input_cost,
    .flops = grad_input_flops,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .fwd_tol = 1e-4f,
            .n_cases = (int)(sizeof(grad_input_cases) / sizeof(grad_input_cases[0])),
            .cases = grad_input_cases,
            .reference = grad_input_reference,
        },
};

struct td_node *td_conv2d_grad_input(struct td_graph *g, struct td_node *dy, struct td_node *w,
                                     const struct td_conv2d_params *params, int h, int w_)
{
    struct td_attr attr = td_conv_attr(params, h, w_);
    struct td_node *src[2] = {dy, w};
    return td_node_new(g, &td_op_conv2d_grad_input, src, 2, &attr);
}
