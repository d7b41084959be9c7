/* Kernel tiles from two tiles' per-sample data (optim/ntk_impl.h):
 *   explicit columns   Theta += E E'^T                       (one GEMM)
 *   factored uses      Theta_{(n,k),(m,l)} += sum_{t,s} (delta^k_{n,t} . delta^l_{m,s})
 *                                                   (a_{n,t} . a_{m,s} + [bias])
 * Products are float GEMMs (optim/gemm.h); sums over uses, positions and
 * chunks of long inner dimensions are double. Scratch comes from a
 * workspace kept across tile pairs: fresh memory costs a page fault per
 * page on its first touch, more than the arithmetic here. */
#include <stdlib.h>
#include <string.h>

#include "graph/memory.h"
#include "optim/gemm.h"
#include "optim/ntk_impl.h"

enum { W_D, W_A, W_TA, W_TB, W_GEMM, W_D1, W_A1 };

static float *work_get(struct td_ntk_work *w, int slot, size_t floats)
{
    if (w->cap[slot] >= floats) return w->buf[slot];
    free(w->buf[slot]);
    w->buf[slot] = td_alloc_large(floats * sizeof(float));
    w->cap[slot] = w->buf[slot] ? floats : 0;
    return w->buf[slot];
}

void td_ntk_work_free(struct td_ntk_work *w)
{
    for (int i = 0; i < TD_NTK_WORK_SLOTS; i++) free(w->buf[i]);
    memset(w, 0, sizeof(*w));
}

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

/* A = a a'^T [ni R, nj R] of a factored use, or zeros for a bias alone. */
static void activations(const struct td_ntk_use *u, const struct td_ntk_side *a,
                        const struct td_ntk_side *b, int i, int lower, int nt, float *A)
{
    const int64_t R = u->R, ni = a->count, nj = b->count;
    struct td_gemm_opts o = {threads(nt), R, lower};
    if (u->w_param >= 0)
        td_gemm_nt(&o, ni * R, nj * R, u->in, a->act[i], u->in, b->act[i], u->in, A, nj * R);
    else
        memset(A, 0, (size_t)(ni * R * nj * R) * sizeof(float));
}

static int factored_full(const struct td_ntk_use *u, int64_t K, const struct td_ntk_side *a,
                         const struct td_ntk_side *b, int i, int lower, int nt,
                         struct td_ntk_work *w, double *acc)
{
    const int64_t ni = a->count, nj = b->count, R = u->R, ld = nj * K;
    const int64_t dr = ni * K * R, dc = nj * K * R;
    const double bias = u->b_param >= 0 ? 1.0 : 0.0;
    float *D = work_get(w, W_D, (size_t)(dr * dc));
    float *A = work_get(w, W_A, (size_t)(ni * R * nj * R));
    if (!D || !A) return -1;
    struct td_gemm_opts od = {threads(nt), K * R, lower};
    td_gemm_nt(&od, dr, dc, u->out, a->delta[i], u->out, b->delta[i], u->out, D, dc);
    activations(u, a, b, i, lower, nt, A);
    const int team = td_ntk_team(nt, (double)dr * (double)dc);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
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
    return 0;
}

static int factored_trace(const struct td_ntk_use *u, int64_t K, const struct td_ntk_side *a,
                          const struct td_ntk_side *b, int i, int lower, int nt,
                          struct td_ntk_work *w, double *acc)
{
    const int64_t ni = a->count, nj = b->count, R = u->R, wd = K * u->out;
    const double bias = u->b_param >= 0 ? 1.0 : 0.0;
    float *D = work_get(w, W_D, (size_t)(ni * R * nj * R));
    float *A = work_get(w, W_A, (size_t)(ni * R * nj * R));
    const float *da = a->delta[i], *db = b->delta[i];
    if (!D || !A) return -1;
    if (R > 1) {
        float *ta = work_get(w, W_TA, (size_t)(ni * R * wd));
        float *tb = work_get(w, W_TB, (size_t)(nj * R * wd));
        if (!ta || !tb) return -1;
        positions_first(da, ni, K, R, u->out, ta);
        positions_first(db, nj, K, R, u->out, tb);
        da = ta, db = tb;
    }
    struct td_gemm_opts o = {threads(nt), R, lower};
    td_gemm_nt(&o, ni * R, nj * R, wd, da, wd, db, wd, D, nj * R);
    activations(u, a, b, i, lower, nt, A);
    const int team = td_ntk_team(nt, (double)(ni * R) * (double)(nj * R));
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
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
    return 0;
}

/* Every factored use with one position, in one pass over the kernel:
 * row (n, k) gains sum_u D_u's row times (a_n . a_m + b_u) for each m.
 * Their D_u and A_u are made first, side by side in the workspace, so the
 * accumulator is read and written once rather than once per use. */
static int factored_full_r1(const struct td_ntk_structure *s, int64_t K,
                            const struct td_ntk_side *a, const struct td_ntk_side *b, int lower,
                            int nt, struct td_ntk_work *w, double *acc)
{
    const int64_t ni = a->count, nj = b->count, dr = ni * K, dc = nj * K, ld = nj * K;
    int idx[64], nu = 0;
    for (int i = 0; i < s->n_uses && nu < 64; i++)
        if (s->uses[i].route == TD_ROUTE_FACTORED && s->uses[i].R == 1) idx[nu++] = i;
    if (nu == 0) return 0;
    float *D = work_get(w, W_D1, (size_t)nu * (size_t)(dr * dc));
    float *A = work_get(w, W_A1, (size_t)nu * (size_t)(ni * nj));
    float bias[64];
    if (!D || !A) return -1;
    for (int q = 0; q < nu; q++) {
        const struct td_ntk_use *u = &s->uses[idx[q]];
        struct td_gemm_opts od = {threads(nt), K, lower};
        td_gemm_nt(&od, dr, dc, u->out, a->delta[idx[q]], u->out, b->delta[idx[q]], u->out,
                   D + (size_t)q * (size_t)(dr * dc), dc);
        activations(u, a, b, idx[q], lower, nt, A + (size_t)q * (size_t)(ni * nj));
        bias[q] = u->b_param >= 0 ? 1.0f : 0.0f;
    }
    const int team = td_ntk_team(nt, (double)nu * (double)dr * (double)dc);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (int64_t nk = 0; nk < dr; nk++) {
        const int64_t n = nk / K, mmax = lower ? n + 1 : nj;
        double *row = acc + nk * ld;
        for (int q = 0; q < nu; q++) {
            const float *drow = D + (size_t)q * (size_t)(dr * dc) + nk * dc;
            const float *arow = A + (size_t)q * (size_t)(ni * nj) + n * nj;
            for (int64_t m = 0; m < mmax; m++) {
                const float sc = arow[m] + bias[q];
                for (int64_t l = 0; l < K; l++) row[m * K + l] += (double)(drow[m * K + l] * sc);
            }
        }
    }
    return 0;
}

int td_ntk_contract(const struct td_ntk_structure *s, int64_t K, const struct td_ntk_side *a,
                    const struct td_ntk_side *b, int trace, int lower, int num_threads,
                    struct td_ntk_work *w, double *acc)
{
    const int64_t ni = a->count, nj = b->count;
    if (s->width) {
        struct td_gemm_opts o = {threads(num_threads), trace ? 1 : K, lower};
        const int64_t M = trace ? ni : ni * K, N = trace ? nj : nj * K;
        const int64_t inner = trace ? K * (int64_t)s->width : (int64_t)s->width;
        float *scratch = work_get(w, W_GEMM, td_gemm_acc64_scratch(&o, M, N));
        if (!scratch) return -1;
        td_gemm_nt_acc64(&o, M, N, inner, a->E, inner, b->E, inner, 1.0, acc, N, scratch);
    }
    if (!trace && factored_full_r1(s, K, a, b, lower, num_threads, w, acc)) return -1;
    for (int i = 0; i < s->n_uses; i++) {
        const struct td_ntk_use *u = &s->uses[i];
        if (u->route != TD_ROUTE_FACTORED || (!trace && u->R == 1)) continue;
        int r = trace ? factored_trace(u, K, a, b, i, lower, num_threads, w, acc)
                      : factored_full(u, K, a, b, i, lower, num_threads, w, acc);
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
    double work = (double)s->width;
    for (int i = 0; i < s->n_uses; i++)
        work += (double)(s->uses[i].R * s->uses[i].R) * (double)(s->uses[i].in + s->uses[i].out);
    const int team = td_ntk_team(num_threads, (double)(n_samples * kk) * work);
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
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
