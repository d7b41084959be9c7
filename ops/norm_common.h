/* Shared glue of the layer-normalisation ops over the last axis of
 * x [..., C] (rows of C floats, each normalised on its own):
 *   normalize          xhat = (x - mean) / sqrt(var + eps)   (biased var)
 *   normalize_grad     N_x v = (v - mean(v) - xhat mean(v xhat)) / sigma,
 *                      normalize's Jacobian (symmetric) applied to v
 *   layer_norm         xhat * gamma + beta
 *   layer_norm_grad    N_x (ct * gamma), layer_norm's VJP for x
 *   layer_norm_dgamma  column sums of ct * xhat, its VJP for gamma
 * Every op has attr f[0] = eps. Each row is reduced by one thread in a
 * fixed order (ops/vmath.h lanes), so results do not depend on the thread
 * count. */
#ifndef TD_NORM_COMMON_H
#define TD_NORM_COMMON_H

#include <math.h>

#include "ops/op.h"
#include "ops/vmath.h"

/* PyTorch's nn.LayerNorm default. */
#define TD_LAYER_NORM_EPS 1e-5f

/* Mean and 1/sqrt(var + eps) of one row of c floats, two passes in cache
 * (the centred second pass keeps var accurate when |mean| >> sigma). */
static inline void td_norm_row_stats(const float *x, int64_t c, float eps, float *mean, float *rstd)
{
    float m = td_vsum(x, c) / (float)c;
    *mean = m;
    *rstd = 1.0f / sqrtf(td_vsumsq_dev(x, c, m) / (float)c + eps);
}

/* Kernel of normalize (gamma, beta NULL) and layer_norm: x, out [rows, C]
 * row-major, gamma, beta [C]; out = xhat * gamma + beta row by row, one
 * read of x and one write of out per row (the row stays in cache). */
void td_norm_run(const struct td_exec *ex, const float *x, const float *gamma, const float *beta);

/* Kernel of normalize_grad (gamma NULL) and layer_norm_grad: x, v, out
 * [rows, C] row-major, gamma [C]; out = N_x (v * gamma) row by row. */
void td_norm_grad_run(const struct td_exec *ex, const float *x, const float *v, const float *gamma);

/* Checks that every operand is float and x (operand 0) has rank >= 1, and
 * that eps (attr f[0]) is >= 0; records a shape error naming them. */
enum td_status td_norm_check(struct td_node *n);

/* Checks that operand i has x's shape ("ct", "v") or is [C] ("gamma",
 * "beta"); records a shape error naming `what`. */
enum td_status td_norm_check_same(struct td_node *n, int i, const char *what);
enum td_status td_norm_check_row(struct td_node *n, int i, const char *what);

/* t [..., C] summed over every axis but the last: [C]. */
struct td_node *td_norm_sum_rows(struct td_graph *g, struct td_node *t);

/* The second derivative of normalize, symmetric in v and t:
 *   d/dx (N_x v) [t] = -r (mean(xhat t) N_x v + mean(xhat v) N_x t
 *                          + xhat mean(v N_x t)),   r = 1/sigma,
 * with every mean over the last axis. Being symmetric in (v, t) and N_x
 * being symmetric, it is also the transpose: the cotangent of x for
 * normalize_grad(x, v) under cotangent u is this with t = u. Built with
 * builders (second-order graphs only). */
struct td_node *td_normalize_second(struct td_graph *g, struct td_node *x, struct td_node *v,
                                    struct td_node *t, float eps);

/* The test block shared by the ops: operands from [-1, 3] (rows with a
 * mean away from 0). */
#define TD_NORM_TEST(cases_, reference_)                                                           \
    {                                                                                              \
        .lo = -1.0f, .hi = 3.0f, .fd_eps = 1e-2f, .tol = 2e-3f,                                    \
        .n_cases = (int)(sizeof(cases_) / sizeof((cases_)[0])), .cases = (cases_),                 \
        .reference = (reference_)                                                                  \
    }

/* Test reference: mean and 1/sqrt(var + eps) of a row in double. */
void td_norm_reference_stats(const float *x, int64_t c, double eps, double *mean, double *rstd);

#endif
