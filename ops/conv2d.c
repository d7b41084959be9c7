/* conv2d: y = conv(x, w) + b, NCHW, in one oneDNN convolution that adds the
 * bias itself. x [N, C, H, W], w [O, C, KH, KW] (PyTorch layout), b [O],
 * y [N, O, OH, OW]; attributes and geometry in ops/conv.h. The builder
 * without a bias passes a zero constant, which no derivative reaches.
 * Rules: the JVP is conv2d of the tangents (the bias tangent rides as the
 * bias of one of them); the VJP is conv2d_grad_input, conv2d_grad_weight
 * and, for b, a sum of ct over N, OH, OW. */
#include "ops/conv.h"
#include "ops/dnnl/prim.h"
#include "ops/rules.h"

static enum td_status conv2d_shape(struct td_node *n)
{
    return td_conv_shape(n, TD_CONV_FWD);
}

static enum td_status conv2d_prepare(struct td_prep *p)
{
    return td_conv_prepare(p, TD_CONV_FWD);
}

static struct td_node *conv2d_jvp(struct td_graph *g, struct td_node *n, struct td_node *const *t)
{
    struct td_node *x = n->src[0], *w = n->src[1];
    struct td_node *tx = t[0], *tw = t[1], *tb = t[2];
    struct td_conv2d_params p = td_conv_params(n);
    if (!tx && !tw) {
        if (!tb) return NULL;
        struct td_node *b4 = td_reshape(g, tb, TD_SHAPE(1, tb->shape.dim[0], 1, 1));
        return td_broadcast_to(g, b4, n->shape);
    }
    struct td_node *dx = tx ? td_conv2d_op(g, tx, w, tb, &p) : NULL;
    struct td_node *dw = tw ? td_conv2d_op(g, x, tw, tx ? NULL : tb, &p) : NULL;
    return td_rule_add(g, dx, dw);
}

static void conv2d_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct, unsigned need,
                       struct td_node **cts)
{
    struct td_node *x = n->src[0], *w = n->src[1];
    struct td_conv2d_params p = td_conv_params(n);
    /* Built first, while ct is in cache (as linear's bias gradient). */
    if (need & 4u) cts[2] = td_reduce_sum(g, ct, 0xDu, 0);
    if (need & 1u)
        cts[0] = td_conv2d_grad_input(g, ct, w, &p, (int)x->shape.dim[2], (int)x->shape.dim[3]);
    if (need & 2u)
        cts[1] = td_conv2d_grad_weight(g, x, ct, &p, (int)w->shape.dim[2], (int)w->shape.dim[3]);
}

static void conv2d_reference(const struct td_node *n, const void *const *in, float *out)
{
    td_conv_reference(n, TD_CONV_FWD, in, out);
}

static double conv2d_cost(const struct td_node *n)
{
    return td_conv_cost(n, TD_CONV_FWD);
}

static double conv2d_flops(const struct td_node *n)
{
    return td_conv_flops(n, TD_CONV_FWD);
}

#define CONV_BUILD(name, sh, sw, ph, pw, dh, dw)                                                   \
    static struct td_node *name(struct td_graph *g, struct td_node *const *in)                     \
    {                                                                                              \
        const struct td_conv2d_params p = {{sh, sw}, {ph, pw}, {dh, dw}};                          \
        return td_conv2d_op(g, in[0], in[1], in[2], &p);                                           \
    }

CONV_BUILD(build_s2p1, 2, 2, 1, 1, 1, 1)
CONV_BUILD(build_d2p2, 1, 1, 2, 2, 2, 2)
CONV_BUILD(build_s21p12, 2, 1, 1, 2, 1, 1)
CONV_BUILD(build_s2, 2, 2, 0, 0, 1, 1)
CONV_BUILD(build_p1, 1, 1, 1, 1, 1, 1)
CONV_BUILD(build_s3d2p1, 3, 2, 1, 0, 2, 1)
CONV_BUILD(build_s2d2p1, 2, 2, 1, 1, 2, 2)

static struct td_node *build_defaults(struct td_graph *g, struct td_node *const *in)
{
    return td_conv2d_op(g, in[0], in[1], in[2], NULL);
}

static struct td_node *build_no_bias(struct td_graph *g, struct td_node *const *in)
{
    const struct td_conv2d_params p = {.pad = {1, 0}};
    return td_conv2d_op(g, in[0], in[1], NULL, &p);
}

static const struct td_op_case conv2d_cases[] = {
    /* defaults, 3 channels (oneDNN's blocked layouts would pad them: plain) */
    {.n_in = 3, .shape = {{4, {2, 3, 7, 7}}, {4, {4, 3, 3, 3}}, {1, {4}}}, .build = build_defaults},
    /* stride 2, padding 1, batch 1 */
    {.n_in = 3, .shape = {{4, {1, 3, 8, 8}}, {4, {5, 3, 3, 3}}, {1, {5}}}, .build = build_s2p1},
    /* dilation 2 */
    {.n_in = 3, .shape = {{4, {2, 2, 9, 9}}, {4, {3, 2, 3, 3}}, {1, {3}}}, .build = build_d2p2},
    /* non-square kernel, different stride and padding per axis */
    {.n_in = 3, .shape = {{4, {2, 3, 6, 9}}, {4, {4, 3, 2, 5}}, {1, {4}}}, .build = build_s21p12},
    /* (H + 2p - k) % s != 0 on both axes: the last rows and columns are unused */
    {.n_in = 3, .shape = {{4, {2, 3, 8, 7}}, {4, {4, 3, 3, 2}}, {1, {4}}}, .build = build_s2},
    /* 16 channels in and out: oneDNN's blocked layouts, reordered */
    {.n_in = 3, .shape = {{4, {2, 16, 5, 5}}, {4, {16, 16, 3, 3}}, {1, {16}}}, .build = build_p1},
    /* blocked layouts with stride 2: dilation 2, and a negative right padding */
    {.n_in = 3,
     .shape = {{4, {1, 16, 8, 9}}, {4, {16, 16, 3, 3}}, {1, {16}}},
     .build = build_s2d2p1},
    {.n_in = 3, .shape = {{4, {1, 16, 8, 8}}, {4, {16, 16, 3, 3}}, {1, {16}}}, .build = build_s2},
    /* one input channel (a first layer): plain input, blocked output */
    {.n_in = 3, .shape = {{4, {2, 1, 8, 8}}, {4, {16, 1, 3, 3}}, {1, {16}}}, .build = build_p1},
    /* mixed stride, dilation and padding */
    {.n_in = 3, .shape = {{4, {1, 2, 10, 7}}, {4, {3, 2, 3, 2}}, {1, {3}}}, .build = build_s3d2p1},
    /* no bias */
    {.n_in = 2, .shape = {{4, {2, 3, 5, 6}}, {4, {2, 3, 3, 3}}}, .build = build_no_bias},
};

const struct td_op_def td_op_conv2d = {
    .name = "conv2d",
    .n_src = 3,
    .shape = conv2d_shape,
    .prepare = conv2d_prepare,
    .release = td_prim_release,
    .forward = td_prim_execute,
    .jvp = conv2d_jvp,
    .vjp = conv2d_vjp,
    .cost = conv2d_cost,
    .flops = conv2d_flops,
    .test =
        {
            .lo = -1.0f,
            .hi = 1.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .fwd_tol = 1e-4f,
            .n_cases = (int)(sizeof(conv2d_cases) / sizeof(conv2d_cases[0])),
            .cases = conv2d_cases,
            .reference = conv2d_reference,
        },
};

struct td_node *td_conv2d_op(struct td_graph *g, struct td_node *x, struct td_node *w,
                             struct td_node *b, const struct td_conv2d_params *params)
{
    if (!g) return NULL;
    struct td_attr attr = td_conv_attr(params, 0, 0);
    if (!b && w) b = td_fill(g, TD_SHAPE(w->shape.rank == 4 ? w->shape.dim[0] : 1), 0.0f);
    struct td_node *src[3] = {x, w, b};
    return td_node_new(g, &td_op_conv2d, src, 3, &attr);
}
