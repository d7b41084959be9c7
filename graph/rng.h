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
#define TD_RNG_STREAM_TEXT (4ull << 60)    /* + step: the text sampler's window starts */

/* 64 random bits for (seed, stream, counter). */
uint64_t td_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter);

/* Uniform in [0, 1), 24 random bits. */
float td_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter);

/* Standard normal (Box-Muller on the two halves of one td_rng_u64 draw). */
float td_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter);

/* +1 or -1 with equal probability (Rademacher). */
float td_rng_sign(uint64_t seed, uint64_t stream, uint64_t counter);

#endif
