/* tests/cuda/test_sample_host.c — the selection and draw rules of model/cuda/sample.cu,
 * replayed on the host one step at a time, against rollout/sampler.c (the specification).
 * Runs without a GPU: it checks the device sampler's design, not its kernels (those run
 * in tests/cuda/test_sample_cuda.c on a GPU). The rules replayed, as sample.cu states them:
 *  - weights e_i = sample_expf((x_i - max) / T), sum = sum_i e_i (the stats kernel);
 *  - top-k / top-p: sort keys (bits(e_i) << 32 | ~i) descending; c = top_k (or V); with
 *    top-p, c = 1 + the first sorted position q whose running mass (sorted order,
 *    p = e / sum) reaches top_p * mass(first c); kept = key >= key[c - 1] (the cut kernel);
 *  - min-p: dropped when e / sum < min_p * (weight of the argmax) / sum;
 *  - draw: kept weights (p when any rule is on, else e) summed in id order, the first id
 *    whose running sum exceeds u * total, else the last kept id (the draw kernel).
 * The host sums here run sequentially where the GPU uses block scans; both orders differ
 * from the CPU's only by rounding, so a different token is allowed only where the CPU's
 * own numbers put the draw within 1e-9 of a boundary (counted and printed). Every other
 * difference in kept set, token or log-prob fails. Logits as in test_sample_cuda.c
 * (exact ties, the maximum repeated, -inf); V up to 5000, 1152 rows, fixed seed. */
#include "tests/test.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/sample_exp.h"
#include "rollout/sampler.h"

static uint64_t key_of(float e, int i) {
    uint32_t b;
    memcpy(&b, &e, sizeof b);
    return ((uint64_t)b << 32) | (uint64_t)(0xFFFFFFFFu - (uint32_t)i);
}
static float key_weight(uint64_t k) {
    uint32_t b = (uint32_t)(k >> 32);
    float e;
    memcpy(&e, &b, sizeof e);
    return e;
}
static int cmp_desc_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x < y) - (x > y);
}

/* The device rules for one row: kept ids ascending into keep (returns how many), the
 * token for uniform u, its log-prob under the final distribution and the model's. */
static int device_rules(const SamplerCfg *c, const float *x, int V, double u, uint64_t *keys, int32_t *keep,
                        int32_t *tok, double *lp, double *lpm) {
    int amax = 0;  /* ArgMaxOp: larger value, then lower id */
    for (int i = 1; i < V; i++)
        if (x[i] > x[amax]) amax = i;
    float m = x[amax], inv_t = 1.0f / c->temperature;
    double sum = 0, sum1 = 0;
    for (int i = 0; i < V; i++) {
        sum += (double)sample_expf((x[i] - m) * inv_t);
        sum1 += (double)sample_expf(x[i] - m);
    }
    int use_k = c->top_k > 0 && c->top_k < V, use_p = c->top_p > 0.0f && c->top_p < 1.0f;
    uint64_t cut = 0;
    if (use_k || use_p) {
        for (int i = 0; i < V; i++) keys[i] = key_of(sample_expf((x[i] - m) * inv_t), i);
        qsort(keys, (size_t)V, sizeof *keys, cmp_desc_u64);
        int n_k = use_k ? c->top_k : V, cc = n_k;
        if (use_p) {
            double mass = 0, cum = 0;
            for (int j = 0; j < n_k; j++) mass += (double)key_weight(keys[j]) / sum;
            for (int q = 0; q < n_k; q++) {
                cum += (double)key_weight(keys[q]) / sum;
                if (cum >= (double)c->top_p * mass) {
                    cc = q + 1;
                    break;
                }
            }
        }
        cut = keys[cc - 1];
    }
    double thr = c->min_p > 0.0f ? (double)c->min_p * ((double)sample_expf((x[amax] - m) * inv_t) / sum) : 0.0;
    int normalise = use_k || use_p || c->min_p > 0.0f, n = 0;
    double total = 0;
    for (int i = 0; i < V; i++) {
        float e = sample_expf((x[i] - m) * inv_t);
        if (key_of(e, i) < cut || (double)e / sum < thr) continue;
        keep[n++] = i;
        total += normalise ? (double)e / sum : (double)e;
    }
    double cum = 0, target = u * total;
    *tok = keep[n - 1];
    for (int j = 0; j < n; j++) {
        float e = sample_expf((x[keep[j]] - m) * inv_t);
        cum += normalise ? (double)e / sum : (double)e;
        if (cum > target) {
            *tok = keep[j];
            break;
        }
    }
    float et = sample_expf((x[*tok] - m) * inv_t);
    *lp = log((normalise ? (double)et / sum : (double)et) / total);
    *lpm = (double)x[*tok] - m - log(sum1);
    return n;
}

/* 1 when the CPU's own kept probabilities (normalised) put the draw u within rel of a
 * running sum, where another order of addition can move the token. */
static int near_boundary(const double *prob, int n, double u, double rel) {
    double cum = 0;
    for (int j = 0; j < n; j++) {
        cum += prob[j];
        if (fabs(cum - u) <= rel * (1 + fabs(u))) return 1;
    }
    return 0;
}

TEST(cuda_sample_rules_on_host) {
    if (!__builtin_cpu_supports("avx512f"))
        SKIP("no AVX-512 on this CPU: rollout/sampler.c uses libm expf here, not the Cephes exp of the device");
    const int Vs[] = {7, 100, 1000, 5000};
    const float temps[] = {0.7f, 1.0f, 1.3f}, tops_p[] = {1.0f, 0.9f, 0.3f}, mins_p[] = {0.0f, 0.1f};
    const int tops_k[] = {0, 1, 5, 50};
    CrRng rng;
    cr_rng_init(&rng, 11, 0x5A, 0);
    int rows = 0, boundary = 0;
    for (size_t vi = 0; vi < sizeof Vs / sizeof Vs[0]; vi++) {
        int V = Vs[vi];
        SamplerScratch *s = sampler_scratch_new(V);
        float *x = malloc(sizeof(float) * (size_t)V);
        uint64_t *keys = malloc(sizeof(uint64_t) * (size_t)V);
        int32_t *keep_cpu = malloc(sizeof(int32_t) * (size_t)V), *keep_dev = malloc(sizeof(int32_t) * (size_t)V);
        double *prob = malloc(sizeof(double) * (size_t)V);
        for (int rep = 0; rep < 4; rep++) {
            /* normal * 3, ~10% exact copies of earlier logits, ~3% -inf, the max repeated */
            for (int i = 0; i < V; i++) {
                double w = cr_rng_uniform(&rng);
                x[i] = (float)(cr_rng_normal(&rng) * 3.0);
                if (i > 0 && w < 0.10) x[i] = x[cr_rng_u64(&rng) % (uint64_t)i];
                else if (w > 0.97) x[i] = -INFINITY;
            }
            int a = 0;
            x[cr_rng_u64(&rng) % (uint64_t)V] = 9.0f;
            for (int i = 1; i < V; i++) a = x[i] > x[a] ? i : a;
            if (rep % 2 == 0 && a + 1 < V) x[a + 1 + (int)(cr_rng_u64(&rng) % (uint64_t)(V - a - 1))] = x[a];
            for (size_t ti = 0; ti < 3; ti++)
                for (size_t ki = 0; ki < 4; ki++)
                    for (size_t pi = 0; pi < 3; pi++)
                        for (size_t mi = 0; mi < 2; mi++) {
                            SamplerCfg c = {temps[ti], tops_k[ki], tops_p[pi], mins_p[mi]};
                            CrRng r1 = rng;
                            double u = cr_rng_uniform(&r1);
                            CrRng r2 = rng;
                            float lp_cpu, lpm_cpu;
                            int32_t tok_cpu = sampler_sample(&c, x, V, s, &r2, &lp_cpu, &lpm_cpu);
                            int n_cpu = sampler_keep_set(&c, x, V, s, keep_cpu, prob);
                            int32_t tok;
                            double lp, lpm;
                            int n_dev = device_rules(&c, x, V, u, keys, keep_dev, &tok, &lp, &lpm);
                            int same_set = n_cpu == n_dev &&
                                           !memcmp(keep_cpu, keep_dev, sizeof(int32_t) * (size_t)n_cpu);
                            int ok = same_set && tok == tok_cpu && fabs(lp - lp_cpu) <= 1e-5 * fmax(1, fabs(lp_cpu)) &&
                                     fabs(lpm - lpm_cpu) <= 1e-5 * fmax(1, fabs(lpm_cpu));
                            if (!ok && same_set && near_boundary(prob, n_cpu, u, 1e-9)) {
                                boundary++;
                                fprintf(stderr, "    V %d T %g k %d p %g min_p %g: draw at a boundary (u %.17g)\n", V,
                                        c.temperature, c.top_k, c.top_p, c.min_p, u);
                            } else {
                                CHECKF(ok,
                                       "V %d T %g k %d p %g min_p %g: kept %d vs %d (same set %d), token %d vs %d, "
                                       "logp %.9g vs %.9g, model %.9g vs %.9g",
                                       V, c.temperature, c.top_k, c.top_p, c.min_p, n_dev, n_cpu, same_set, tok,
                                       tok_cpu, lp, lp_cpu, lpm, lpm_cpu);
                            }
                            rows++;
                            rng = r1;
                        }
        }
        free(x);
        free(keys);
        free(keep_cpu);
        free(keep_dev);
        free(prob);
        sampler_scratch_free(s);
    }
    fprintf(stderr, "    %d rows, %d draws at a rounding boundary\n", rows, boundary);
}
