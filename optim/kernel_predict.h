/* Kernel-regime predictions from an empirical NTK, as Neural Tangents'
 * predict gives them for the mean squared error
 *     L = 1/2 sum_n |f(x_n) - y_n|^2 / N
 * trained by gradient flow at rate eta on the linearised model. With
 * Theta = Theta(X, X) (N train samples), r = f0(X) - y and c = eta t / N:
 *     train points   f_t(X)  = y + exp(-c Theta) r
 *     test points    f_t(x*) = f0(x*) - Theta(x*, X) Theta^-1 (I - exp(-c Theta)) r
 *     t = infinity   f(x*)   = f0(x*) - Theta(x*, X) Theta^-1 r      (kernel regression)
 * The infinite-time solve uses a Cholesky factorisation of Theta plus a
 * small diagonal regulariser reg * trace(Theta) / (N K); finite times one
 * eigendecomposition Theta = U diag(lambda) U^T (LAPACKE_dsyevd), made on
 * the first call that needs it and reused for every t.
 *
 * Kernels come in two forms:
 *   full    [N K, N K], rows and columns (sample, output): Theta's K x K
 *           blocks, as td_ntk with full output gives them;
 *   scalar  [N, N], one kernel for every output (Theta_kl = k delta_kl):
 *           the trace kernel divided by K, Neural Tangents' default.
 * Targets y [N, K] are one-hot class labels for classification (see
 * td_kpredict_one_hot). All arrays are row-major doubles. */
#ifndef TD_KERNEL_PREDICT_H
#define TD_KERNEL_PREDICT_H

#include <stddef.h>
#include <stdint.h>

#include "graph/status.h"

struct td_kpredict;

/* Factorises the train kernel (copied) for n samples with K outputs, full
 * (1) or scalar (0), against f0 and y [n, K] (copied). reg >= 0 (e.g. 1e-6).
 * Returns NULL with a message in err: a kernel that is not positive
 * definite even with the regulariser (LAPACK's dpotrf fails: raise reg), a
 * bad argument, out of memory. Free with td_kpredict_free. */
struct td_kpredict *td_kpredict_new(const double *theta, int64_t n, int64_t K, int full,
                                    const double *f0, const double *y, double reg, char *err,
                                    size_t errlen);
void td_kpredict_free(struct td_kpredict *p);

/* Predictions for m test points: out [m, K] from theta_st ([m K, n K] full
 * or [m, n] scalar, the kernel between test and train points) and f0_test
 * [m, K], at time eta_t = eta * t (INFINITY: the kernel regression limit).
 * Returns TD_OK, or TD_ERR_BACKEND (the eigendecomposition failed) or
 * TD_ERR_NOMEM with a message in err. */
enum td_status td_kpredict_test(struct td_kpredict *p, const double *theta_st, int64_t m,
                                const double *f0_test, double eta_t, double *out, char *err,
                                size_t errlen);

/* Predictions on the training points at eta * t (finite): out [n, K]. */
enum td_status td_kpredict_train(struct td_kpredict *p, double eta_t, double *out, char *err,
                                 size_t errlen);

/* One-hot rows [n, K] of labels in [0, K) (others give a zero row). */
void td_kpredict_one_hot(const int32_t *labels, int64_t n, int64_t K, double *y);

/* Fraction of rows of pred [n, K] whose argmax is the label. */
double td_kpredict_accuracy(const double *pred, const int32_t *labels, int64_t n, int64_t K);

#endif
