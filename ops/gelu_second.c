/* gelu_second: y = v * t * gelu''(x), gelu''(x) = phi(x) (2 - x^2), the
 * exact GELU's second derivative applied to two vectors in one pass. It is
 * gelu_grad's derivative in x (the Hessian-vector product's term through
 * each GELU), which as a chain of square, affine, exp and mul passes held
 * several buffers of the activation's size. x, v, t and y have one shape
 * (no broadcasting), TD_F32. No attributes. Linear in v and in t; its
 * derivative in x is v * t * gelu'''(x), gelu'''(x) = phi(x) x (x^2 - 4),
 * built with builders. */
#include <math.h>

#include "ops/gelu_common.h"
#include "ops/rules.h"
#include "ops/vmath.h"

/* x, v, t, y: elements [i0, i1) of buffers of one shape; y may alias x. */
static void gelu_second_range(const struct td_exec *ex, int64_t i0, int64_t i1)
{
    const float *x = ex->in[0], *v = ex->in[1], *t = ex->in[2];
    float *y = ex->out;
#pragma omp simd
    for (int64_t i = i0; i < i1; i++) {
        float xi = x[i];
        y[i] = v[i] * t[i] * (td_normal_pdf(xi) * (2.0f - xi * xi));
    }
}

static void gelu_second_forward(const struct td_exec *ex)
{
    td_gelu_blocks_run(ex, gelu_second_range);
}

/* v * w * gelu'''(x) with gelu'''(x) = phi(x) x (x^2 - 4). */
static struct td_node *times_third(struct td_graph *g, struct td_node *x, struct td_node *v,
                                   struct td_node *w)
{
    struct td_node *x2 = td_square(g, x);
    struct td_node *phi = td_exp(g, td_affine(g, x2, -0.5f, (float)log(TD_INV_SQRT_2PI)));
    struct td_node *third = td_mul(g, phi, td_mul(g, x, td_affine(g, x2, 1.f, -4.f)));
    return td_mul(g, td_mul(g, v, third), w);
}

static struct td_node *gelu_second_jvp(struct td_graph *g, struct td_node *n,
                                       struct td_node *const *t)
{
    struct td_node *x = n->src[0], *v = n->src[1], *w = n->src[2];
    struct td_node *dx = t[0] ? times_third(g, x, td_mul(g, v, w), t[0]) : NULL;
    struct td_node *dv = t[1] ? td_gelu_second(g, x, t[1], w) : NULL;
    struct td_node *dw = t[2] ? td_gelu_second(g, x, v, t[2]) : NULL;
    return td_rule_add(g, td_rule_add(g, dx, dv), dw);
}

static void gelu_second_vjp(struct td_graph *g, struct td_node *n, struct td_node *ct,
                            unsigned need, struct td_node **cts)
{
    struct td_node *x = n->src[0], *v = n->src[1], *w = n->src[2];
    if (need & 1u) cts[0] = times_third(g, x, td_mul(g, v, w), ct);
    if (need & 2u) cts[1] = td_gelu_second(g, x, ct, w);
    if (need & 4u) cts[2] = td_gelu_second(g, x, v, ct);
}

static void gelu_second_reference(const struct td_node *n, const void *const *in, float *out)
{
    const float *x = in[0], *v = in[1], *t = in[2];
    int64_t count = td_shape_numel(&n->shape);
    for (int64_t i = 0; i < count; i++) {
        double xi = x[i];
        double d2 = exp(-0.5 * xi * xi) * TD_INV_SQRT_2PI * (2.0 - xi * xi);
        out[i] = (float)((double)v[i] * (double)t[i] * d2);
    }
}

/* One exp per element, four operands touched: about gelu's cost. */
static double gelu_second_cost(const struct td_node *n)
{
    return 7.0 * (double)td_shape_numel(&n->shape);
}

static const struct td_op_case gelu_second_cases[] = {
    {.n_in = 3, .shape = {{2, {3, 5}}, {2, {3, 5}}, {2, {3, 5}}}},
    {.n_in = 3, .shape = {{3, {2, 3, 4}}, {3, {2, 3, 4}}, {3, {2, 3, 4}}}},
    {.n_in = 3, .shape = {{1, {40}}, {1, {40}}, {1, {40}}}},
    {.n_in = 3, .shape = {{0}, {0}, {0}}},
};

const struct td_op_def td_op_gelu_second = {
    .name = "gelu_second",
    .n_src = 3,
    .traits = TD_TRAIT_ELEMENTWISE,
    .shape = td_gelu_grad_shape,
    .forward = gelu_second_forward,
    .jvp = gelu_second_jvp,
    .vjp = gelu_second_vjp,
    .cost = gelu_second_cost,
    .test =
        {
            .lo = -4.0f,
            .hi = 4.0f,
            .fd_eps = 1e-2f,
            .tol = 2e-3f,
            .n_cases = (int)(sizeof(gelu_second_cases) / sizeof(gelu_second_cases[0])),
            .cases = gelu_second_cases,
            .reference = gelu_second_reference,
        },
};

struct td_node *td_gelu_second(struct td_graph *g, struct td_node *x, struct td_node *v,
                               struct td_node *t)
{
    struct td_node *src[3] = {x, v, t};
    return td_node_new(g, &td_op_gelu_second, src, 3, NULL);
}
