/* core/rng.h — deterministic random streams.
 * Defines: CrRng, cr_rng_init, cr_rng_u64, cr_rng_uniform, cr_rng_normal, cr_rng_state.
 *
 * A stream is keyed by (seed, a, b) — e.g. (seed, prompt index, sample index) — so that
 * what a consumer draws never depends on batch composition or thread count.
 * Generator: xoshiro256** seeded through splitmix64 of the key. */
#ifndef CRUCIBLE_CORE_RNG_H
#define CRUCIBLE_CORE_RNG_H

#include <stdint.h>

typedef struct CrRng {
    uint64_t s[4];
} CrRng;

void cr_rng_init(CrRng *r, uint64_t seed, uint64_t a, uint64_t b);
uint64_t cr_rng_u64(CrRng *r);
/* uniform in [0, 1), 53-bit resolution */
double cr_rng_uniform(CrRng *r);
/* standard normal (Box-Muller) */
double cr_rng_normal(CrRng *r);

#endif
