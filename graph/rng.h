/* Counter-based random numbers: every value is a pure function of
 * (seed, stream, counter), so results do not depend on thread count or call
 * order, and a generator's whole state is the counter it has reached. */
#ifndef TD_RNG_H
#define TD_RNG_H

#include <stdint.h>

/* Stream namespaces: draws made for different purposes from one seed never
 * coincide. Parameter initialisers use stream = parameter index. */
#define TD_RNG_STREAM_SHUFFLE (1ull << 60) /* + epoch: the batcher's permutations */
#define TD_RNG_STREAM_PROBE (2ull << 60)   /* + step: Hutchinson's Rademacher vectors */
/* + (mask id << 40) + step: dropout masks (ops/dropout.c), counter = element */
#define TD_RNG_STREAM_DROPOUT (3ull << 60)
#define TD_RNG_STREAM_TEXT (4ull << 60)    /* + step: the text sampler's window starts */
#define TD_RNG_STREAM_SAMPLE (5ull << 60)  /* + 0: tandem sample's draws, counter = token */
/* + probe: Hutchinson trace probes (optim/lanczos.h); + 2^59: Lanczos start vectors */
#define TD_RNG_STREAM_TRACE (6ull << 60)

/* 64 random bits for (seed, stream, counter). */
uint64_t td_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter);

/* Uniform in [0, 1), 24 random bits. */
float td_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);

/* Standard normal (Box-Muller on the two halves of one td_rng_u64 draw). */
float td_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);

/* +1 or -1 with equal probability (Rademacher). */
float td_rng_sign(uint64_t seed, uint64_t stream, uint64_t counter);

/* The same draws split for loops over many counters of one stream: the key
 * depends on (seed, stream) only, so a kernel computes it once and inlines
 * one finaliser per element. td_rng_u64(seed, stream, c) ==
 * td_rng_u64_keyed(td_rng_key(seed, stream), c), and likewise for uniform. */
uint64_t td_rng_key(uint64_t seed, uint64_t stream);

/* The splitmix64 finaliser all draws are built from. */
static inline uint64_t td_rng_mix(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t td_rng_u64_keyed(uint64_t key, uint64_t counter)
{
    return td_rng_mix(key ^ (counter * 0x9e3779b97f4a7c15ull + 0xbb67ae8584caa73bull));
}

static inline float td_rng_uniform_keyed(uint64_t key, uint64_t counter)
{
    return (float)(td_rng_u64_keyed(key, counter) >> 40) * (1.0f / 16777216.0f);
}

#endif
