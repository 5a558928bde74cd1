/* tests/cuda/test_sample_cuda.c — Ops.sample_rows of the CUDA backend against
 * rollout/sampler.c's sampler_sample (the specification), row by row, on the same logits
 * and the same uniforms: for V in {7, 1000, 102400}, rows of random logits with exact
 * ties (the maximum included) and -inf entries, every combination of temperature
 * {0, 0.7, 1}, top_k {0, 1, 5}, top_p {1, 0.9, 0.3}, min_p {0, 0.1}. Tokens must be equal;
 * logp_sampled and logp_model within 1e-5 (|a-b| <= 1e-5 max(1, |b|)); greedy rows must
 * have logp_sampled exactly 0. Outputs are poisoned before every call. The one tolerated
 * difference: a draw whose uniform lies within 1e-9 of the boundary between the two
 * tokens in the CPU's own cumulative distribution (sums added in another order; this
 * happens only when the CPU lacks AVX-512 and uses libm's exp), printed when it occurs.
 * 85 rows of V = 102400 span two chunks of the device sort (2^23 logits each).
 * Fresh random inputs each run (seed printed; CRUCIBLE_TEST_SEED=n repeats one).
 * Without a GPU the test SKIPs saying it was not run on a GPU. */
#include "tests/test.h"

#ifdef CRUCIBLE_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/rng.h"
#include "model/cuda/ops_cuda.h"
#include "model/ops.h"
#include "rollout/sampler.h"

/* n rows of V logits: normal * 3, then about 10% copies of earlier entries (exact ties),
 * about 3% -inf, and in every other row the maximum repeated at a later id. */
static float *make_logits(CrRng *rng, int n, int V) {
    float *x = malloc(sizeof(float) * (size_t)n * V);
    for (int r = 0; r < n; r++) {
        float *l = x + (size_t)r * V;
        for (int i = 0; i < V; i++) {
            double u = cr_rng_uniform(rng);
            l[i] = (float)(cr_rng_normal(rng) * 3.0);
            if (i > 0 && u < 0.10) l[i] = l[cr_rng_u64(rng) % (uint64_t)i];
            else if (u > 0.97) l[i] = -INFINITY;
        }
        l[cr_rng_u64(rng) % (uint64_t)V] = 2.0f;  /* a finite logit in every row */
        if (r % 2 == 0 && V > 1) {
            int a = 0;
            for (int i = 1; i < V; i++) a = l[i] > l[a] ? i : a;
            int b = a + 1 + (int)(cr_rng_u64(rng) % (uint64_t)(V - a > 1 ? V - a - 1 : 1));
            if (b < V) l[b] = l[a];
        }
    }
    return x;
}

/* 1 when cpu_tok and gpu_tok are adjacent kept tokens of the CPU's final distribution
 * and u lies within 1e-9 of the cumulative probability between them. */
static int near_boundary(const SamplerCfg *c, const float *l, int V, SamplerScratch *s, double u, int32_t cpu_tok,
                         int32_t gpu_tok) {
    int32_t *keep = malloc(sizeof(int32_t) * (size_t)V);
    double *prob = malloc(sizeof(double) * (size_t)V), cum = 0;
    int n = sampler_keep_set(c, l, V, s, keep, prob), ok = 0;
    for (int j = 0; j + 1 < n; j++) {
        cum += prob[j];
        int pair = (keep[j] == cpu_tok && keep[j + 1] == gpu_tok) || (keep[j] == gpu_tok && keep[j + 1] == cpu_tok);
        if (pair && fabs(u - cum) < 1e-9) ok = 1;
    }
    free(keep);
    free(prob);
    return ok;
}

static void sample_case(TestCtx *t_, const Ops *g, CrRng *rng, uint64_t seed, int V, int n) {
    float *x = make_logits(rng, n, V);
    size_t bytes = sizeof(float) * (size_t)n * V;
    float *dx = g->alloc(bytes);
    g->upload(dx, x, bytes);
    int32_t *dtok = g->alloc(sizeof(int32_t) * (size_t)n);
    float *dls = g->alloc(sizeof(float) * (size_t)n), *dlm = g->alloc(sizeof(float) * (size_t)n);
    double *du = g->alloc(sizeof(double) * (size_t)n);
    double *u = malloc(sizeof(double) * (size_t)n);
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)n), *poison_i = malloc(sizeof(int32_t) * (size_t)n);
    float *ls = malloc(sizeof(float) * (size_t)n), *lm = malloc(sizeof(float) * (size_t)n);
    float *poison_f = malloc(sizeof(float) * (size_t)n);
    for (int r = 0; r < n; r++) poison_i[r] = -12345, poison_f[r] = NAN;
    SamplerScratch *s = sampler_scratch_new(V);
    CrRng *streams = malloc(sizeof(CrRng) * (size_t)n);

    const float temps[3] = {0.0f, 0.7f, 1.0f}, top_ps[3] = {1.0f, 0.9f, 0.3f}, min_ps[2] = {0.0f, 0.1f};
    const int top_ks[3] = {0, 1, 5};
    int n_cfg = 0, n_rows = 0, n_bad_tok = 0, n_boundary = 0;
    for (int ti = 0; ti < 3; ti++)
        for (int ki = 0; ki < 3; ki++)
            for (int pi = 0; pi < 3; pi++)
                for (int mi = 0; mi < 2; mi++) {
                    SamplerCfg c = {temps[ti], top_ks[ki], top_ps[pi], min_ps[mi]};
                    OpsSampler oc = {c.temperature, c.top_k, c.top_p, c.min_p};
                    /* row r's stream; its first uniform is what sampler_sample will draw */
                    for (int r = 0; r < n; r++) {
                        cr_rng_init(&streams[r], seed, (uint64_t)V * 1000 + (uint64_t)n_cfg, (uint64_t)r);
                        CrRng peek = streams[r];
                        u[r] = cr_rng_uniform(&peek);
                    }
                    g->upload(du, u, sizeof(double) * (size_t)n);
                    g->upload(dtok, poison_i, sizeof(int32_t) * (size_t)n);
                    g->upload(dls, poison_f, sizeof(float) * (size_t)n);
                    g->upload(dlm, poison_f, sizeof(float) * (size_t)n);
                    g->sample_rows(dtok, dls, dlm, dx, n, V, &oc, du);
                    g->download(tok, dtok, sizeof(int32_t) * (size_t)n);
                    g->download(ls, dls, sizeof(float) * (size_t)n);
                    g->download(lm, dlm, sizeof(float) * (size_t)n);
                    for (int r = 0; r < n; r++) {
                        const float *l = x + (size_t)r * V;
                        float ls_ref = NAN, lm_ref = NAN;
                        int32_t ref = sampler_sample(&c, l, V, s, &streams[r], &ls_ref, &lm_ref);
                        n_rows++;
                        if (tok[r] != ref) {
                            if (tok[r] >= 0 && tok[r] < V && c.temperature > 0.0f &&
                                near_boundary(&c, l, V, s, u[r], ref, tok[r])) {
                                n_boundary++;
                                fprintf(stderr, "    V=%d T=%g k=%d p=%g minp=%g row %d: token %d vs CPU %d, u=%.17g "
                                        "on their boundary (tolerated)\n", V, c.temperature, c.top_k, c.top_p,
                                        c.min_p, r, tok[r], ref, u[r]);
                                continue;
                            }
                            if (n_bad_tok++ < 10)
                                CHECKF(0, "V=%d T=%g k=%d p=%g minp=%g row %d: token %d, CPU %d (u=%.17g)", V,
                                       c.temperature, c.top_k, c.top_p, c.min_p, r, tok[r], ref, u[r]);
                            continue;
                        }
                        if (c.temperature <= 0.0f)
                            CHECKF(ls[r] == 0.0f, "V=%d greedy row %d: logp_sampled %g, not 0", V, r, ls[r]);
                        CHECK_NEAR(ls[r], ls_ref, 1e-5);
                        CHECK_NEAR(lm[r], lm_ref, 1e-5);
                    }
                    n_cfg++;
                }
    CHECKF(n_bad_tok == 0, "V=%d: %d of %d tokens differ from sampler_sample", V, n_bad_tok, n_rows);
    fprintf(stderr, "    V=%d: %d configurations x %d rows, %d tokens differ, %d on a boundary\n", V, n_cfg, n,
            n_bad_tok, n_boundary);
    sampler_scratch_free(s);
    g->free(dx), g->free(dtok), g->free(dls), g->free(dlm), g->free(du);
    free(x), free(u), free(streams), free(tok), free(poison_i), free(ls), free(lm), free(poison_f);
}

static void body_cuda_sample_rows(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: sample_rows was NOT run on a GPU");
    uint64_t seed = test_random_seed("cuda_sample_rows_matches_cpu");
    CrRng rng;
    cr_rng_init(&rng, seed, 0x5A3, 0);
    const Ops *tables[3] = {ops_cuda(), ops_cuda_bf16(), ops_cuda_flash()};
    for (int i = 0; i < 3; i++) CHECKF(tables[i] && tables[i]->sample_rows, "CUDA table %d has no sample_rows", i);
    if (FAILED()) return;
    const Ops *g = tables[0];
    sample_case(t_, g, &rng, seed, 7, 64);
    sample_case(t_, g, &rng, seed, 1000, 64);
    sample_case(t_, g, &rng, seed, 102400, 85);
    /* the other tables share the op: one small case each */
    sample_case(t_, tables[1], &rng, seed, 1000, 8);
}

#endif /* CRUCIBLE_CUDA */

#ifdef CRUCIBLE_CUDA
TEST(cuda_sample_rows_matches_cpu) { body_cuda_sample_rows(t_); }
#else
TEST(cuda_sample_rows_matches_cpu) {
    SKIP("CUDA backend not built (no nvcc at build time, or NO_CUDA=1): sample_rows not run on a GPU");
}
#endif
