#include "optim/reduce.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>

#include "optim/par.h"

/* Block partials computed per parallel round; a round covers
 * TD_REDUCE_BLOCK * ROUND elements and its partials live on the stack. */
#define ROUND 256
#define LANES 8

enum red_kind { RED_DOT, RED_SUMSQ, RED_SUMSQ_SUM };

/* a [n], b [n] (unused for RED_SUMSQ). Eight interleaved accumulators, folded
 * in a fixed tree, so the block sum is the same on every call. */
static double block_reduce(enum red_kind k, const float *a, const float *b, size_t n)
{
    double acc[LANES] = {0};
    const size_t body = n - n % LANES;
    switch (k) {
    case RED_DOT:
        for (size_t i = 0; i < body; i += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += (double)a[i + j] * (double)b[i + j];
        for (size_t i = body; i < n; i++) acc[i - body] += (double)a[i] * (double)b[i];
        break;
    case RED_SUMSQ:
        for (size_t i = 0; i < body; i += LANES)
            for (int j = 0; j < LANES; j++) acc[j] += (double)a[i + j] * (double)a[i + j];
        for (size_t i = body; i < n; i++) acc[i - body] += (double)a[i] * (double)a[i];
        break;
    case RED_SUMSQ_SUM:
        for (size_t i = 0; i < body; i += LANES)
            for (int j = 0; j < LANES; j++) {
                const double s = (double)a[i + j] + (double)b[i + j];
                acc[j] += s * s;
            }
        for (size_t i = body; i < n; i++) {
            const double s = (double)a[i] + (double)b[i];
            acc[i - body] += s * s;
        }
        break;
    }
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

static double reduce(enum red_kind k, const float *a, const float *b, size_t n, int num_threads)
{
    const size_t nblocks = (n + TD_REDUCE_BLOCK - 1) / TD_REDUCE_BLOCK;
    const int nt = num_threads > 0 ? num_threads : omp_get_max_threads();
    double total = 0.0;
    for (size_t b0 = 0; b0 < nblocks; b0 += ROUND) {
        const size_t cnt = nblocks - b0 < ROUND ? nblocks - b0 : ROUND;
        double part[ROUND];
#pragma omp parallel for schedule(static) num_threads(nt) if (cnt > 1)
        for (size_t j = 0; j < cnt; j++) {
            const size_t off = (b0 + j) * TD_REDUCE_BLOCK;
            const size_t len = n - off < TD_REDUCE_BLOCK ? n - off : TD_REDUCE_BLOCK;
            part[j] = block_reduce(k, a + off, b ? b + off : NULL, len);
        }
        for (size_t j = 0; j < cnt; j++) total += part[j];
    }
    return total;
}

double td_vec_dot(const float *a, const float *b, size_t n, int num_threads)
{
    return reduce(RED_DOT, a, b, n, num_threads);
}

double td_vec_sumsq(const float *a, size_t n, int num_threads)
{
    return reduce(RED_SUMSQ, a, NULL, n, num_threads);
}

double td_vec_sumsq_sum(const float *a, const float *b, size_t n, int num_threads)
{
    return reduce(RED_SUMSQ_SUM, a, b, n, num_threads);
}

/* a [n]: 1 when one exponent field is all ones (NaN or infinity). */
static unsigned block_nonfinite(const float *a, size_t n)
{
    unsigned bad = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &a[i], sizeof(bits));
        bad |= (bits & 0x7f800000u) == 0x7f800000u;
    }
    return bad;
}

int td_vec_all_finite(const float *a, size_t n, int num_threads)
{
    const size_t nblocks = (n + TD_REDUCE_BLOCK - 1) / TD_REDUCE_BLOCK;
    const int nt = num_threads > 0 ? num_threads : omp_get_max_threads();
    unsigned bad = 0;
#pragma omp parallel for schedule(static) num_threads(nt) reduction(| : bad) if (nblocks > 8)
    for (size_t j = 0; j < nblocks; j++) {
        const size_t off = j * TD_REDUCE_BLOCK;
        bad |= block_nonfinite(a + off, n - off < TD_REDUCE_BLOCK ? n - off : TD_REDUCE_BLOCK);
    }
    return !bad;
}

double td_clip_global_norm(float *g, size_t n, double max_norm, int num_threads)
{
    const double norm = sqrt(td_vec_sumsq(g, n, num_threads));
    if (!(max_norm > 0.0) || !isfinite(norm) || norm <= max_norm) return norm;
    const float s = (float)(max_norm / norm);
    const int nt = num_threads > 0 ? num_threads : omp_get_max_threads();
#pragma omp parallel for simd schedule(static, td_par_chunk(n, nt)) num_threads(nt) if (n >= 32768)
    for (size_t i = 0; i < n; i++) g[i] *= s;
    return norm;
}
