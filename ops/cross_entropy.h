/* Shared code of softmax_cross_entropy and softmax_cross_entropy_grad:
 * logits [B, C] TD_F32 and labels [B] TD_I32, row-wise max-shifted
 * exponentials. The exponentials are computed in double by a polynomial the
 * compiler vectorizes: glibc's expf is one scalar call per element (4 us of
 * the 6.5 us the loss took at [128, 10]; 2.6 us now), and the polynomial
 * is more accurate too. */
#ifndef TD_CROSS_ENTROPY_H
#define TD_CROSS_ENTROPY_H

#include "ops/op.h"

/* Checks the operands of n (logits, labels) and records a shape error
 * naming them when they are not [B, C] TD_F32 and [B] TD_I32. Does not set
 * n's shape. Returns TD_OK or TD_ERR_SHAPE. */
enum td_status td_cross_entropy_check(struct td_node *n);

/* Rows handed to one call of a kernel's block function: a fixed count, so
 * the work of a row never depends on the thread count. */
#define TD_ROW_EXP_BLOCK 16

/* Calls block(ex, b0, n) for b0 = 0, TD_ROW_EXP_BLOCK, ... < rows with
 * n = min(TD_ROW_EXP_BLOCK, rows - b0): in an OpenMP loop over
 * ex->nthreads threads, or directly when there is one (an empty OpenMP
 * region costs 1.1 us here even with an if(0) clause: half of what a
 * [128, 10] loss takes). */
void td_row_blocks_run(const struct td_exec *ex, int64_t rows,
                       void (*block)(const struct td_exec *ex, int64_t b0, int64_t n));

/* x [rows, c] row-major floats, mx [rows], e [rows, c] doubles, sum [rows]
 * doubles, all caller-owned. For each row b: mx[b] = max_j x[b, j] (NaNs are
 * skipped unless x[b, 0] is one), e[b, j] = exp(x[b, j] - mx[b]) (NaN for a
 * NaN, and for every element of an all -inf row), sum[b] = e[b, 0] + ... +
 * e[b, c-1] in that order. */
void td_row_exp(const float *x, int64_t rows, int64_t c, float *mx, double *e, double *sum);

/* Operand shapes both ops are tested on (7 classes; 37 rows leave a partial
 * TD_ROW_EXP_BLOCK). */
#define TD_CROSS_ENTROPY_N_CASES 3
extern const struct td_op_case td_cross_entropy_cases[TD_CROSS_ENTROPY_N_CASES];

/* The test block of both ops: logits from [-3, 3], labels from [0, 7). */
#define TD_CROSS_ENTROPY_TEST(reference_)                                                          \
    {                                                                                              \
        .lo = -3.0f, .hi = 3.0f, .fd_eps = 1e-2f, .tol = 2e-3f, .int_hi = 7,                       \
        .n_cases = TD_CROSS_ENTROPY_N_CASES, .cases = td_cross_entropy_cases,                      \
        .reference = (reference_)                                                                  \
    }

#endif
