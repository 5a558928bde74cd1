// tests/cuda/sim_sample.cc — model/cuda/sample.cu's kernels (cuda_sample_rows) run on the
// CPU simulator (tests/cuda/sim/cuda_sim.h) as written, with CUB's block reduce/scan and
// segmented radix sort replaced by the fakes of tests/cuda/sim/cub_sim.h (CUB's contracts,
// not its algorithms), against rollout/sampler.c's sampler_sample (the specification,
// linked in). Rows of logits with exact ties, the maximum repeated and -inf entries;
// V 1, 7 and 1000 with 13 configurations (greedy, each of temperature 0.7 / 1, top-k 1 / 5,
// top-p 0.9 / 0.3, min-p 0.05 alone, pairs, all; argument "every": all 54 combinations of
// temperature 0/0.7/1, top-k off/1/5, top-p off/0.9/0.3, min-p off/0.05); sample.cu's sort chunk is forced down to
// 2048 logits by the test (so V 1000 rows are sorted two at a time, the last chunk
// shorter), and V 2100 rows take one chunk each. Each row draws with the uniform that
// sampler_sample draws from the row's stream. Tokens must be equal and both log-probs
// within 1e-5: the fakes add in id order and the CPU's AVX-512 sum in 16 lanes, so the
// sums differ by double rounding only, and a draw could move only for a uniform within
// about 1e-15 of a boundary (none of these rows; the test makes no allowance). Prints
// "all ok" and exits 0 on success. Built and run by tests/cuda/test_sample_sim_host.c.
#include "tests/cuda/sim/cub_sim.h"

#include SIM_CU

extern "C" {
#include "core/rng.h"
#include "rollout/sampler.h"
}

static int g_failed, g_checks, g_rows;

static std::vector<float> make_logits(CrRng *rng, int n, int V) {
    std::vector<float> x((size_t)n * V);
    for (int r = 0; r < n; r++) {
        float *l = &x[(size_t)r * V];
        for (int i = 0; i < V; i++) {
            double u = cr_rng_uniform(rng);
            l[i] = (float)(cr_rng_normal(rng) * 3.0);
            if (i > 0 && u < 0.15) l[i] = l[cr_rng_u64(rng) % (uint64_t)i];  // exact ties
            else if (u > 0.95) l[i] = -INFINITY;
        }
        l[cr_rng_u64(rng) % (uint64_t)V] = 2.0f;  // a finite logit in every row
        if (r % 2 == 0 && V > 1) {                // the maximum repeated at a later id
            int a = 0;
            for (int i = 1; i < V; i++) a = l[i] > l[a] ? i : a;
            if (a + 1 < V) l[a + 1 + (int)(cr_rng_u64(rng) % (uint64_t)(V - a - 1))] = l[a];
        }
    }
    return x;
}

// One call of cuda_sample_rows over the n rows of x with configuration c, against
// sampler_sample row by row; returns the number of differing rows (the first few printed).
static int check_cfg(uint64_t seed, int id, const std::vector<float> &x, int n, int V, SamplerCfg c,
                     SamplerScratch *scr) {
    OpsSampler oc = {c.temperature, c.top_k, c.top_p, c.min_p};
    std::vector<double> u(n);
    std::vector<int32_t> want(n), tok(n, -7);
    std::vector<float> want_ls(n), want_lm(n), ls(n, NAN), lm(n, NAN);
    for (int r = 0; r < n; r++) {
        CrRng s;
        cr_rng_init(&s, seed, 7000 + (uint64_t)id, (uint64_t)r);
        CrRng peek = s;
        u[r] = cr_rng_uniform(&peek);  // what sampler_sample draws first
        want[r] = sampler_sample(&c, &x[(size_t)r * V], V, scr, &s, &want_ls[r], &want_lm[r]);
    }
    cuda_sample_rows(tok.data(), ls.data(), lm.data(), x.data(), n, V, &oc, u.data());
    int bad = 0;
    for (int r = 0; r < n; r++) {
        bool ok = tok[r] == want[r] && fabsf(ls[r] - want_ls[r]) <= 1e-5f * fmaxf(1.0f, fabsf(want_ls[r])) &&
                  fabsf(lm[r] - want_lm[r]) <= 1e-5f * fmaxf(1.0f, fabsf(want_lm[r]));
        if (!ok && bad++ < 3)
            printf("  FAIL V=%d T=%g k=%d p=%g min_p=%g row %d: token %d (want %d), logp %.7g/%.7g (want %.7g/%.7g)\n",
                   V, c.temperature, c.top_k, c.top_p, c.min_p, r, tok[r], want[r], ls[r], lm[r], want_ls[r],
                   want_lm[r]);
    }
    g_rows += n;
    return bad;
}

// every: all 54 combinations of temperature (0, 0.7, 1), top-k (off, 1, 5), top-p (off,
// 0.9, 0.3) and min-p (off, 0.05); otherwise 13: greedy, each rule alone, pairs, all.
static void run_case(uint64_t seed, int V, int n, bool every) {
    CrRng rng;
    cr_rng_init(&rng, seed, (uint64_t)V, (uint64_t)n);
    std::vector<float> x = make_logits(&rng, n, V);
    SamplerScratch *scr = sampler_scratch_new(V);
    std::vector<SamplerCfg> cfgs;
    if (every) {
        for (float T : {0.0f, 0.7f, 1.0f})
            for (int k : {0, 1, 5})
                for (float p : {1.0f, 0.9f, 0.3f})
                    for (float mp : {0.0f, 0.05f}) cfgs.push_back({T, k, p, mp});
    } else {
        cfgs = {{0.0f, 5, 0.3f, 0.05f}, {1.0f, 0, 1.0f, 0.0f}, {0.7f, 0, 1.0f, 0.0f}, {0.7f, 1, 1.0f, 0.0f},
                {0.7f, 5, 1.0f, 0.0f},  {0.7f, 0, 0.9f, 0.0f}, {0.7f, 0, 0.3f, 0.0f}, {0.7f, 0, 1.0f, 0.05f},
                {1.0f, 5, 0.9f, 0.0f},  {0.7f, 5, 1.0f, 0.05f}, {1.0f, 0, 0.3f, 0.05f}, {0.7f, 5, 0.9f, 0.05f},
                {1.0f, 1, 0.3f, 0.05f}};
    }
    int bad_cfgs = 0;
    for (size_t i = 0; i < cfgs.size(); i++) bad_cfgs += check_cfg(seed, (int)i, x, n, V, cfgs[i], scr) > 0;
    printf("  V=%d n=%d: %zu configurations, %d with a differing row %s\n", V, n, cfgs.size(), bad_cfgs,
           bad_cfgs ? "FAIL" : "ok");
    g_checks++;
    if (bad_cfgs) g_failed++;
    sampler_scratch_free(scr);
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "small";
    bool every = !strcmp(which, "every");
    if (!strcmp(which, "small") || every) {
        run_case(11, 7, 4, every);
        run_case(10, 1, 2, every);  // one token: every rule keeps it
        run_case(12, 1000, 3, every);  // sorted in chunks of 2 rows (2048 logits), the last shorter
    } else if (!strcmp(which, "wide")) {
        run_case(13, 2100, 2, false);  // V above the chunk: one row per chunk
    }
    if (g_failed) {
        printf("%d of %d check(s) failed\n", g_failed, g_checks);
        return 1;
    }
    printf("%d checks (%d rows), %ld launches, %ld blocks simulated: all ok\n", g_checks, g_rows, sim.launches,
           sim.blocks);
    return 0;
}
