/* Float math for hand-written kernels that must vectorize: no calls, no
 * branches, no errno, so a loop over them compiles to AVX-512 code. glibc's
 * expf and erff are one scalar call per element unless the whole build uses
 * -ffast-math (which this project does not: it would drop NaN checks). */
#ifndef TD_VMATH_H
#define TD_VMATH_H

#include <stdint.h>
#include <string.h>

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
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
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
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float half_erfc = 0.5f * t * td_vexpf(p - 0.5f * x * x);
    return x > 0.f ? 1.0f - half_erfc : half_erfc;
}

/* The standard normal density phi(x) = exp(-x^2/2) / sqrt(2 pi). */
static inline float td_normal_pdf(float x)
{
    return (float)TD_INV_SQRT_2PI * td_vexpf(-0.5f * x * x);
}

/* Row reductions in TD_VLANES partial results: element j goes to lane
 * j % TD_VLANES, lanes are combined pairwise. The order depends only on n,
 * so a row gives the same bits whichever thread reduces it, and the lane
 * loop vectorizes. */
#define TD_VLANES 16

static inline float td_vlanes_sum(float *lane)
{
    for (int w = TD_VLANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) lane[l] += lane[l + w];
    return lane[0];
}

/* sum_j a[j] for j < n. */
static inline float td_vsum(const float *a, int64_t n)
{
    float lane[TD_VLANES] = {0};
    int64_t j = 0;
    for (; j + TD_VLANES <= n; j += TD_VLANES)
        for (int l = 0; l < TD_VLANES; l++) lane[l] += a[j + l];
    for (; j < n; j++) lane[j % TD_VLANES] += a[j];
    return td_vlanes_sum(lane);
}

/* sum_j a[j] b[j] for j < n. */
static inline float td_vdot(const float *a, const float *b, int64_t n)
{
    float lane[TD_VLANES] = {0};
    int64_t j = 0;
    for (; j + TD_VLANES <= n; j += TD_VLANES)
        for (int l = 0; l < TD_VLANES; l++) lane[l] += a[j + l] * b[j + l];
    for (; j < n; j++) lane[j % TD_VLANES] += a[j] * b[j];
    return td_vlanes_sum(lane);
}

/* max_j a[j] for 1 <= n; NaNs are skipped unless a[0] is one (the caller's
 * later arithmetic on the row propagates them anyway). */
static inline float td_vmax(const float *a, int64_t n)
{
    float lane[TD_VLANES];
    for (int l = 0; l < TD_VLANES; l++) lane[l] = a[0];
    int64_t j = 0;
    for (; j + TD_VLANES <= n; j += TD_VLANES)
        for (int l = 0; l < TD_VLANES; l++) lane[l] = a[j + l] > lane[l] ? a[j + l] : lane[l];
    for (; j < n; j++)
        lane[j % TD_VLANES] = a[j] > lane[j % TD_VLANES] ? a[j] : lane[j % TD_VLANES];
    for (int w = TD_VLANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) lane[l] = lane[l + w] > lane[l] ? lane[l + w] : lane[l];
    return lane[0];
}

#endif
