/* Shared glue of softmax and log_softmax over the last axis: x [..., C]
 * TD_F32, y [..., C], run by the oneDNN softmax v2 forward primitive. */
#ifndef TD_SOFTMAX_PRIM_H
#define TD_SOFTMAX_PRIM_H

#include "ops/op.h"

/* Shape rule: y has x's shape; a scalar or an integer x is a shape error. */
enum td_status td_softmax_shape(struct td_node *n);

/* op->prepare body: softmax v2 forward (inference) with `alg`
 * (dnnl_softmax_accurate or dnnl_softmax_log) over the last axis, stored as
 * a struct td_prim (run with td_prim_execute, free with td_prim_release).
 * Returns TD_OK, TD_ERR_NOMEM or TD_ERR_BACKEND with p->err filled. */
enum td_status td_softmax_prepare(struct td_prep *p, dnnl_alg_kind_t alg);

/* x [..., C] summed over the last axis, kept: [..., 1]. For the rules. */
struct td_node *td_sum_last(struct td_graph *g, struct td_node *x);

/* Causal (masked) attention rows: x [..., T, T], where row i of each T x T
 * matrix sees columns j <= i only. Returns T when s has rank >= 2 and equal
 * last two axes, else 0. */
int64_t td_causal_size(const struct td_shape *s);

/* t [..., T, T] times the lower-triangular [T, T] ones (1 where j <= i):
 * the mask of the causal ops' rules, a constant built on each call (T*T
 * floats owned by the graph). NULL with TD_ERR_NOMEM recorded on g when the
 * values cannot be allocated. */
struct td_node *td_causal_mask(struct td_graph *g, struct td_node *t);

/* Test reference: max-shifted softmax (take_log = 0) or log-softmax (take_log = 1) of
 * each last-axis row, in double. */
void td_softmax_reference(const struct td_node *n, const void *const *in, float *out, int take_log);

/* Operand shapes both ops are tested on (no attributes). */
#define TD_SOFTMAX_N_CASES 3
extern const struct td_op_case td_softmax_cases[TD_SOFTMAX_N_CASES];

/* The test block of both ops: smooth everywhere, drawn from [-3, 3].
 * oneDNN 2.6's softmax kernels use a fast exp/log: measured errors reach
 * 2.5e-5 relative on log-softmax outputs near 0.1, hence fwd_tol. */
#define TD_SOFTMAX_TEST(reference_)                                                                \
    {                                                                                              \
        .lo = -3.0f, .hi = 3.0f, .fd_eps = 1e-2f, .tol = 2e-3f, .fwd_tol = 1e-4f,                  \
        .n_cases = TD_SOFTMAX_N_CASES, .cases = td_softmax_cases, .reference = (reference_)        \
    }

#endif
