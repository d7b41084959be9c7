/* gelu_tanh_grad: y = v * f'(x) for the tanh approximation
 * f(x) = 0.5 x (1 + tanh(u)), u = c (x + k x^3): the JVP and VJP of
 * gelu_tanh in one pass. x, v and y have one shape (no broadcasting),
 * TD_F32. No attributes. Linear in v; its derivative in x is v * f''(x),
 * built with builders.
 *
 * With s = sigmoid(2u) = 0.5 (1 + tanh u): f'(x) = s + 2 x s (1 - s) u',
 * u' = c (1 + 3 k x^2). The kernel takes e = exp(-2|u|) <= 1 and
 * q = 1 / (1 + e), so s and 1 - s are q and e q (swapped for u < 0): both
 * keep their relative precision in either tail, where 1 + tanh(u) would
 * cancel. */
#include <math.h>

#include "ops/gelu_common.h"
#include "ops/rules.h"
#include "ops/vmath.h"

/* x, v, y: elements [i0, i1) of buffers of one shape; y may alias x. */
static void gelu_tanh_grad_range(const struct td_exec *ex, int64_t i0, int64_t i1)
{
    const float c = (float)TD_GELU_C, k = (float)TD_GELU_K;
    const float *x = ex->in[0], *v = ex->in[1];
    float *y = ex->out;
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        float xi = x[i], x2 = xi * xi;
        float u = c * xi * (1.0f + k * x2), du = c * (1.0f + 3.0f * k * x2);
        float e = td_vexpf(-2.0f * (u < 0.f ? -u : u));
        float q = 1.0f / (1.0f + e);
        float s = u < 0.f ? e * q : q;
        y[i] = v[i] * (s + 2.0f * xi * e * q * q * du);
    }
}

static void gelu_tanh_grad_forward(const struct td_exec *ex)
{
    td_gelu_blocks_run(ex, gelu_tanh_grad_range);
}

/* f'' = (1 - th^2) (u' + x u''/2 - x th u'^2) with th = tanh(u),
 * u'' = 6 c k x: (1 - th^2) (c + 6 c k x^2 - x th u'^2). */
static struct td_node *gelu_tanh_second(struct td_graph *g, struct td_node *x)
{
    const double c = TD_GELU_C, k = TD_GELU_K;
    struct td_node *x2 = td_square(g, x);
    struct td_node *th = td_tanh(g, td_mul(g, x, td_affine(g, x2, (float)(c * k), (float)c)));
    struct td_node *du = td_affine(g, x2, (float)(3 * c * k), (float)c);
    struct td_node *xth = td_mul(g, x, th);
    struct td_node *inner =
        td_sub(g, td_affine(g, x2, (float)(6 * c * k), (float)c), td_mul(g, xth, td_square(g, du)));
    return td_mul(g, td_affine(g, td_square(g, th), -1.f, 1.f), inner);
}

static struct td_node *times_second(struct td_graph *g, struct td_node *x, struct td_node *v,
                                    struct td_node *t)
{
    return td_mul(g, td_mul(g, v, gelu_tanh_second(g, x)), t);
}

static struct td_node *gelu_tanh_grad_jvp(struct td_graph *g, struct td_node *n,
                                          struct td_node *const *t)
{
    return td_gelu_grad_jvp(g, n, t, times_second);
}

static void gelu_tanh_grad_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,
                               unsigned need, struct td_node **cts)
{
    td_gelu_grad_vjp(g, n, ct, need, cts, times_second);
}

static void gelu_tanh_grad_reference(const struct td_node *n, const void *const *in, float *out)
{
    const double c = TD_GELU_C, k = TD_GELU_K;
    const float *x = in[0], *v = in[1];
    int64_t count = td_shape_numel(&n->shape);
    for (int64_t i = 0; i < count; i++) {
        double xi = x[i], th = tanh(c * (xi + k * xi * xi * xi));
        double d = 0.5 * (1 + th) + 0.5 * xi * (1 - th * th) * c * (1 + 3 * k * xi * xi);
        out[i] = (float)(v[i] * d);
    }
}

/* An exp and a division per element: measured at 2x an add of the same
 * size (3 elements touched) on one thread. */
static double gelu_tanh_grad_cost(const struct td_node *n)
{
    return 6.0 * (double)td_shape_numel(&n->shape);
}

const struct td_op_def td_op_gelu_tanh_grad = {
    .name = "gelu_tanh_grad",
    .n_src = 2,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_gelu_grad_shape,
    .forward = gelu_tanh_grad_forward,
    .jvp = gelu_tanh_grad_jvp,
    .vjp = gelu_tanh_grad_vjp,
    .cost = gelu_tanh_grad_cost,
    .test =
        {
            .lo = -4.0f,
            .hi = 4.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = TD_GELU_GRAD_N_CASES,
            .cases = td_gelu_grad_cases,
            .reference = gelu_tanh_grad_reference,
        },
};

struct td_node *td_gelu_tanh_grad(struct td_graph *g, struct td_node *x, struct td_node *v)
{
    struct td_node *src[2] = {x, v};
    return td_node_new(g, &td_op_gelu_tanh_grad, src, 2, NULL);
}
