/* Library-internal matrix products for the kernel contractions (optim/ntk*,
 * optim/kernel_predict.c): C = A B^T on row-major float matrices with
 * OpenBLAS's sgemm, cut into fixed blocks of C that run on a team of
 * threads, one single-threaded sgemm per block. The blocks depend only on
 * the shapes, never on the thread count, so the bits of C do not either.
 * Not installed. */
#ifndef TD_GEMM_H
#define TD_GEMM_H

#include <stddef.h>
#include <stdint.h>

/* How a product is cut and run. */
struct td_gemm_opts {
    int num_threads; /* team size; <= 0: omp_get_max_threads() */
    int64_t align;   /* block edges are multiples of this (>= 1), so rows
                        sharing a group (one sample's K outputs) stay in one block */
    int lower;       /* 1: only blocks that meet the lower triangle (row >= col);
                        A and B must then be the same matrix (or C symmetric) */
};

/* C[M, N] (float, ldc) = A[M, Kd] B[N, Kd]^T, A and B row-major with leading
 * dimensions lda, ldb. */
void td_gemm_nt(const struct td_gemm_opts *o, int64_t M, int64_t N, int64_t Kd, const float *A,
                int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc);

/* C[M, N] (double, ldc) += alpha * A B^T, the inner dimension cut into chunks
 * of TD_GEMM_CHUNK summed in float by sgemm and added in double in chunk
 * order: long contractions (a Jacobian's 100,000 parameters) keep about
 * float's relative precision instead of losing sqrt(Kd) of it. scratch
 * holds td_gemm_acc64_scratch(o, M, N) floats. */
#define TD_GEMM_CHUNK 4096
size_t td_gemm_acc64_scratch(const struct td_gemm_opts *o, int64_t M, int64_t N);
void td_gemm_nt_acc64(const struct td_gemm_opts *o, int64_t M, int64_t N, int64_t Kd,
                      const float *A, int64_t lda, const float *B, int64_t ldb, double alpha,
                      double *C, int64_t ldc, float *scratch);

#endif
