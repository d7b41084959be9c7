/* Deterministic reductions over flat float blocks, and global-norm gradient
 * clipping.
 *
 * Every sum is accumulated in double in a fixed order that does not depend
 * on the thread count: the input is cut into blocks of TD_REDUCE_BLOCK
 * elements, each block is summed by one thread in a fixed pattern, and the
 * block partials are added serially in block order. Same input gives the
 * bitwise-same result on 1 or 64 threads.
 *
 * num_threads is the OpenMP team size used for the block partials; 0 means
 * the OpenMP default (omp_get_max_threads()). Nothing here changes the
 * process-wide thread count or allocates memory. */
#ifndef TD_REDUCE_H
#define TD_REDUCE_H

#include <stddef.h>

#define TD_REDUCE_BLOCK 4096

/* sum_i a[i] * b[i]. */
double td_vec_dot(const float *a, const float *b, size_t n, int num_threads);

/* sum_i a[i]^2. */
double td_vec_sumsq(const float *a, size_t n, int num_threads);

/* sum_i (a[i] + b[i])^2, without forming a + b. */
double td_vec_sumsq_sum(const float *a, const float *b, size_t n, int num_threads);

/* 1 when every a[i] is finite, 0 when one is NaN or infinite. A branch-free
 * test of the exponent bits, so it vectorizes (isfinite with an early exit
 * does not). */
int td_vec_all_finite(const float *a, size_t n, int num_threads);

/* Global-norm clipping, as torch.nn.utils.clip_grad_norm_: when
 * ||g||_2 > max_norm, scales g in place by max_norm / ||g||_2. max_norm <= 0
 * leaves g untouched. Returns ||g||_2 before clipping (inf or NaN when g
 * holds them; g is then left untouched). */
double td_clip_global_norm(float *g, size_t n, double max_norm, int num_threads);

#endif
