#include "optim/gemm.h"

#include <cblas.h>
#include <omp.h>

/* Block edge: about 256, a multiple of the alignment. */
static int64_t block_edge(int64_t align)
{
    if (align < 1) align = 1;
    int64_t b = (256 + align - 1) / align * align;
    return b;
}

struct blocks {
    int64_t bm, bn, nbm, nbn;
    int64_t count;
    int lower;
};

static struct blocks plan_blocks(const struct td_gemm_opts *o, int64_t M, int64_t N)
{
    struct blocks b;
    b.bm = b.bn = block_edge(o->align);
    b.nbm = (M + b.bm - 1) / b.bm;
    b.nbn = (N + b.bn - 1) / b.bn;
    b.count = b.nbm * b.nbn;
    b.lower = o->lower;
    return b;
}

static int threads_of(const struct td_gemm_opts *o)
{
    return o->num_threads > 0 ? o->num_threads : omp_get_max_threads();
}

/* OpenBLAS runs single-threaded inside an active parallel region, which is
 * what each block wants. A team of one is not active, so a lone caller
 * lowers OpenMP's thread count for the call and puts it back, as td_run
 * does for its nodes. */
static int enter(int nt)
{
    int saved = omp_get_max_threads();
    if (nt == 1 && saved != 1) omp_set_num_threads(1);
    return saved;
}

static void leave(int nt, int saved)
{
    if (nt == 1 && saved != 1) omp_set_num_threads(saved);
}

/* Block idx of C [M, N]: its first row and column and its extent; 0 when
 * it lies wholly above the diagonal and only the lower triangle was asked
 * for. */
static int block_at(const struct blocks *b, int64_t idx, int64_t M, int64_t N, int64_t *i0,
                    int64_t *j0, int64_t *mb, int64_t *nb)
{
    const int64_t i = idx / b->nbn, j = idx % b->nbn;
    *i0 = i * b->bm;
    *j0 = j * b->bn;
    *mb = M - *i0 < b->bm ? M - *i0 : b->bm;
    *nb = N - *j0 < b->bn ? N - *j0 : b->bn;
    return !b->lower || *j0 <= *i0 + b->bm - 1;
}

void td_gemm_nt(const struct td_gemm_opts *o, int64_t M, int64_t N, int64_t Kd, const float *A,
                int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc)
{
    if (M <= 0 || N <= 0) return;
    struct blocks b = plan_blocks(o, M, N);
    int nt = threads_of(o);
    if (nt > b.count) nt = (int)b.count;
    int saved = enter(nt);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t idx = 0; idx < b.count; idx++) {
        int64_t i0, j0, mb, nb;
        if (!block_at(&b, idx, M, N, &i0, &j0, &mb, &nb)) continue;
        if (Kd == 0) {
            for (int64_t r = 0; r < mb; r++)
                for (int64_t c = 0; c < nb; c++) C[(i0 + r) * ldc + j0 + c] = 0;
            continue;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mb, (int)nb, (int)Kd, 1.0f,
                    A + i0 * lda, (int)lda, B + j0 * ldb, (int)ldb, 0.0f, C + i0 * ldc + j0,
                    (int)ldc);
    }
    leave(nt, saved);
}

size_t td_gemm_acc64_scratch(const struct td_gemm_opts *o, int64_t M, int64_t N)
{
    struct blocks b = plan_blocks(o, M, N);
    int nt = threads_of(o);
    if (nt > b.count) nt = (int)b.count;
    return (size_t)nt * (size_t)(b.bm * b.bn);
}

void td_gemm_nt_acc64(const struct td_gemm_opts *o, int64_t M, int64_t N, int64_t Kd,
                      const float *A, int64_t lda, const float *B, int64_t ldb, double alpha,
                      double *C, int64_t ldc, float *tmp)
{
    if (M <= 0 || N <= 0 || Kd <= 0) return;
    struct blocks b = plan_blocks(o, M, N);
    int nt = threads_of(o);
    if (nt > b.count) nt = (int)b.count;
    int saved = enter(nt);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t idx = 0; idx < b.count; idx++) {
        int64_t i0, j0, mb, nb;
        if (!block_at(&b, idx, M, N, &i0, &j0, &mb, &nb)) continue;
        float *t = tmp + (size_t)omp_get_thread_num() * (size_t)(b.bm * b.bn);
        for (int64_t k0 = 0; k0 < Kd; k0 += TD_GEMM_CHUNK) {
            int64_t kc = Kd - k0 < TD_GEMM_CHUNK ? Kd - k0 : TD_GEMM_CHUNK;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)mb, (int)nb, (int)kc, 1.0f,
                        A + i0 * lda + k0, (int)lda, B + j0 * ldb + k0, (int)ldb, 0.0f, t, (int)nb);
            for (int64_t r = 0; r < mb; r++) {
                double *c = C + (i0 + r) * ldc + j0;
                const float *s = t + r * nb;
                for (int64_t q = 0; q < nb; q++) c[q] += alpha * (double)s[q];
            }
        }
    }
    leave(nt, saved);
}
