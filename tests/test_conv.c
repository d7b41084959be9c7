/* Convolution and pooling beyond the op table:
 *   values and gradients against numbers PyTorch 1.13 computed for the same
 *   operands (its conventions for output size, padding and dilation);
 *   the exact messages of bad builds;
 *   max pooling's tie rule (the first maximum in row-major window order) in
 *   forward, select, scatter and through td_jvp / td_vjp;
 *   pooling kernels bitwise the same on 1 and 2 threads;
 *   the conv2d and max_pool2d layers (names, shapes, PyTorch's init). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph/autodiff.h"
#include "graph/node.h"
#include "ops/layers.h"
#include "ops/ops.h"
#include "tests/testutil.h"

/* PyTorch, for x[i] = i % 7 - 3 [1,2,5,4], w[i] = i % 5 - 2 [2,2,2,2],
 * b = [0.5, -1], u[i] = i % 3 - 1:
 *   y = F.conv2d(x, w, b, stride=2, padding=(1,0), dilation=(2,1))
 *   (y * u).sum().backward() */
static const float torch_y[12] = {2.5, -4.5, -3.5, -9.5, -8.5, 20.5, -7, -6, -4, 19, 9, -11};
static const float torch_dx[40] = {0, 0, 0, 0, 1, 1, 1,  -1, 0, 0, 0, 0, -2, 0,  1, 1, 0, 0, 0, 0,
                                   0, 0, 0, 0, 1, 1, -2, 1,  0, 0, 0, 0, 1,  -2, 1, 1, 0, 0, 0, 0};
static const float torch_dw[16] = {-5, 3, 4, 3, 1, -5, -2, 4, -5, 3, 4, 3, 1, -5, -2, 4};
/* F.max_pool2d(p, 3, 2, 1) and F.avg_pool2d(p, 3, 2, 1) of p[i] = (7 i) % 11 - 5 [1,1,5,5]. */
static const float torch_max[9] = {4, 5, 5, 4, 4, 5, 3, 4, 2};
static const float torch_avg[9] = {-0.2222222238779068f,
                                   0.5555555820465088f,
                                   0.5555555820465088f,
                                   -0.7777777910232544f,
                                   -0.4444444477558136f,
                                   -0.2222222238779068f,
                                   0.0f,
                                   -0.3333333432674408f,
                                   -0.4444444477558136f};

START_TEST(test_against_torch)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(1, 2, 5, 4), TD_F32);
    struct td_node *w = td_input(g, "w", TD_SHAPE(2, 2, 2, 2), TD_F32);
    struct td_node *b = td_input(g, "b", TD_SHAPE(2), TD_F32);
    struct td_node *u = td_input(g, "u", TD_SHAPE(1, 2, 3, 2), TD_F32);
    struct td_node *p = td_input(g, "p", TD_SHAPE(1, 1, 5, 5), TD_F32);
    const struct td_conv2d_params cp = {{2, 2}, {1, 0}, {2, 1}};
    const struct td_pool2d_params pp = {{3, 3}, {2, 2}, {1, 1}};
    struct td_node *y = td_conv2d_op(g, x, w, b, &cp), *wrt[2] = {x, w}, *cts[2];
    ck_assert_int_eq(td_vjp(g, y, u, wrt, 2, cts), TD_OK);
    struct td_node *outs[5] = {y, cts[0], cts[1], td_max_pool2d_op(g, p, &pp),
                               td_avg_pool2d(g, p, &pp)};
    tu_assert_graph_ok(g, "conv and pools");
    float xd[40], wd[16], bd[2] = {0.5f, -1.0f}, ud[12], pd[25];
    for (int i = 0; i < 40; i++) xd[i] = (float)(i % 7 - 3);
    for (int i = 0; i < 16; i++) wd[i] = (float)(i % 5 - 2);
    for (int i = 0; i < 12; i++) ud[i] = (float)(i % 3 - 1);
    for (int i = 0; i < 25; i++) pd[i] = (float)((7 * i) % 11 - 5);
    struct td_feed feeds[] = {{x, xd}, {w, wd}, {b, bd}, {u, ud}, {p, pd}};
    struct tu_eval e;
    tu_assert_eval_init(&e, g, outs, 5, NULL);
    tu_assert_eval_run(&e, feeds, 5);
    tu_assert_close("conv2d vs torch", tu_eval_output(&e, 0), torch_y, 12, 0, 1e-6);
    tu_assert_close("conv2d input gradient vs torch", tu_eval_output(&e, 1), torch_dx, 40, 0, 1e-6);
    tu_assert_close("conv2d weight gradient vs torch", tu_eval_output(&e, 2), torch_dw, 16, 0,
                    1e-6);
    tu_assert_close("max_pool2d vs torch", tu_eval_output(&e, 3), torch_max, 9, 0, 1e-6);
    tu_assert_close("avg_pool2d vs torch", tu_eval_output(&e, 4), torch_avg, 9, 1e-6, 1e-7);
    tu_eval_free(&e);
    td_graph_free(g);
}
END_TEST

/* Leaves of the bad-build table. */
enum { L_X, L_W, L_B, L_DY, L_I, L_P, N_LEAVES };

struct bad_build {
    struct td_node *(*build)(struct td_graph *g, struct td_node *const *l);
    enum td_status status;
    const char *message;
};

static const struct td_conv2d_params pad1 = {.pad = {1, 1}};

static struct td_node *bb_channels(struct td_graph *g, struct td_node *const *l)
{
    struct td_node *w = td_input(g, "w2", TD_SHAPE(4, 2, 3, 3), TD_F32);
    return td_conv2d_op(g, l[L_X], w, NULL, NULL);
}
static struct td_node *bb_kernel(struct td_graph *g, struct td_node *const *l)
{
    struct td_node *w = td_input(g, "w11", TD_SHAPE(4, 3, 11, 3), TD_F32);
    return td_conv2d_op(g, l[L_X], w, NULL, &pad1);
}
static struct td_node *bb_dilated(struct td_graph *g, struct td_node *const *l)
{
    const struct td_conv2d_params p = {.dilation = {4, 1}};
    return td_conv2d_op(g, l[L_X], l[L_W], NULL, &p);
}
static struct td_node *bb_stride(struct td_graph *g, struct td_node *const *l)
{
    const struct td_conv2d_params p = {.stride = {-1, 2}};
    return td_conv2d_op(g, l[L_X], l[L_W], NULL, &p);
}
static struct td_node *bb_padding(struct td_graph *g, struct td_node *const *l)
{
    const struct td_conv2d_params p = {.pad = {0, -2}};
    return td_conv2d_op(g, l[L_X], l[L_W], NULL, &p);
}
static struct td_node *bb_bias(struct td_graph *g, struct td_node *const *l)
{
    struct td_node *b = td_input(g, "b5", TD_SHAPE(5), TD_F32);
    return td_conv2d_op(g, l[L_X], l[L_W], b, NULL);
}
static struct td_node *bb_rank(struct td_graph *g, struct td_node *const *l)
{
    return td_conv2d_op(g, l[L_B], l[L_W], NULL, NULL);
}
static struct td_node *bb_int(struct td_graph *g, struct td_node *const *l)
{
    return td_conv2d_op(g, l[L_X], l[L_I], NULL, NULL);
}
static struct td_node *bb_gi_size(struct td_graph *g, struct td_node *const *l)
{
    /* dy [2,4,6,6] is the output of an 8x8 input, not of a 9x8 one */
    return td_conv2d_grad_input(g, l[L_DY], l[L_W], NULL, 9, 8);
}
static struct td_node *bb_gi_channels(struct td_graph *g, struct td_node *const *l)
{
    struct td_node *w = td_input(g, "w5", TD_SHAPE(5, 3, 3, 3), TD_F32);
    return td_conv2d_grad_input(g, l[L_DY], w, NULL, 8, 8);
}
static struct td_node *bb_gw_batch(struct td_graph *g, struct td_node *const *l)
{
    struct td_node *dy = td_input(g, "dy3", TD_SHAPE(3, 4, 6, 6), TD_F32);
    return td_conv2d_grad_weight(g, l[L_X], dy, NULL, 3, 3);
}
static struct td_node *bb_gw_kernel(struct td_graph *g, struct td_node *const *l)
{
    return td_conv2d_grad_weight(g, l[L_X], l[L_DY], NULL, 0, 3);
}
static struct td_node *bb_pool_pad(struct td_graph *g, struct td_node *const *l)
{
    const struct td_pool2d_params p = {{3, 3}, {1, 1}, {2, 1}};
    return td_max_pool2d_op(g, l[L_P], &p);
}
static struct td_node *bb_pool_kernel(struct td_graph *g, struct td_node *const *l)
{
    const struct td_pool2d_params p = {{2, 7}, {2, 2}, {0, 0}};
    return td_avg_pool2d(g, l[L_P], &p);
}
static struct td_node *bb_pool_null(struct td_graph *g, struct td_node *const *l)
{
    return td_max_pool2d_op(g, l[L_P], NULL);
}
static struct td_node *bb_pool_stride(struct td_graph *g, struct td_node *const *l)
{
    const struct td_pool2d_params p = {{2, 2}, {1, -1}, {0, 0}};
    return td_max_pool2d_op(g, l[L_P], &p);
}
static struct td_node *bb_select(struct td_graph *g, struct td_node *const *l)
{
    const struct td_pool2d_params p = {.kernel = {2, 2}};
    return td_max_pool2d_select(g, l[L_P], l[L_X], &p);
}
static struct td_node *bb_scatter(struct td_graph *g, struct td_node *const *l)
{
    const struct td_pool2d_params p = {.kernel = {2, 2}};
    return td_max_pool2d_scatter(g, l[L_P], l[L_P], &p);
}
static struct td_node *bb_avg_grad(struct td_graph *g, struct td_node *const *l)
{
    const struct td_pool2d_params p = {.kernel = {2, 2}};
    return td_avg_pool2d_grad(g, l[L_P], &p, 8, 8);
}
static struct td_node *bb_layer_rank(struct td_graph *g, struct td_node *const *l)
{
    return td_conv2d(g, l[L_B], 8, 3, 3, NULL, "conv1");
}
static struct td_node *bb_layer_channels(struct td_graph *g, struct td_node *const *l)
{
    return td_conv2d(g, l[L_X], 0, 3, 3, NULL, "conv1");
}

static const struct bad_build bad_builds[] = {
    {bb_channels, TD_ERR_SHAPE,
     "conv2d 'c': input [2,3,8,8] has 3 channels but weight [4,2,3,3] expects 2"},
    {bb_kernel, TD_ERR_SHAPE,
     "conv2d 'c': kernel 11x3 with dilation (1,1) spans 11x3, more than the padded input 10x10"},
    {bb_dilated, TD_ERR_SHAPE,
     "conv2d 'c': kernel 3x3 with dilation (4,1) spans 9x3, more than the padded input 8x8"},
    {bb_stride, TD_ERR_SHAPE, "conv2d 'c': stride must be >= 1, got (-1,2)"},
    {bb_padding, TD_ERR_SHAPE, "conv2d 'c': padding must be >= 0, got (0,-2)"},
    {bb_bias, TD_ERR_SHAPE, "conv2d 'c': bias [5] does not match weight [4,3,3,3]: expected [4]"},
    {bb_rank, TD_ERR_SHAPE, "conv2d 'c': input must be [N, C, H, W], got [4]"},
    {bb_int, TD_ERR_SHAPE, "conv2d 'c': expects float operands, got int32 weight [4,3,3,3]"},
    {bb_gi_size, TD_ERR_SHAPE,
     "conv2d_grad_input 'c': output gradient [2,4,6,6] does not match the convolution's output "
     "[2,4,7,6]"},
    {bb_gi_channels, TD_ERR_SHAPE,
     "conv2d_grad_input 'c': output gradient [2,4,6,6] has 4 channels but weight [5,3,3,3] has 5"},
    {bb_gw_batch, TD_ERR_SHAPE,
     "conv2d_grad_weight 'c': input [2,3,8,8] and output gradient [3,4,6,6] differ in batch size"},
    {bb_gw_kernel, TD_ERR_SHAPE, "conv2d_grad_weight 'c': kernel size must be >= 1, got (0,3)"},
    {bb_pool_pad, TD_ERR_SHAPE, "max_pool2d 'c': padding (2,1) is more than half the kernel (3,3)"},
    {bb_pool_kernel, TD_ERR_SHAPE,
     "avg_pool2d 'c': kernel (2,7) is larger than the padded input (6,6)"},
    {bb_pool_null, TD_ERR_SHAPE, "max_pool2d 'c': kernel size must be >= 1, got (0,0)"},
    {bb_pool_stride, TD_ERR_SHAPE, "max_pool2d 'c': stride must be >= 1, got (1,-1)"},
    {bb_select, TD_ERR_SHAPE,
     "max_pool2d_select 'c': tangent [2,3,8,8] does not match the input [2,3,6,6]"},
    {bb_scatter, TD_ERR_SHAPE,
     "max_pool2d_scatter 'c': output gradient [2,3,6,6] does not match the pooling output "
     "[2,3,3,3]"},
    {bb_avg_grad, TD_ERR_SHAPE,
     "avg_pool2d_grad 'c': output gradient [2,3,6,6] does not match the pooling output [2,3,4,4]"},
    {bb_layer_rank, TD_ERR_SHAPE, "conv2d 'conv1': needs an input [N, C, H, W], got [4]"},
    {bb_layer_channels, TD_ERR_ARG,
     "conv2d 'conv1': out_channels and kernel size must be >= 1, got 0 and 3x3"},
};

START_TEST(test_bad_builds)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *l[N_LEAVES];
    l[L_X] = td_input(g, "x", TD_SHAPE(2, 3, 8, 8), TD_F32);
    l[L_W] = td_input(g, "w", TD_SHAPE(4, 3, 3, 3), TD_F32);
    l[L_B] = td_input(g, "b", TD_SHAPE(4), TD_F32);
    l[L_DY] = td_input(g, "dy", TD_SHAPE(2, 4, 6, 6), TD_F32);
    l[L_I] = td_input(g, "i", TD_SHAPE(4, 3, 3, 3), TD_I32);
    l[L_P] = td_input(g, "p", TD_SHAPE(2, 3, 6, 6), TD_F32);
    tu_assert_graph_ok(g, "leaves");
    for (size_t i = 0; i < sizeof bad_builds / sizeof bad_builds[0]; i++) {
        const struct bad_build *b = &bad_builds[i];
        td_scope_push(g, "c");
        struct td_node *n = b->build(g, l);
        td_scope_pop(g);
        tu_assert_build_fails(g, n, b->status, b->message);
    }
    td_graph_free(g);
}
END_TEST

/* Index in a plane of h x w of the first element of window (oh, ow) that is
 * not padding: where the tie rule must route when the whole window ties. */
static int first_in_window(int oh, int ow, int stride, int pad, int w)
{
    int ih = oh * stride - pad, iw = ow * stride - pad;
    return (ih < 0 ? 0 : ih) * w + (iw < 0 ? 0 : iw);
}

/* Runs select(x, t), scatter(x, ct), and the JVP and VJP of max_pool2d(x)
 * with tangent t and cotangent ct, on one [1, 1, h, w] plane. */
static void run_routes(const float *xd, int h, int w, const struct td_pool2d_params *p, float *sel,
                       float *sca, float *jvp, float *vjp, const float *td, const float *cd)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(1, 1, h, w), TD_F32);
    struct td_node *t = td_input(g, "t", TD_SHAPE(1, 1, h, w), TD_F32);
    struct td_node *y = td_max_pool2d_op(g, x, p);
    tu_assert_graph_ok(g, "max_pool2d");
    const struct td_shape *ys = td_node_shape(y);
    struct td_node *ct = td_input(g, "ct", *ys, TD_F32);
    struct td_node *outs[4] = {td_max_pool2d_select(g, x, t, p),
                               td_max_pool2d_scatter(g, x, ct, p)};
    ck_assert_int_eq(td_jvp(g, &x, &t, 1, &y, 1, &outs[2]), TD_OK);
    ck_assert_int_eq(td_vjp(g, y, ct, &x, 1, &outs[3]), TD_OK);
    tu_assert_graph_ok(g, "routes");
    struct td_feed feeds[] = {{x, xd}, {t, td}, {ct, cd}};
    struct tu_eval e;
    tu_assert_eval_init(&e, g, outs, 4, NULL);
    tu_assert_eval_run(&e, feeds, 3);
    size_t ny = (size_t)td_shape_numel(ys), nx = (size_t)h * w;
    memcpy(sel, tu_eval_output(&e, 0), ny * sizeof(float));
    memcpy(sca, tu_eval_output(&e, 1), nx * sizeof(float));
    memcpy(jvp, tu_eval_output(&e, 2), ny * sizeof(float));
    memcpy(vjp, tu_eval_output(&e, 3), nx * sizeof(float));
    tu_eval_free(&e);
    td_graph_free(g);
}

/* Whole windows tie (x = 0, as after a ReLU of negatives): every route goes
 * to the window's first element that is not padding, with windows
 * overlapping and padded (3x3, stride 1, padding 1) and not (2x2). */
START_TEST(test_max_pool_ties)
{
    enum { H = 4, W = 22 }; /* 11 windows of 2x2 per row: the blocked kernel */
    float x[H * W] = {0}, t[H * W], c[H * W], sel[H * W], sca[H * W], jvp[H * W], vjp[H * W];
    for (int i = 0; i < H * W; i++) t[i] = (float)(i + 1), c[i] = (float)(100 * (i + 1));
    const int kernel[2] = {2, 3}, stride[2] = {2, 1}, pad[2] = {0, 1};
    for (int k = 0; k < 2; k++) {
        const struct td_pool2d_params p = {
            {kernel[k], kernel[k]}, {stride[k], stride[k]}, {pad[k], pad[k]}};
        int oh = (H + 2 * pad[k] - kernel[k]) / stride[k] + 1;
        int ow = (W + 2 * pad[k] - kernel[k]) / stride[k] + 1;
        run_routes(x, H, W, &p, sel, sca, jvp, vjp, t, c);
        float want_sel[H * W], want_sca[H * W] = {0};
        for (int i = 0; i < oh; i++)
            for (int j = 0; j < ow; j++) {
                int at = first_in_window(i, j, stride[k], pad[k], W);
                want_sel[i * ow + j] = t[at];
                want_sca[at] += c[i * ow + j];
            }
        char what[64];
        snprintf(what, sizeof what, "select, kernel %d", kernel[k]);
        tu_assert_close(what, sel, want_sel, (size_t)(oh * ow), 0, 1e-6);
        snprintf(what, sizeof what, "jvp of max_pool2d, kernel %d", kernel[k]);
        tu_assert_close(what, jvp, want_sel, (size_t)(oh * ow), 0, 1e-6);
        snprintf(what, sizeof what, "scatter, kernel %d", kernel[k]);
        tu_assert_close(what, sca, want_sca, H * W, 0, 1e-6);
        snprintf(what, sizeof what, "vjp of max_pool2d, kernel %d", kernel[k]);
        tu_assert_close(what, vjp, want_sca, H * W, 0, 1e-6);
    }
}
END_TEST

/* Partial ties: the first of two equal maxima wins, in row-major order
 * (the later one in the same row, then the one on a later row). */
START_TEST(test_max_pool_partial_ties)
{
    /* 2x2 windows of a [1,1,2,6] plane: (1 3 | 3 2), (5 5 | 5 0), (-1 -2 | 4 4) */
    const float x[12] = {1, 3, 5, 5, -1, -2, 3, 2, 5, 0, 4, 4};
    const float t[12] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const float c[3] = {10, 20, 30};
    float sel[3], sca[12], jvp[3], vjp[12];
    const struct td_pool2d_params p = {.kernel = {2, 2}};
    run_routes(x, 2, 6, &p, sel, sca, jvp, vjp, t, c);
    const float want_sel[3] = {2, 3, 11};
    const float want_sca[12] = {0, 10, 20, 0, 0, 0, 0, 0, 0, 0, 30, 0};
    tu_assert_close("select, partial ties", sel, want_sel, 3, 0, 1e-6);
    tu_assert_close("jvp, partial ties", jvp, want_sel, 3, 0, 1e-6);
    tu_assert_close("scatter, partial ties", sca, want_sca, 12, 0, 1e-6);
    tu_assert_close("vjp, partial ties", vjp, want_sca, 12, 0, 1e-6);
}
END_TEST

/* The pooling kernels split planes between threads, and overlapping
 * windows add in one order: 1 and 2 threads give the same bits. */
static int shape_is(const struct td_shape *s, struct td_shape want)
{
    return td_shape_equal(s, &want);
}

START_TEST(test_pool_threads_bitwise)
{
    struct td_graph *g = td_graph_new(1);
    const struct td_shape xs = TD_SHAPE(4, 8, 13, 11);
    struct td_node *x = td_input(g, "x", xs, TD_F32);
    const struct td_pool2d_params p = {{3, 3}, {1, 2}, {1, 1}};
    struct td_node *y = td_max_pool2d_op(g, x, &p);
    struct td_node *ct = td_input(g, "ct", *td_node_shape(y), TD_F32);
    struct td_node *outs[4] = {y, td_max_pool2d_scatter(g, x, ct, &p), td_avg_pool2d(g, x, &p),
                               td_avg_pool2d_grad(g, ct, &p, 13, 11)};
    tu_assert_graph_ok(g, "pools");
    size_t nx = (size_t)td_shape_numel(&xs), ny = (size_t)td_shape_numel(td_node_shape(y));
    float *xd = malloc(nx * sizeof(float)), *cd = malloc(ny * sizeof(float));
    ck_assert(xd && cd);
    tu_fill_uniform(xd, nx, -1, 1, 3, 1);
    tu_fill_uniform(cd, ny, -1, 1, 3, 2);
    struct td_feed feeds[] = {{x, xd}, {ct, cd}};
    /* Every node parallel, on 1 thread and on 2. */
    struct td_compile_options one = {.num_threads = 1, .parallel_cost = 1, .group_cost = 1};
    struct td_compile_options two = {.num_threads = 2, .parallel_cost = 1, .group_cost = 1};
    struct tu_eval e1, e2;
    tu_assert_eval_init(&e1, g, outs, 4, &one);
    tu_assert_eval_init(&e2, g, outs, 4, &two);
    tu_assert_eval_run(&e1, feeds, 2);
    tu_assert_eval_run(&e2, feeds, 2);
    for (int i = 0; i < 4; i++) {
        size_t n = (size_t)td_shape_numel(td_node_shape(outs[i]));
        ck_assert_msg(memcmp(tu_eval_output(&e1, i), tu_eval_output(&e2, i), n * 4) == 0,
                      "output %d differs between 1 and 2 threads", i);
    }
    tu_eval_free(&e1);
    tu_eval_free(&e2);
    free(xd);
    free(cd);
    td_graph_free(g);
}
END_TEST

/* FLOP counts: the convolution and both derivative ops do 2 * N * O * OH *
 * OW * C * KH * KW each (every kernel position, padding included). */
START_TEST(test_conv_flops)
{
    struct td_graph *g = td_graph_new(1);
    struct td_node *x = td_input(g, "x", TD_SHAPE(2, 3, 9, 7), TD_F32);
    struct td_node *w = td_input(g, "w", TD_SHAPE(5, 3, 3, 2), TD_F32);
    const struct td_conv2d_params p = {{2, 1}, {1, 0}, {1, 1}};
    struct td_node *y = td_conv2d_op(g, x, w, NULL, &p);
    ck_assert(shape_is(td_node_shape(y), TD_SHAPE(2, 5, 5, 6)));
    struct td_node *dy = td_input(g, "dy", *td_node_shape(y), TD_F32);
    struct td_node *outs[3] = {y, td_conv2d_grad_input(g, dy, w, &p, 9, 7),
                               td_conv2d_grad_weight(g, x, dy, &p, 3, 2)};
    tu_assert_graph_ok(g, "conv flops");
    struct td_plan *plan = td_compile(g, outs, 3, NULL);
    ck_assert_msg(plan != NULL, "td_compile: %s", td_graph_error(g));
    struct td_plan_stats st;
    td_plan_get_stats(plan, &st);
    ck_assert_double_eq(st.flops, 3 * 2.0 * 2 * 5 * 5 * 6 * 3 * 3 * 2);
    td_plan_free(plan);
    td_graph_free(g);
}
END_TEST

/* Names, shapes, PyTorch's default init bounds, and the scope naming the
 * op node. */
START_TEST(test_layers)
{
    struct td_graph *g = td_graph_new(5);
    struct td_node *x = td_input(g, "x", TD_SHAPE(2, 3, 12, 10), TD_F32);
    const struct td_conv2d_params p = {.pad = {2, 1}};
    struct td_node *h = td_conv2d(g, x, 16, 5, 3, &p, "conv1");
    struct td_node *y = td_max_pool2d(g, h, 2, 0, 0);
    tu_assert_graph_ok(g, "layers");
    ck_assert_str_eq(td_node_name(h), "conv1");
    ck_assert_str_eq(td_node_op_name(h), "conv2d");
    ck_assert(shape_is(td_node_shape(h), TD_SHAPE(2, 16, 12, 10)));
    ck_assert(shape_is(td_node_shape(y), TD_SHAPE(2, 16, 6, 5)));
    struct td_params *ps = td_graph_params(g);
    ck_assert_int_eq(ps->count, 2);
    int wi = td_params_find(ps, "conv1/weight"), bi = td_params_find(ps, "conv1/bias");
    ck_assert_int_eq(wi, 0);
    ck_assert_int_eq(bi, 1);
    ck_assert(shape_is(&ps->info[wi].shape, TD_SHAPE(16, 3, 5, 3)));
    ck_assert(shape_is(&ps->info[bi].shape, TD_SHAPE(16)));
    /* U(+-1/sqrt(fan_in)), fan_in = 3 * 5 * 3 = 45, for both: every value
     * inside, the largest near the bound. */
    const double bound = 1.0 / sqrt(45.0);
    for (int k = 0; k < 2; k++) {
        const struct td_param_info *info = &ps->info[k];
        double mx = 0;
        for (size_t i = 0; i < info->numel; i++) mx = fmax(mx, fabs(ps->value[info->offset + i]));
        ck_assert_msg(mx <= bound && mx > (k == 0 ? 0.97 : 0.7) * bound,
                      "%s: largest |value| %g for bound %g", info->name, mx, bound);
    }
    td_graph_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("conv");
    tcase_add_test(tc, test_against_torch);
    tcase_add_test(tc, test_bad_builds);
    tcase_add_test(tc, test_max_pool_ties);
    tcase_add_test(tc, test_max_pool_partial_ties);
    tcase_add_test(tc, test_pool_threads_bitwise);
    tcase_add_test(tc, test_conv_flops);
    tcase_add_test(tc, test_layers);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
