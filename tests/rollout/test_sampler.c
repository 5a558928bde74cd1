/* tests/rollout/test_sampler.c — sampling distributions, truncation sets, stop strings and
 * the paged latent cache, checked against hand-derived values. */
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "rollout/kv_cache.h"
#include "rollout/sampler.h"
#include "rollout/stop.h"

/* Logits whose softmax is exactly the given dyadic probabilities. */
static void logits_from_probs(const double *p, int n, float *logits) {
    for (int i = 0; i < n; i++) logits[i] = (float)log(p[i]);
}

static int keep_set(SamplerCfg c, const float *logits, int n, int32_t *keep, double *prob) {
    SamplerScratch *s = sampler_scratch_new(n);
    int k = sampler_keep_set(&c, logits, n, s, keep, prob);
    sampler_scratch_free(s);
    return k;
}

static int same_set(const int32_t *got, int n_got, const int32_t *want, int n_want) {
    if (n_got != n_want) return 0;
    for (int i = 0; i < n_got; i++)
        if (got[i] != want[i]) return 0;
    return 1;
}

TEST(rollout_sampler_top_p_min_p_sets) {
    /* ids 0..4 hold probabilities 1/16, 1/2, 1/16, 1/8, 1/4 (shuffled so order != id). */
    double p[5] = {0.0625, 0.5, 0.0625, 0.125, 0.25};
    float lg[5];
    logits_from_probs(p, 5, lg);
    int32_t keep[5];
    double prob[5];
    SamplerCfg c = {1.0f, 0, 1.0f, 0.0f};
    /* HF rule: drop a token when the mass of it and all less probable ones <= 1 - top_p.
     * Ascending masses: 1/16, 1/8, 1/4, 1/2, 1. top_p 0.7 -> drop those <= 0.3. */
    c.top_p = 0.7f;
    int n = keep_set(c, lg, 5, keep, prob);
    CHECK(same_set(keep, n, (int32_t[]){1, 4}, 2));
    CHECK_NEAR(prob[0], 2.0 / 3.0, 1e-7);
    CHECK_NEAR(prob[1], 1.0 / 3.0, 1e-7);
    c.top_p = 0.8f;  /* drop <= 0.2: the two 1/16 tokens */
    n = keep_set(c, lg, 5, keep, prob);
    CHECK(same_set(keep, n, (int32_t[]){1, 3, 4}, 3));
    c.top_p = 0.95f; /* drop <= 0.05: nothing */
    n = keep_set(c, lg, 5, keep, prob);
    CHECK(n == 5);
    c.top_p = 0.3f;  /* only the top token */
    n = keep_set(c, lg, 5, keep, prob);
    CHECK(same_set(keep, n, (int32_t[]){1}, 1));
    CHECK_NEAR(prob[0], 1.0, 1e-7);

    /* min-p: keep p >= m * 0.5 */
    c = (SamplerCfg){1.0f, 0, 1.0f, 0.2f};   /* threshold 0.1 */
    n = keep_set(c, lg, 5, keep, prob);
    CHECK(same_set(keep, n, (int32_t[]){1, 3, 4}, 3));
    c.min_p = 0.3f;                          /* threshold 0.15 */
    n = keep_set(c, lg, 5, keep, prob);
    CHECK(same_set(keep, n, (int32_t[]){1, 4}, 2));

    /* top-k 2, then top-p on the renormalised pair (2/3, 1/3). */
    c = (SamplerCfg){1.0f, 2, 0.7f, 0.0f};
    n = keep_set(c, lg, 5, keep, prob);
    CHECK(same_set(keep, n, (int32_t[]){1, 4}, 2));
    c.top_p = 0.6f;
    n = keep_set(c, lg, 5, keep, prob);
    CHECK(same_set(keep, n, (int32_t[]){1}, 1));
    c = (SamplerCfg){1.0f, 3, 1.0f, 0.0f};
    n = keep_set(c, lg, 5, keep, prob);
    CHECK(same_set(keep, n, (int32_t[]){1, 3, 4}, 3));
    CHECK_NEAR(prob[1], 0.125 / 0.875, 1e-7);

    /* temperature 2: p ∝ sqrt(p) */
    c = (SamplerCfg){2.0f, 0, 1.0f, 0.0f};
    n = keep_set(c, lg, 5, keep, prob);
    double z = 0;
    for (int i = 0; i < 5; i++) z += sqrt(p[i]);
    CHECK(n == 5);
    for (int i = 0; i < 5; i++) CHECK_NEAR(prob[i], sqrt(p[i]) / z, 1e-7);
}

TEST(rollout_sampler_top_k1_is_greedy_and_logprobs) {
    int V = 1000;
    float *lg = malloc(V * sizeof *lg);
    CrRng data;
    cr_rng_init(&data, 7, 0, 0);
    SamplerScratch *s = sampler_scratch_new(V);
    for (int row = 0; row < 50; row++) {
        for (int i = 0; i < V; i++) lg[i] = (float)(3.0 * cr_rng_normal(&data));
        CrRng r;
        cr_rng_init(&r, 1, row, 0);
        SamplerCfg greedy = {0, 0, 1, 0}, k1 = {0.8f, 1, 1, 0};
        float lps, lpm, lps1, lpm1;
        int32_t a = sampler_sample(&greedy, lg, V, s, NULL, &lps, &lpm);
        int32_t b = sampler_sample(&k1, lg, V, s, &r, &lps1, &lpm1);
        CHECK(a == b);
        CHECK(lps == 0.0f && fabsf(lps1) < 1e-7f);
        /* untempered log-prob by an independent double computation */
        double m = -1e30, sum = 0;
        for (int i = 0; i < V; i++) m = lg[i] > m ? lg[i] : m;
        for (int i = 0; i < V; i++) sum += exp(lg[i] - m);
        CHECK_NEAR(lpm, lg[a] - m - log(sum), 1e-6);
        CHECK(lpm1 == lpm);
    }
    sampler_scratch_free(s);
    free(lg);
}

TEST(rollout_sampler_frequencies_match_distribution) {
    /* T = 0.5 over p = (0.1, 0.2, 0.3, 0.4), min-p 0.1 (nothing dropped at T=0.5? p^2 ∝
     * 0.01,0.04,0.09,0.16 -> 0.0333,0.1333,0.3,0.5333; min-p 0.1 drops p < 0.0533: id 0). */
    double p[4] = {0.1, 0.2, 0.3, 0.4};
    float lg[4];
    logits_from_probs(p, 4, lg);
    SamplerCfg c = {0.5f, 0, 1.0f, 0.1f};
    SamplerScratch *s = sampler_scratch_new(4);
    int count[4] = {0};
    int N = 40000;
    CrRng r;
    cr_rng_init(&r, 3, 0, 0);
    double want[4] = {0, 0.04 / 0.29, 0.09 / 0.29, 0.16 / 0.29};
    for (int i = 0; i < N; i++) {
        float lps, lpm;
        int32_t tok = sampler_sample(&c, lg, 4, s, &r, &lps, &lpm);
        count[tok]++;
        if (i < 100) {
            CHECK_NEAR(lps, log(want[tok]), 1e-6);
            CHECK_NEAR(lpm, log(p[tok]), 1e-6);
        }
    }
    CHECK(count[0] == 0);
    for (int k = 1; k < 4; k++) {
        double f = (double)count[k] / N, sd = sqrt(want[k] * (1 - want[k]) / N);
        CHECKF(fabs(f - want[k]) < 4 * sd, "token %d: freq %.4f want %.4f", k, f, want[k]);
    }
    /* no truncation (the single-pass path): frequencies follow p itself at T = 1 */
    SamplerCfg plain = {1.0f, 0, 1.0f, 0.0f};
    memset(count, 0, sizeof count);
    for (int i = 0; i < N; i++) {
        float lps, lpm;
        int32_t tok = sampler_sample(&plain, lg, 4, s, &r, &lps, &lpm);
        count[tok]++;
        if (i < 100) CHECK(fabsf(lps - lpm) < 1e-6f && fabs(lpm - log(p[tok])) < 1e-6);
    }
    for (int k = 0; k < 4; k++) {
        double f = (double)count[k] / N, sd = sqrt(p[k] * (1 - p[k]) / N);
        CHECKF(fabs(f - p[k]) < 4 * sd, "plain: token %d: freq %.4f want %.4f", k, f, p[k]);
    }
    sampler_scratch_free(s);
}

TEST(rollout_stop_strings_across_tokens) {
    const char *stops[] = {"END", "\n\n", ""};
    StopText st;
    stop_text_init(&st, stops, 3);
    CHECK(stop_text_append(&st, "int x;", 6) == 0);
    CHECK(stop_text_append(&st, "\n", 1) == 0);
    CHECK(stop_text_append(&st, "\nfoo", 4) == 1);   /* "\n\n" split over two tokens */
    CHECK(st.len == 6 && strcmp(st.buf, "int x;") == 0);
    stop_text_free(&st);

    stop_text_init(&st, stops, 3);
    CHECK(stop_text_append(&st, "abE", 3) == 0);
    CHECK(stop_text_append(&st, "N", 1) == 0);
    CHECK(stop_text_append(&st, "D\n\nzz", 5) == 1); /* two stops; the earlier one wins */
    CHECK(strcmp(st.buf, "ab") == 0);
    stop_text_free(&st);

    stop_text_init(&st, stops, 3);                     /* stop inside one token */
    CHECK(stop_text_append(&st, "xENDy", 5) == 1 && strcmp(st.buf, "x") == 0);
    stop_text_free(&st);

    stop_text_init(&st, stops, 3);                     /* near-misses never match */
    CHECK(stop_text_append(&st, "EN", 2) == 0);
    CHECK(stop_text_append(&st, "d E\nN", 5) == 0);
    CHECK(st.len == 7);
    stop_text_free(&st);
}

TEST(rollout_latent_cache_fork_copy_on_write) {
    CrError e;
    LatentCache *c = latent_cache_create(2, 3, 8, 40, &e);   /* 5 blocks */
    CHECK(c && c->n_blocks == 5);
    CHECK(latent_cache_create(2, 3, 8, 4, &e) == NULL && strstr(e.msg, "budget"));
    CacheSeq a = {0}, b = {0};
    int ra = 3;
    CHECK(cache_reserve(c, 3) == 0);
    for (int pos = 0; pos < 20; pos++) {          /* prompt of 20 tokens: 3 blocks */
        cache_seq_prepare_write(c, &a, pos, &ra);
        for (int l = 0; l < 2; l++)
            for (int k = 0; k < 3; k++) cache_row(c, &a, l, pos)[k] = (float)(100 * l + pos + k);
        a.len = pos + 1;
    }
    CHECK(ra == 0 && a.n_blocks == 3 && c->n_free == 2);
    CHECK(cache_reserve(c, 3) == -1);            /* only 2 left */
    CHECK(cache_reserve(c, 2) == 0);
    int rb = 2;
    cache_seq_fork(c, &b, &a);
    CHECK(b.len == 20 && c->refcount[a.blocks[0]] == 2);
    cache_seq_prepare_write(c, &b, 20, &rb);     /* copies the shared partial block */
    CHECK(rb == 1 && b.blocks[2] != a.blocks[2] && b.blocks[1] == a.blocks[1]);
    CHECK(cache_row(c, &b, 1, 19)[2] == cache_row(c, &a, 1, 19)[2]);
    cache_row(c, &b, 1, 20)[0] = -1.0f;
    cache_row(c, &b, 0, 19)[0] = -2.0f;
    CHECK(cache_row(c, &a, 0, 19)[0] == 19.0f);   /* a untouched */
    cache_unreserve(c, rb);
    cache_seq_release(c, &a);
    cache_seq_release(c, &b);
    CHECK(c->n_free == 5 && c->n_reserved == 0);
    latent_cache_free(c);
}

#include <cblas.h>
#include "core/rng.h"
#include "rollout/linear.h"

TEST(rollout_linear_matches_blas_and_is_batch_invariant) {
    int shapes[][3] = {{1, 37, 19}, {5, 64, 256}, {37, 131, 77}, {96, 40, 33}, {130, 20, 48}, {600, 24, 40}};
    CrRng r;
    cr_rng_init(&r, 9, 0, 0);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
        float *x = malloc(sizeof(float) * M * K), *W = malloc(sizeof(float) * N * K);
        float *y = malloc(sizeof(float) * M * N), *ref = malloc(sizeof(float) * M * N);
        float *y1 = malloc(sizeof(float) * N);
        for (int i = 0; i < M * K; i++) x[i] = (float)cr_rng_normal(&r);
        for (int i = 0; i < N * K; i++) W[i] = (float)cr_rng_normal(&r);
        for (int i = 0; i < M * N; i++) y[i] = ref[i] = (float)cr_rng_normal(&r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, K, W, K, 1.0f, ref, N);
        rollout_linear(y, N, x, K, W, M, N, K, 1);
        CHECKF(test_rel_err(y, ref, (size_t)M * N) < 1e-5, "M=%d N=%d K=%d err %g", M, N, K,
               test_rel_err(y, ref, (size_t)M * N));
        if (M <= ROLLOUT_LINEAR_SMALL_M) {   /* the last row alone gives the same bits */
            rollout_linear(y, N, x, K, W, M, N, K, 0);
            rollout_linear(y1, N, x + (size_t)(M - 1) * K, K, W, 1, N, K, 0);
            CHECK(memcmp(y1, y + (size_t)(M - 1) * N, sizeof(float) * N) == 0);
        }
        /* y = x B with B [K, N] (the same numbers read as W^T's storage) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, x, K, W, N, 0.0f, ref, N);
        rollout_linear_nn(y, N, x, K, W, N, M, N, K, 0);
        CHECKF(test_rel_err(y, ref, (size_t)M * N) < 1e-5, "nn M=%d N=%d K=%d", M, N, K);
        rollout_linear_nn(y1, N, x + (size_t)(M - 1) * K, K, W, N, 1, N, K, 0);
        CHECK(memcmp(y1, y + (size_t)(M - 1) * N, sizeof(float) * N) == 0);
        free(x); free(W); free(y); free(ref); free(y1);
    }
}

/* HF's TopPLogitsWarper, literally: sort ascending, drop while cumsum <= 1 - top_p. */
static int cmp_asc_d(const void *a, const void *b) {
    const double *x = a, *y = b;
    return (x[0] > y[0]) - (x[0] < y[0]) ? (x[0] > y[0]) - (x[0] < y[0]) : (x[1] < y[1]) - (x[1] > y[1]);
}

TEST(rollout_sampler_top_p_large_vocab_vs_hf_rule) {
    int V = 5000;
    float *lg = malloc(sizeof(float) * V);
    double *pr = malloc(sizeof(double) * V), *pairs = malloc(sizeof(double) * 2 * V);
    unsigned char *want = malloc(V);
    int32_t *keep = malloc(sizeof(int32_t) * V);
    SamplerScratch *s = sampler_scratch_new(V);
    CrRng r;
    cr_rng_init(&r, 17, 0, 0);
    float tps[] = {0.1f, 0.5f, 0.9f, 0.99f};
    for (int trial = 0; trial < 12; trial++) {
        double spread = 0.5 + trial;   /* flat to peaked */
        for (int i = 0; i < V; i++) lg[i] = (float)(spread * cr_rng_normal(&r));
        float tp = tps[trial % 4];
        SamplerCfg c = {1.0f, 0, tp, 0.0f};
        int n = sampler_keep_set(&c, lg, V, s, keep, NULL);
        double m = -1e30, z = 0;
        for (int i = 0; i < V; i++) m = lg[i] > m ? lg[i] : m;
        for (int i = 0; i < V; i++) z += (pr[i] = exp((double)lg[i] - m));
        for (int i = 0; i < V; i++) { pairs[2 * i] = pr[i] / z; pairs[2 * i + 1] = i; }
        qsort(pairs, V, 2 * sizeof(double), cmp_asc_d);
        double cum = 0;
        int n_want = 0;
        for (int i = 0; i < V; i++) {
            cum += pairs[2 * i];
            int id = (int)pairs[2 * i + 1];
            want[id] = !(cum <= 1.0 - tp) || i == V - 1;
            n_want += want[id];
        }
        int agree = n == n_want;
        for (int j = 0; j < n && agree; j++) agree = want[keep[j]];
        CHECKF(agree, "trial %d top_p %.2f: kept %d, HF rule keeps %d", trial, tp, n, n_want);
    }
    sampler_scratch_free(s);
    free(lg); free(pr); free(pairs); free(want); free(keep);
}
