/* Kernel tiles from two tiles' per-sample data (optim/ntk_impl.h):
 *   explicit columns   Theta += E E'^T                       (one GEMM)
 *   factored uses      Theta_{(n,k),(m,l)} += sum_{t,s} (delta^k_{n,t} . delta^l_{m,s})
 *                                                   (a_{n,t} . a_{m,s} + [bias])
 * Products are float GEMMs (optim/gemm.h); sums over uses, positions and
 * chunks of long inner dimensions are double. */
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "optim/gemm.h"
#include "optim/ntk_impl.h"

static int threads(int nt)
{
    return nt > 0 ? nt : 0;
}

/* [rows][K][R][out] -> [rows][R][K][out]: for the trace, each position's
 * outputs side by side, so one dot product sums over k. */
static void positions_first(const float *d, int64_t rows, int64_t K, int64_t R, int64_t out,
                            float *t)
{
    for (int64_t n = 0; n < rows; n++)
        for (int64_t k = 0; k < K; k++)
            for (int64_t r = 0; r < R; r++)
                memcpy(t + ((n * R + r) * K + k) * out, d + ((n * K + k) * R + r) * out,
                       (size_t)out * sizeof(float));
}

static int factored_full(const struct td_ntk_use *u, int64_t K, const struct td_ntk_side *a,
                         const struct td_ntk_side *b, int i, int lower, int nt, double *acc)
{
    const int64_t ni = a->count, nj = b->count, R = u->R, ld = nj * K;
    const int64_t dr = ni * K * R, dc = nj * K * R;
    const double bias = u->b_param >= 0 ? 1.0 : 0.0;
    float *D = td_alloc_large((size_t)(dr * dc) * sizeof(float));
    float *A = td_alloc_large((size_t)(ni * R * nj * R) * sizeof(float));
    if (!D || !A) {
        free(D), free(A);
        return -1;
    }
    struct td_gemm_opts od = {threads(nt), K * R, lower}, oa = {threads(nt), R, lower};
    td_gemm_nt(&od, dr, dc, u->out, a->delta[i], u->out, b->delta[i], u->out, D, dc);
    if (u->w_param >= 0)
        td_gemm_nt(&oa, ni * R, nj * R, u->in, a->act[i], u->in, b->act[i], u->in, A, nj * R);
    else
        memset(A, 0, (size_t)(ni * R * nj * R) * sizeof(float));
#pragma omp parallel for schedule(static) num_threads(nt > 0 ? nt : 1)
    for (int64_t nk = 0; nk < ni * K; nk++) {
        const int64_t n = nk / K, k = nk % K, mmax = lower ? n + 1 : nj;
        double *row = acc + nk * ld;
        for (int64_t m = 0; m < mmax; m++)
            for (int64_t l = 0; l < K; l++) {
                double s = 0;
                for (int64_t t = 0; t < R; t++) {
                    const float *drow = D + ((n * K + k) * R + t) * dc + (m * K + l) * R;
                    const float *arow = A + (n * R + t) * (nj * R) + m * R;
                    for (int64_t q = 0; q < R; q++) s += (double)drow[q] * ((double)arow[q] + bias);
                }
                row[m * K + l] += s;
            }
    }
    free(D), free(A);
    return 0;
}

static int factored_trace(const struct td_ntk_use *u, int64_t K, const struct td_ntk_side *a,
                          const struct td_ntk_side *b, int i, int lower, int nt, double *acc)
{
    const int64_t ni = a->count, nj = b->count, R = u->R, w = K * u->out;
    const double bias = u->b_param >= 0 ? 1.0 : 0.0;
    float *D = td_alloc_large((size_t)(ni * R * nj * R) * sizeof(float));
    float *A = td_alloc_large((size_t)(ni * R * nj * R) * sizeof(float));
    float *ta = R > 1 ? td_alloc_large((size_t)(ni * R * w) * sizeof(float)) : NULL;
    float *tb = R > 1 ? td_alloc_large((size_t)(nj * R * w) * sizeof(float)) : NULL;
    if (!D || !A || (R > 1 && (!ta || !tb))) {
        free(D), free(A), free(ta), free(tb);
        return -1;
    }
    const float *da = a->delta[i], *db = b->delta[i];
    if (R > 1) {
        positions_first(da, ni, K, R, u->out, ta);
        positions_first(db, nj, K, R, u->out, tb);
        da = ta, db = tb;
    }
    struct td_gemm_opts o = {threads(nt), R, lower};
    td_gemm_nt(&o, ni * R, nj * R, w, da, w, db, w, D, nj * R);
    if (u->w_param >= 0)
        td_gemm_nt(&o, ni * R, nj * R, u->in, a->act[i], u->in, b->act[i], u->in, A, nj * R);
    else
        memset(A, 0, (size_t)(ni * R * nj * R) * sizeof(float));
#pragma omp parallel for schedule(static) num_threads(nt > 0 ? nt : 1)
    for (int64_t n = 0; n < ni; n++) {
        const int64_t mmax = lower ? n + 1 : nj;
        for (int64_t m = 0; m < mmax; m++) {
            double s = 0;
            for (int64_t t = 0; t < R; t++) {
                const float *drow = D + (n * R + t) * (nj * R) + m * R;
                const float *arow = A + (n * R + t) * (nj * R) + m * R;
                for (int64_t q = 0; q < R; q++) s += (double)drow[q] * ((double)arow[q] + bias);
            }
            acc[n * nj + m] += s;
        }
    }
    free(D), free(A), free(ta), free(tb);
    return 0;
}

int td_ntk_contract(const struct td_ntk_structure *s, int64_t K, const struct td_ntk_side *a,
                    const struct td_ntk_side *b, int trace, int lower, int num_threads, double *acc)
{
    const int64_t ni = a->count, nj = b->count;
    if (s->width) {
        struct td_gemm_opts o = {threads(num_threads), trace ? 1 : K, lower};
        int r =
            trace ? td_gemm_nt_acc64(&o, ni, nj, K * (int64_t)s->width, a->E, K * (int64_t)s->width,
                                     b->E, K * (int64_t)s->width, 1.0, acc, nj)
                  : td_gemm_nt_acc64(&o, ni * K, nj * K, (int64_t)s->width, a->E, (int64_t)s->width,
                                     b->E, (int64_t)s->width, 1.0, acc, nj * K);
        if (r) return r;
    }
    for (int i = 0; i < s->n_uses; i++) {
        const struct td_ntk_use *u = &s->uses[i];
        if (u->route != TD_ROUTE_FACTORED) continue;
        int r = trace ? factored_trace(u, K, a, b, i, lower, num_threads, acc)
                      : factored_full(u, K, a, b, i, lower, num_threads, acc);
        if (r) return r;
    }
    return 0;
}

/* sum_w x[w] y[w] over n floats: float partial sums of fixed chunks added
 * in double, as the GEMM path does. */
static double dot_chunked(const float *x, const float *y, size_t n)
{
    double total = 0;
    for (size_t c = 0; c < n; c += TD_GEMM_CHUNK) {
        size_t e = n - c < TD_GEMM_CHUNK ? n - c : TD_GEMM_CHUNK;
        float part = 0;
#pragma omp simd reduction(+ : part)
        for (size_t w = 0; w < e; w++) part += x[c + w] * y[c + w];
        total += part;
    }
    return total;
}

static double dot_d(const float *x, const float *y, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)x[i] * y[i];
    return s;
}

int td_ntk_contract_diag(const struct td_ntk_structure *s, int64_t K, const struct td_ntk_side *a,
                         const struct td_ntk_side *b, int trace, int num_threads, double *acc)
{
    const int64_t n_samples = a->count, kk = trace ? 1 : K * K;
#pragma omp parallel for schedule(static) num_threads(num_threads > 0 ? num_threads : 1)
    for (int64_t n = 0; n < n_samples; n++) {
        double *out = acc + n * kk;
        for (int64_t k = 0; k < K; k++)
            for (int64_t l = 0; l < K; l++) {
                if (trace && l != k) continue;
                double v = 0;
                if (s->width)
                    v += dot_chunked(a->E + (size_t)(n * K + k) * s->width,
                                     b->E + (size_t)(n * K + l) * s->width, s->width);
                for (int i = 0; i < s->n_uses; i++) {
                    const struct td_ntk_use *u = &s->uses[i];
                    if (u->route != TD_ROUTE_FACTORED) continue;
                    const int64_t R = u->R, out_f = u->out, in = u->in;
                    const double bias = u->b_param >= 0 ? 1.0 : 0.0;
                    const float *da = a->delta[i] + (n * K + k) * R * out_f;
                    const float *db = b->delta[i] + (n * K + l) * R * out_f;
                    for (int64_t t = 0; t < R; t++)
                        for (int64_t q = 0; q < R; q++) {
                            double act = bias;
                            if (u->w_param >= 0)
                                act += dot_d(a->act[i] + (n * R + t) * in,
                                             b->act[i] + (n * R + q) * in, in);
                            v += dot_d(da + t * out_f, db + q * out_f, out_f) * act;
                        }
                }
                out[trace ? 0 : k * K + l] += v;
            }
    }
    return 0;
}
