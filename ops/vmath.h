/* Float math and row reductions for hand-written kernels that must
 * vectorize: no calls per element, no branches, no errno, so a loop over
 * them compiles to AVX-512 code. glibc's expf and erff are one scalar call
 * per element unless the whole build uses -ffast-math (which this project
 * does not: it would drop NaN checks). */
#ifndef TD_VMATH_H
#define TD_VMATH_H

#include <stdint.h>
#include <string.h>

/* a * b + c, fused into one instruction where the target has FMA (the
 * build's ISO C mode keeps the compiler from contracting on its own);
 * separately rounded otherwise, so results may differ in the last bit
 * between such builds. */
#ifdef __FMA__
#define TD_FMA(a, b, c) __builtin_fmaf((a), (b), (c))
#else
#define TD_FMA(a, b, c) ((a) * (b) + (c))
#endif

/* exp(d) for d <= 88, relative error below 2e-7: d = k ln2 + r with
 * |r| <= ln2/2 (ln2 split in two so k ln2_hi is exact), exp(r) by its Taylor
 * series to degree 7 (truncation 5e-9), times 2^k built in the exponent
 * bits. d below -87.3 gives exactly 0, not a denormal; NaN stays NaN. */
static inline float td_vexpf(float d)
{
    const float shift = 0x1.8p23f; /* adding it rounds to an integer in the low bits */
    d = d < -88.0f ? -88.0f : d;
    float kf = d * 1.44269504f + shift;
    uint32_t bits;
    memcpy(&bits, &kf, sizeof(bits));
    kf -= shift;
    float r = d - kf * 0.693359375f - kf * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = TD_FMA(p, r, 1.0f / 720.0f);
    p = TD_FMA(p, r, 1.0f / 120.0f);
    p = TD_FMA(p, r, 1.0f / 24.0f);
    p = TD_FMA(p, r, 1.0f / 6.0f);
    p = TD_FMA(p, r, 0.5f);
    p = TD_FMA(p, r, 1.0f);
    p = TD_FMA(p, r, 1.0f);
    uint32_t scale_bits = (bits + 127u) << 23;
    float scale;
    memcpy(&scale, &scale_bits, sizeof(scale));
    return d < -87.3f ? 0.f : p * scale;
}

#define TD_SQRT1_2 0.70710678118654752440f     /* 1/sqrt(2) */
#define TD_INV_SQRT_2PI 0.39894228040143267794 /* 1/sqrt(2 pi), the normal density at 0 */

/* The standard normal distribution function Phi(x) = erfc(-x / sqrt 2) / 2
 * with a small relative error everywhere, tails included: erfc(z), z >= 0,
 * is t exp(-z^2 + P(t)), t = 1 / (1 + z/2), with Numerical Recipes'
 * Chebyshev fit P (relative error 1.2e-7 for every z >= 0); Phi(x) is
 * erfc(|x|/sqrt2)/2 for x <= 0 and 1 minus that for x > 0. Measured
 * against double: relative error 4e-7 on [-1, 1], 7e-7 on [-3, -1], 4e-6
 * near -10 (float rounding of the exponent -x^2/2 grows with it); it is 0
 * below about -13. NaN gives NaN. */
static inline float td_normal_cdf(float x)
{
    float z = (x < 0.f ? -x : x) * TD_SQRT1_2;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = TD_FMA(p, t, -0.82215223f);
    p = TD_FMA(p, t, 1.48851587f);
    p = TD_FMA(p, t, -1.13520398f);
    p = TD_FMA(p, t, 0.27886807f);
    p = TD_FMA(p, t, -0.18628806f);
    p = TD_FMA(p, t, 0.09678418f);
    p = TD_FMA(p, t, 0.37409196f);
    p = TD_FMA(p, t, 1.00002368f);
    p = TD_FMA(p, t, -1.26551223f);
    float half_erfc = 0.5f * t * td_vexpf(p - 0.5f * x * x);
    return x > 0.f ? 1.0f - half_erfc : half_erfc;
}

/* The standard normal density phi(x) = exp(-x^2/2) / sqrt(2 pi). */
static inline float td_normal_pdf(float x)
{
    return (float)TD_INV_SQRT_2PI * td_vexpf(-0.5f * x * x);
}

/* Row reductions in TD_VLANES partial results: element j goes to lane
 * j % TD_VLANES, lanes are combined pairwise at the end. The order depends
 * only on n, so a row gives the same bits whichever thread reduces it. The
 * lanes are a GCC vector (one zmm register with AVX-512): a float array
 * indexed per lane stays in memory, and the loop then becomes a
 * load-add-store chain on the stack (measured 3-4x slower). A last partial
 * chunk is copied into a padded block. Vectors go in and out of these
 * helpers by pointer: passed by value, GCC warns (-Wpsabi) in builds
 * without AVX-512. */
#define TD_VLANES 16 /* the helpers below spell out 16 lanes */

typedef float td_vf __attribute__((vector_size(TD_VLANES * sizeof(float))));
typedef int32_t td_vi __attribute__((vector_size(TD_VLANES * sizeof(int32_t))));

static inline void td_vload(td_vf *v, const float *a)
{
    memcpy(v, a, sizeof(*v));
}

/* a[j0, n) (fewer than TD_VLANES elements) followed by pad. */
static inline void td_vtail(td_vf *v, const float *a, int64_t j0, int64_t n, float pad)
{
    float block[TD_VLANES];
    for (int l = 0; l < TD_VLANES; l++) block[l] = pad;
    memcpy(block, a + j0, (size_t)(n - j0) * sizeof(float));
    memcpy(v, block, sizeof(*v));
}

/* Lane l holds j0 + l: compared with a length it masks a chunk. */
static inline void td_vindex(td_vi *i, int64_t j0)
{
    const td_vi iota = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    *i = iota + (int32_t)j0;
}

/* Pairwise: lane l + 8 into lane l, then l + 4, l + 2, l + 1. Constant
 * trip counts, so it compiles to a few shuffles and adds (a loop over the
 * width compiles to a slow general loop, a third of a short row's time). */
static inline float td_vf_sum(const td_vf *v)
{
    float l[TD_VLANES];
    memcpy(l, v, sizeof(l));
    for (int i = 0; i < 8; i++) l[i] += l[i + 8];
    for (int i = 0; i < 4; i++) l[i] += l[i + 4];
    for (int i = 0; i < 2; i++) l[i] += l[i + 2];
    return l[0] + l[1];
}

/* sum_j a[j] for j < n. */
static inline float td_vsum(const float *a, int64_t n)
{
    td_vf acc = {0}, v;
    int64_t j = 0;
    for (; j + TD_VLANES <= n; j += TD_VLANES) {
        td_vload(&v, a + j);
        acc += v;
    }
    if (j < n) {
        td_vtail(&v, a, j, n, 0.f);
        acc += v;
    }
    return td_vf_sum(&acc);
}

/* sum_j (a[j] - m)^2 for j < n. */
static inline float td_vsumsq_dev(const float *a, int64_t n, float m)
{
    td_vf acc = {0}, v;
    int64_t j = 0;
    for (; j + TD_VLANES <= n; j += TD_VLANES) {
        td_vload(&v, a + j);
        v -= m;
        acc += v * v;
    }
    if (j < n) {
        td_vtail(&v, a, j, n, m);
        v -= m;
        acc += v * v;
    }
    return td_vf_sum(&acc);
}

/* max_j a[j] for 1 <= n; NaNs are skipped unless a[0] is one (the caller's
 * later arithmetic on the row propagates them anyway). */
static inline float td_vmax(const float *a, int64_t n)
{
    td_vf acc, v;
    td_vtail(&acc, a, 0, 0, a[0]);
    for (int64_t j = 0; j < n; j += TD_VLANES) {
        if (j + TD_VLANES <= n)
            td_vload(&v, a + j);
        else
            td_vtail(&v, a, j, n, a[0]);
        td_vi gt = v > acc;
        acc = (td_vf)(((td_vi)v & gt) | ((td_vi)acc & ~gt));
    }
    float l[TD_VLANES];
    memcpy(l, &acc, sizeof(l));
    for (int i = 0; i < 8; i++) l[i] = l[i + 8] > l[i] ? l[i + 8] : l[i];
    for (int i = 0; i < 4; i++) l[i] = l[i + 4] > l[i] ? l[i + 4] : l[i];
    for (int i = 0; i < 2; i++) l[i] = l[i + 2] > l[i] ? l[i + 2] : l[i];
    return l[1] > l[0] ? l[1] : l[0];
}

/* n rounded up to a multiple of TD_VLANES, at most cap: causal rows run
 * whole vectors over a prefix of the row and mask the rest. */
static inline int64_t td_vround(int64_t n, int64_t cap)
{
    int64_t r = (n + TD_VLANES - 1) / TD_VLANES * TD_VLANES;
    return r < cap ? r : cap;
}

#endif
