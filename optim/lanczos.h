/* Spectra of symmetric operators known only through products v -> A v:
 * the Hessian or Gauss-Newton matrix (optim/curvature.h), the NTK
 * (optim/ntvp.h), or anything a caller writes.
 *
 * Lanczos with full reorthogonalisation: m steps build an orthonormal
 * basis Q of the Krylov space (each new vector is made orthogonal to all
 * earlier ones by classical Gram-Schmidt, twice, in double), the
 * tridiagonal T = Q^T A Q is solved by LAPACKE_dstev, and its extreme
 * eigenvalues (Ritz values) approximate A's: the top few settle within a
 * few dozen steps. Ritz vectors are Q s; each gets its residual
 * |A u - lambda u|, computed with one more product when asked for, else
 * the Lanczos estimate |beta_m s_m|.
 *
 * Hutchinson: tr(A) ~ (1/m) sum_i z_i^T A z_i with Rademacher z_i, the
 * mean and a 95% confidence half-width 1.96 sd / sqrt(m).
 *
 * The basis is held in double: m * n * 8 bytes. */
#ifndef TD_LANCZOS_H
#define TD_LANCZOS_H

#include <stddef.h>
#include <stdint.h>

#include "graph/status.h"

/* out = A v for vectors of n floats; TD_OK or an error (message the
 * caller's to keep; the algorithms stop and return it). */
typedef enum td_status (*td_matvec_fn)(void *ctx, const float *v, float *out);

struct td_lanczos_result {
    int k;             /* Ritz pairs returned, the k largest (<= steps taken) */
    int steps;         /* Lanczos steps taken (fewer than asked when the Krylov space
                          closed: the values are then exact up to rounding) */
    double *values;    /* [k], descending */
    double *residuals; /* [k], |A u - lambda u| (or the estimate) */
    float *vectors;    /* [k, n] unit Ritz vectors, or NULL when not asked */
    double smallest;   /* the smallest Ritz value (the most negative curvature seen) */
};

/* Up to `steps` Lanczos steps from a start vector drawn from seed (normal,
 * stream TD_RNG_STREAM_TRACE + 2^59),
 * returning the k largest Ritz pairs. want_vectors: fill r->vectors;
 * true_residuals: k extra products for exact residuals. Returns TD_OK,
 * TD_ERR_ARG (n < 1, k < 1, steps < k), TD_ERR_NOMEM, or the product's
 * error; messages in err. Free the result with td_lanczos_result_free. */
enum td_status td_lanczos(td_matvec_fn mv, void *ctx, size_t n, int steps, int k, uint64_t seed,
                          int want_vectors, int true_residuals, struct td_lanczos_result *r,
                          char *err, size_t errlen);
void td_lanczos_result_free(struct td_lanczos_result *r);

/* Hutchinson's estimate of tr(A) from `probes` Rademacher vectors z_i =
 * td_rng_sign(seed, TD_RNG_STREAM_TRACE + i, element) (graph/rng.h).
 * Returns TD_OK or the product's error. */
enum td_status td_hutchinson_trace(td_matvec_fn mv, void *ctx, size_t n, int probes, uint64_t seed,
                                   double *mean, double *ci95, char *err, size_t errlen);

#endif
