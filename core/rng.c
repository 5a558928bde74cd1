/* core/rng.c — see rng.h */
#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void cr_rng_init(CrRng *r, uint64_t seed, uint64_t a, uint64_t b) {
    /* Mix the three key words through separate splitmix rounds so that (s,a,b) and
     * (s,b,a) give unrelated streams. */
    uint64_t x = seed;
    uint64_t k = splitmix64(&x);
    x = k ^ (a * 0xD1B54A32D192ED03ull);
    k = splitmix64(&x);
    x = k ^ (b * 0x8CB92BA72F3D8DD7ull);
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t cr_rng_u64(CrRng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double cr_rng_uniform(CrRng *r) { return (double)(cr_rng_u64(r) >> 11) * 0x1.0p-53; }

double cr_rng_normal(CrRng *r) {
    double u1 = cr_rng_uniform(r), u2 = cr_rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}
