/* NTK-vector products: Theta(X1, X2) v = J1 (J2^T v) without forming a
 * Jacobian, for matrix-free solvers (Lanczos on the NTK, optim/lanczos.h)
 * and the ntvp method of optim/ntk.h.
 *
 * J2^T v, for v in R^{n2 K}, is one backward pass of f(X2) seeded with v (a
 * batched VJP sums parameter cotangents over the batch, which is exactly
 * the sum over samples wanted here); J1 u is one forward-mode pass of f(X1)
 * in the parameter direction u. With X1 == X2 both are one plan. The model
 * is built by its builder at n1 (and n2) samples, so the whole sample set
 * is one batch: memory grows with n like a training step's. */
#ifndef TD_NTVP_H
#define TD_NTVP_H

#include <stddef.h>
#include <stdint.h>

#include "graph/status.h"
#include "optim/tangent_model.h"

struct td_ntvp;

/* Products for the samples x1 and x2 (NULL: x1), over the selected
 * parameters, on num_threads threads (0: OpenMP's default). The sample
 * arrays are read at every product: they must outlive the object. Returns
 * NULL with a message in err: a builder failure, an unknown parameter name,
 * parameters that differ from m->values, out of memory. Free with
 * td_ntvp_free. */
struct td_ntvp *td_ntvp_new(const struct td_tangent_model *m, const struct td_tangent_data *x1,
                            const struct td_tangent_data *x2, const struct td_param_select *sel,
                            int num_threads, char *err, size_t errlen);
void td_ntvp_free(struct td_ntvp *t);

/* n1 K, n2 K (the kernel's rows and columns) and the selected parameter
 * elements (the length of u below). */
int64_t td_ntvp_rows(const struct td_ntvp *t);
int64_t td_ntvp_cols(const struct td_ntvp *t);
size_t td_ntvp_params(const struct td_ntvp *t);

/* out [n1 K] = Theta(X1, X2) v with v [n2 K], both indexed (sample, output).
 * Returns TD_OK or a run failure (message from td_ntvp_error). */
enum td_status td_ntvp_apply(struct td_ntvp *t, const float *v, float *out);

/* The two halves: u [params] = J(X2)^T v, and out [n1 K] = J(X1) u. */
enum td_status td_ntvp_vjp(struct td_ntvp *t, const float *v, float *u);
enum td_status td_ntvp_jvp(struct td_ntvp *t, const float *u, float *out);

/* The message of the last failure ("" when none). Owned by t. */
const char *td_ntvp_error(const struct td_ntvp *t);

#endif
