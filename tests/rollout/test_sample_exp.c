/* tests/rollout/test_sample_exp.c — model/sample_exp.h, the sampler's exp shared by host
 * and device code: accurate against libm's double exp, and bit-identical to the exp that
 * rollout/sampler.c (the specification of sampling) uses on AVX-512, checked through the
 * probabilities sampler_keep_set returns. */
#include "tests/test.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/rng.h"
#include "model/sample_exp.h"
#include "rollout/sampler.h"

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

TEST(rollout_sample_expf_accuracy) {
    /* Every float argument the sampler can use, sampled densely: within 2 ulp of exp. */
    int bad = 0;
    double worst = 0;
    for (float x = 0.0f; x > -87.0f; x = nextafterf(x, -INFINITY) - 1e-4f * (1 + fabsf(x))) {
        double want = exp((double)x), got = sample_expf(x);
        double ulp = (double)nextafterf((float)want, INFINITY) - (float)want;
        double err = fabs(got - want) / ulp;
        worst = err > worst ? err : worst;
        if (err > 2.0 && bad++ < 5) CHECKF(0, "sample_expf(%.9g) = %.9g, exp = %.9g (%.2f ulp)", x, got, want, err);
    }
    fprintf(stderr, "    worst error %.2f ulp\n", worst);
    CHECK(bad == 0);
    CHECK(sample_expf(0.0f) == 1.0f); /* the argmax weighs exactly 1 */
    /* the clamp: -inf, NaN and anything below -87.33654 weigh exp(-87.33654) > 0 */
    float floor_w = sample_expf(SAMPLE_EXP_MIN_ARG);
    CHECK(floor_w > 0.0f && floor_w < 1.2e-38f);
    CHECK(bits(sample_expf(-INFINITY)) == bits(floor_w));
    CHECK(bits(sample_expf(NAN)) == bits(floor_w));
    CHECK(bits(sample_expf(-1000.0f)) == bits(floor_w));
}

/* With fewer than 16 logits rollout/sampler.c's AVX-512 exp runs one masked vector and
 * adds the lanes in id order, so its probabilities can be recomputed exactly here. */
TEST(rollout_sample_expf_matches_sampler) {
    if (!__builtin_cpu_supports("avx512f"))
        SKIP("no AVX-512 on this CPU: rollout/sampler.c uses libm expf here, not the Cephes lanes");
    CrRng rng;
    cr_rng_init(&rng, 7, 0x5E, 0);
    SamplerScratch *s = sampler_scratch_new(15);
    int rows = 0, mismatches = 0;
    const float temps[3] = {1.0f, 0.7f, 1.3f};
    for (int it = 0; it < 2000; it++) {
        int V = 1 + (int)(cr_rng_u64(&rng) % 15);
        float x[15];
        for (int i = 0; i < V; i++) {
            double u = cr_rng_uniform(&rng);
            x[i] = u < 0.1 ? -INFINITY : (float)(cr_rng_normal(&rng) * 8.0);
            if (u > 0.8 && i > 0) x[i] = x[cr_rng_u64(&rng) % (uint64_t)i]; /* exact ties */
        }
        x[cr_rng_u64(&rng) % (uint64_t)V] = 3.0f; /* at least one finite logit */
        SamplerCfg c = {temps[it % 3], 0, 1.0f, 0.0f};
        int32_t keep[15];
        double prob[15];
        int n = sampler_keep_set(&c, x, V, s, keep, prob);
        CHECK(n == V);
        /* the same steps as sampler_keep_set's, with sample_expf for the lanes */
        float m = x[0], inv_t = 1.0f / c.temperature;
        for (int i = 1; i < V; i++) m = x[i] > m ? x[i] : m;
        double p[15], sum = 0, total = 0;
        for (int i = 0; i < V; i++) {
            p[i] = sample_expf((x[i] - m) * inv_t);
            sum += p[i];
        }
        for (int i = 0; i < V; i++) p[i] /= sum;
        for (int i = 0; i < V; i++) total += p[i];
        for (int i = 0; i < V && i < n; i++)
            if (keep[i] != i || prob[i] != p[i] / total) mismatches++;
        rows++;
    }
    sampler_scratch_free(s);
    fprintf(stderr, "    %d rows, %d probabilities differ\n", rows, mismatches);
    CHECK(mismatches == 0);
}
