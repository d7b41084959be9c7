#include "graph/rng.h"

#include <math.h>

/* Three rounds of the splitmix64 finaliser over a key mixed from the three
 * inputs: cheap, stateless and statistically sound for initialisation,
 * shuffling, Rademacher probes and dropout masks (not for cryptography). */
uint64_t td_rng_key(uint64_t seed, uint64_t stream)
{
    uint64_t k = td_rng_mix(seed + 0x9e3779b97f4a7c15ull);
    return td_rng_mix(k ^ (stream + 0x6a09e667f3bcc909ull));
}

uint64_t td_rng_u64(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return td_rng_u64_keyed(td_rng_key(seed, stream), counter);
}

float td_rng_uniform(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return td_rng_uniform_keyed(td_rng_key(seed, stream), counter);
}

float td_rng_normal(uint64_t seed, uint64_t stream, uint64_t counter)
{
    uint64_t r = td_rng_u64(seed, stream, counter);
    double u1 = ((double)(r >> 32) + 1.0) / 4294967297.0; /* (0, 1]: log is finite */
    double u2 = (double)(r & 0xffffffffu) / 4294967296.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

float td_rng_sign(uint64_t seed, uint64_t stream, uint64_t counter)
{
    return (td_rng_u64(seed, stream, counter) >> 63) ? 1.0f : -1.0f;
}
