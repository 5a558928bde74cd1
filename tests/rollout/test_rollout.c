/* tests/rollout/test_rollout.c — the rollout engine (absorbed MLA over the latent cache,
 * groups, continuous batching) against an independent explicit-MHA double-precision
 * forward (tests/rollout/ref_model.c). */
#include "tests/test.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "rollout/rollout.h"
#include "tests/rollout/ref_model.h"

/* q_proj, greedy routing, plain RoPE. */
static const char k_cfg_a[] =
    "{\"model_type\":\"deepseek_v2\",\"vocab_size\":96,\"hidden_size\":48,\"num_hidden_layers\":3,"
    "\"num_attention_heads\":3,\"q_lora_rank\":null,\"kv_lora_rank\":16,\"qk_nope_head_dim\":8,"
    "\"qk_rope_head_dim\":4,\"v_head_dim\":8,\"intermediate_size\":40,\"moe_intermediate_size\":16,"
    "\"n_routed_experts\":6,\"n_shared_experts\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,"
    "\"topk_method\":\"greedy\",\"n_group\":1,\"topk_group\":1,\"max_position_embeddings\":512,"
    "\"rope_scaling\":null,\"bos_token_id\":0,\"eos_token_id\":1}";
/* q-LoRA, group-limited routing with scaling, YaRN. */
static const char k_cfg_b[] =
    "{\"model_type\":\"deepseek_v2\",\"vocab_size\":80,\"hidden_size\":32,\"num_hidden_layers\":3,"
    "\"num_attention_heads\":4,\"q_lora_rank\":24,\"kv_lora_rank\":12,\"qk_nope_head_dim\":6,"
    "\"qk_rope_head_dim\":4,\"v_head_dim\":5,\"intermediate_size\":36,\"moe_intermediate_size\":12,"
    "\"n_routed_experts\":8,\"n_shared_experts\":2,\"num_experts_per_tok\":3,\"first_k_dense_replace\":1,"
    "\"topk_method\":\"group_limited_greedy\",\"n_group\":4,\"topk_group\":2,\"routed_scaling_factor\":2.5,"
    "\"max_position_embeddings\":512,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4,"
    "\"original_max_position_embeddings\":64,\"beta_fast\":32,\"beta_slow\":1,\"mscale\":0.707,"
    "\"mscale_all_dim\":0.707},\"bos_token_id\":0,\"eos_token_id\":1}";

static void make_prompts(int n, int V, uint64_t seed, int32_t ***prompts, int **lens, int min_len, int spread) {
    CrRng r;
    cr_rng_init(&r, seed, 5, 5);
    *prompts = malloc(sizeof(int32_t *) * n);
    *lens = malloc(sizeof(int) * n);
    for (int p = 0; p < n; p++) {
        (*lens)[p] = min_len + (int)(cr_rng_u64(&r) % (uint64_t)spread);
        (*prompts)[p] = malloc(sizeof(int32_t) * (*lens)[p]);
        for (int t = 0; t < (*lens)[p]; t++) (*prompts)[p][t] = 2 + (int32_t)(cr_rng_u64(&r) % (uint64_t)(V - 2));
    }
}

static void free_prompts(int n, int32_t **prompts, int *lens) {
    for (int p = 0; p < n; p++) free(prompts[p]);
    free(prompts);
    free(lens);
}

/* Check one sample against the reference forward of prompt + completion: greedy tokens
 * are the argmax, model log-probs (and tempered ones when temperature > 0 and no
 * truncation) match; returns the max relative log-prob error. */
static double check_sample(TestCtx *t_, const Model *m, const int32_t *prompt, int P, const Sample *s,
                           double temperature, int check_argmax, const int32_t *experts_or_null) {
    int V = m->cfg.vocab_size, T = P + s->n_tokens;
    int32_t *seq = malloc(sizeof(int32_t) * T);
    memcpy(seq, prompt, sizeof(int32_t) * P);
    memcpy(seq + P, s->token_ids, sizeof(int32_t) * s->n_tokens);
    double *lg = malloc(sizeof(double) * (size_t)T * V);
    int n_moe = 0, K = m->cfg.num_experts_per_tok;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) n_moe += model_layer_is_moe(&m->cfg, l);
    int32_t *ex = malloc(sizeof(int32_t) * (size_t)T * n_moe * K);
    ref_forward(m, seq, T, lg, ex);
    double worst = 0;
    int bad_argmax = 0, bad_experts = 0;
    for (int k = 0; k < s->n_tokens; k++) {
        const double *row = lg + (size_t)(P - 1 + k) * V;
        int tok = s->token_ids[k];
        if (check_argmax && ref_argmax(row, V) != tok) bad_argmax++;
        double want = ref_logprob(row, V, tok, 1.0);
        double err = fabs(s->logprobs_model[k] - want) / fmax(1.0, fabs(want));
        if (err > worst) worst = err;
        if (temperature > 0) {
            double wt = ref_logprob(row, V, tok, temperature);
            double e2 = fabs(s->logprobs[k] - wt) / fmax(1.0, fabs(wt));
            if (e2 > worst) worst = e2;
        }
        if (experts_or_null) {
            int32_t got[64];
            memcpy(got, experts_or_null + (size_t)k * n_moe * K, sizeof(int32_t) * n_moe * K);
            for (int j = 0; j < n_moe; j++) {  /* compare as sets */
                int32_t *g = got + j * K;
                for (int a = 0; a < K; a++)
                    for (int b = a + 1; b < K; b++)
                        if (g[b] < g[a]) { int32_t x = g[a]; g[a] = g[b]; g[b] = x; }
                if (memcmp(g, ex + ((size_t)(P - 1 + k) * n_moe + j) * K, sizeof(int32_t) * K)) bad_experts++;
            }
        }
    }
    CHECKF(bad_argmax == 0, "%d of %d greedy tokens differ from the reference argmax", bad_argmax, s->n_tokens);
    CHECKF(bad_experts == 0, "%d routing records differ from the reference", bad_experts);
    free(seq);
    free(lg);
    free(ex);
    return worst;
}

static void greedy_case(TestCtx *t_, const char *cfg, uint64_t seed, float std) {
    Model *m = ref_model_new(cfg, seed, std);
    CrError e;
    RolloutEngine *r = rollout_create(m, NULL, 4096, &e);
    CHECKF(r != NULL, "%s", e.msg);
    if (!r) return;
    int n = 3, G = 2;
    int32_t **pr;
    int *lens;
    make_prompts(n, m->cfg.vocab_size, seed, &pr, &lens, 1, 40);
    SampleParams sp = {0};
    sp.max_new_tokens = 40;
    sp.ignore_eos = 1;
    sp.record_experts = 1;
    Sample *out = calloc((size_t)n * G, sizeof *out);
    CHECKF(rollout_generate(r, (const int32_t *const *)pr, lens, n, G, &sp, 0, out, &e) == 0, "%s", e.msg);
    double worst = 0;
    for (int p = 0; p < n; p++) {
        for (int g = 0; g < G; g++) {
            Sample *s = &out[p * G + g];
            CHECK(s->n_tokens == 40 && s->finish_reason == 1 && s->text == NULL);
            CHECK(s->n_tokens == out[p * G].n_tokens &&
                  !memcmp(s->token_ids, out[p * G].token_ids, sizeof(int32_t) * s->n_tokens));
            for (int k = 0; k < s->n_tokens; k++) CHECK(s->logprobs[k] == 0.0f);
        }
        double w = check_sample(t_, m, pr[p], lens[p], &out[p * G], 0, 1, out[p * G].expert_ids);
        if (w > worst) worst = w;
    }
    CHECKF(worst < 1e-4, "model log-probs vs reference: max rel err %.3g", worst);
    RolloutStats st = rollout_stats(r);
    CHECKF(st.max_live == n * G, "all %d samples should decode in one batch (max live %d)", n * G, st.max_live);
    for (int i = 0; i < n * G; i++) sample_free(&out[i]);
    /* one long sample: hundreds of decode steps, rows spanning many cache blocks */
    sp.max_new_tokens = 300;
    CHECKF(rollout_generate(r, (const int32_t *const *)pr, lens, 1, 1, &sp, 0, out, &e) == 0, "%s", e.msg);
    double w = check_sample(t_, m, pr[0], lens[0], &out[0], 0, 1, out[0].expert_ids);
    CHECKF(w < 1e-4, "300-step sample: max rel err %.3g", w);
    sample_free(&out[0]);
    free(out);
    free_prompts(n, pr, lens);
    rollout_free(r);
    ref_model_free(m);
}

TEST(rollout_greedy_matches_full_forward) {
    greedy_case(t_, k_cfg_a, 11, 0.35f);
    greedy_case(t_, k_cfg_b, 12, 0.35f);
}

/* The same through the backend-generic path (rollout/forward_ops.c on ops_cpu()). */
TEST(rollout_ops_path_greedy_matches_full_forward) {
    setenv("CRUCIBLE_ROLLOUT_OPS", "1", 1);
    greedy_case(t_, k_cfg_a, 11, 0.35f);
    greedy_case(t_, k_cfg_b, 12, 0.35f);
    unsetenv("CRUCIBLE_ROLLOUT_OPS");
}

/* Generates n prompts x G samples with the given engine budget and prompt batching. */
static Sample *run_sampling(TestCtx *t_, Model *m, long budget, int n, int G, int one_at_a_time,
                            const SampleParams *sp, int32_t **pr, int *lens, RolloutStats *st) {
    CrError e;
    RolloutEngine *r = rollout_create(m, NULL, budget, &e);
    CHECKF(r != NULL, "%s", e.msg);
    Sample *out = calloc((size_t)n * G, sizeof *out);
    if (!r) return out;
    if (one_at_a_time) {
        for (int p = 0; p < n; p++)
            CHECKF(rollout_generate(r, (const int32_t *const *)pr + p, lens + p, 1, G, sp, p, out + p * G, &e) == 0,
                   "%s", e.msg);
    } else {
        CHECKF(rollout_generate(r, (const int32_t *const *)pr, lens, n, G, sp, 0, out, &e) == 0, "%s", e.msg);
    }
    if (st) *st = rollout_stats(r);
    rollout_free(r);
    return out;
}

TEST(rollout_seed_reproducible_across_batches_threads_budgets) {
    Model *m = ref_model_new(k_cfg_a, 21, 0.3f);
    int n = 4, G = 3;
    int32_t **pr;
    int *lens;
    make_prompts(n, m->cfg.vocab_size, 4, &pr, &lens, 3, 30);
    SampleParams sp = {0};
    sp.temperature = 1.0f;
    sp.top_p = 0.95f;
    sp.top_k = 40;
    sp.max_new_tokens = 24;
    sp.seed = 1234;
    sp.stop_ids = (const int32_t[]){1, 7};
    sp.n_stop_ids = 2;
    RolloutStats st_big, st_small;
    Sample *a = run_sampling(t_, m, 8192, n, G, 0, &sp, pr, lens, &st_big);
    Sample *b = run_sampling(t_, m, 8192, n, G, 1, &sp, pr, lens, NULL);
    omp_set_num_threads(1);
    Sample *c = run_sampling(t_, m, 80, n, G, 0, &sp, pr, lens, &st_small); /* 5 blocks: must wait */
    omp_set_num_threads(2);
    CHECKF(st_small.max_live < n * G, "small budget should limit the batch (max live %d)", st_small.max_live);
    CHECK(st_big.max_live == n * G);
    int distinct = 0, stopped = 0;
    for (int i = 0; i < n * G; i++) {
        CHECKF(a[i].n_tokens == b[i].n_tokens && a[i].n_tokens == c[i].n_tokens, "sample %d lengths %d %d %d", i,
               a[i].n_tokens, b[i].n_tokens, c[i].n_tokens);
        if (FAILED()) break;
        CHECK(!memcmp(a[i].token_ids, b[i].token_ids, sizeof(int32_t) * a[i].n_tokens));
        CHECK(!memcmp(a[i].token_ids, c[i].token_ids, sizeof(int32_t) * a[i].n_tokens));
        CHECK(a[i].finish_reason == b[i].finish_reason && a[i].finish_reason == c[i].finish_reason);
        for (int k = 0; k < a[i].n_tokens; k++) {
            /* decode GEMMs split output columns only: bitwise identical */
            CHECKF(a[i].logprobs[k] == c[i].logprobs[k] && a[i].logprobs[k] == b[i].logprobs[k], "i %d k %d: %.9g %.9g %.9g", i, k, a[i].logprobs[k], b[i].logprobs[k], c[i].logprobs[k]);
            CHECK(a[i].logprobs_model[k] == b[i].logprobs_model[k]);
        }
        if (i % G && memcmp(a[i].token_ids, a[i - 1].token_ids, sizeof(int32_t) * (a[i].n_tokens < a[i - 1].n_tokens ? a[i].n_tokens : a[i - 1].n_tokens)))
            distinct++;
        if (a[i].finish_reason == 0) {
            int32_t last = a[i].token_ids[a[i].n_tokens - 1];
            CHECK(last == 1 || last == 7);  /* the stop id is kept */
            stopped++;
        }
        for (int k = 0; k + 1 < a[i].n_tokens; k++) CHECK(a[i].token_ids[k] != 1 && a[i].token_ids[k] != 7);
    }
    CHECKF(distinct > 0, "samples of a group should differ at temperature 1");
    /* a different seed gives different samples */
    sp.seed = 99;
    Sample *d = run_sampling(t_, m, 8192, n, G, 0, &sp, pr, lens, NULL);
    int same = 0;
    for (int i = 0; i < n * G; i++)
        same += a[i].n_tokens == d[i].n_tokens && !memcmp(a[i].token_ids, d[i].token_ids, sizeof(int32_t) * a[i].n_tokens);
    CHECK(same < n * G);
    for (int i = 0; i < n * G; i++) {
        sample_free(&a[i]); sample_free(&b[i]); sample_free(&c[i]); sample_free(&d[i]);
    }
    free(a); free(b); free(c); free(d);
    free_prompts(n, pr, lens);
    ref_model_free(m);
    fprintf(stderr, "    (%d of %d samples ended on a stop id)\n", stopped, n * G);
}

TEST(rollout_tempered_logprobs_match_reference) {
    Model *m = ref_model_new(k_cfg_b, 31, 0.3f);
    int n = 2, G = 4;
    int32_t **pr;
    int *lens;
    make_prompts(n, m->cfg.vocab_size, 8, &pr, &lens, 5, 20);
    SampleParams sp = {0};
    sp.temperature = 0.7f;
    sp.max_new_tokens = 30;
    sp.seed = 5;
    sp.ignore_eos = 1;
    Sample *a = run_sampling(t_, m, 2048, n, G, 0, &sp, pr, lens, NULL);
    double worst = 0;
    for (int i = 0; i < n * G; i++) {
        double w = check_sample(t_, m, pr[i / G], lens[i / G], &a[i], 0.7, 0, NULL);
        if (w > worst) worst = w;
        sample_free(&a[i]);
    }
    CHECKF(worst < 1e-4, "tempered/model log-probs vs reference: max rel err %.3g", worst);
    /* top-k = 1 equals greedy */
    sp.top_k = 1;
    Sample *k1 = run_sampling(t_, m, 2048, n, 1, 0, &sp, pr, lens, NULL);
    sp.temperature = 0;
    sp.top_k = 0;
    Sample *gr = run_sampling(t_, m, 2048, n, 1, 0, &sp, pr, lens, NULL);
    for (int p = 0; p < n; p++) {
        CHECK(k1[p].n_tokens == gr[p].n_tokens &&
              !memcmp(k1[p].token_ids, gr[p].token_ids, sizeof(int32_t) * gr[p].n_tokens));
        sample_free(&k1[p]);
        sample_free(&gr[p]);
    }
    free(k1); free(gr); free(a);
    free_prompts(n, pr, lens);
    ref_model_free(m);
}

TEST(rollout_errors_are_clear) {
    Model *m = ref_model_new(k_cfg_a, 41, 0.3f);
    CrError e;
    CHECK(rollout_create(m, NULL, 3, &e) == NULL && strstr(e.msg, "budget"));
    RolloutEngine *r = rollout_create(m, NULL, 256, &e);
    CHECK(r != NULL);
    SampleParams sp = {0};
    sp.max_new_tokens = 8;
    Sample out[4];
    int32_t ok[3] = {5, 6, 7};
    const int32_t *pp[1] = {ok};
    int len0 = 0;
    CHECK(rollout_generate(r, pp, &len0, 1, 1, &sp, 0, out, &e) == -1 && strstr(e.msg, "empty"));
    int32_t *big = calloc(600, sizeof *big);
    const int32_t *pb[1] = {big};
    int len_big = 512;
    CHECK(rollout_generate(r, pb, &len_big, 1, 1, &sp, 0, out, &e) == -1 && strstr(e.msg, "max_position_embeddings"));
    len_big = 300;  /* fits the context, not the 256-token cache */
    CHECK(rollout_generate(r, pb, &len_big, 1, 1, &sp, 0, out, &e) == -1 && strstr(e.msg, "cache budget"));
    int32_t bad[2] = {5, 96};
    const int32_t *pbad[1] = {bad};
    int len2 = 2;
    CHECK(rollout_generate(r, pbad, &len2, 1, 1, &sp, 0, out, &e) == -1 && strstr(e.msg, "outside"));
    int len3 = 3;
    const char *stops[] = {"x"};
    sp.stop_strings = stops;
    sp.n_stop_strings = 1;
    CHECK(rollout_generate(r, pp, &len3, 1, 1, &sp, 0, out, &e) == -1 && strstr(e.msg, "tokenizer"));
    sp.n_stop_strings = 0;
    sp.max_new_tokens = 0;
    CHECK(rollout_generate(r, pp, &len3, 1, 1, &sp, 0, out, &e) == -1 && strstr(e.msg, "max_new_tokens"));
    sp.max_new_tokens = 4;
    sp.temperature = -1;
    CHECK(rollout_generate(r, pp, &len3, 1, 1, &sp, 0, out, &e) == -1 && strstr(e.msg, "temperature"));
    /* the engine still works after errors */
    sp.temperature = 0;
    len_big = 200;
    CHECKF(rollout_generate(r, pb, &len_big, 1, 1, &sp, 0, out, &e) == 0, "%s", e.msg);
    CHECK(out[0].n_tokens >= 1);
    sample_free(&out[0]);
    /* a prompt that nearly fills the context: generation ends with it ("length") */
    RolloutEngine *r2 = rollout_create(m, NULL, 1024, &e);
    len_big = 510;
    sp.max_new_tokens = 8;
    sp.ignore_eos = 1;
    CHECKF(rollout_generate(r2, pb, &len_big, 1, 1, &sp, 0, out, &e) == 0, "%s", e.msg);
    CHECK(out[0].n_tokens == 2 && out[0].finish_reason == 1);
    sample_free(&out[0]);
    rollout_free(r2);
    free(big);
    rollout_free(r);
    ref_model_free(m);
}

/* The trainer's log-probs (model_forward, packed batch) of every sampled token. */
static double max_err_vs_trainer(TestCtx *t_, Model *m, int32_t **pr, int *lens, int n, int G, const Sample *out) {
    int total = 0;
    for (int i = 0; i < n * G; i++) total += lens[i / G] + out[i].n_tokens;
    int32_t *tok = malloc(sizeof(int32_t) * total), *tgt = malloc(sizeof(int32_t) * total);
    int32_t *cu = malloc(sizeof(int32_t) * (n * G + 1));
    float *logp = malloc(sizeof(float) * total);
    int off = 0;
    cu[0] = 0;
    for (int i = 0; i < n * G; i++) {
        int P = lens[i / G], T = out[i].n_tokens;
        memcpy(tok + off, pr[i / G], sizeof(int32_t) * P);
        memcpy(tok + off + P, out[i].token_ids, sizeof(int32_t) * T);
        for (int k = 0; k < P + T; k++) tgt[off + k] = (k >= P - 1 && k + 1 < P + T) ? tok[off + k + 1] : -1;
        off += P + T;
        cu[i + 1] = off;
    }
    Batch b = {total, n * G, tok, tgt, cu, NULL};
    CrError e;
    float aux;
    CHECKF(model_forward(m, &b, logp, &aux, &e) == 0, "%s", e.msg);
    double worst = 0;
    off = 0;
    for (int i = 0; i < n * G; i++) {
        int P = lens[i / G];
        for (int k = 0; k < out[i].n_tokens; k++) {
            double want = logp[off + P - 1 + k], got = out[i].logprobs_model[k];
            double err = fabs(got - want) / fmax(1.0, fabs(want));
            if (err > worst) worst = err;
        }
        off += P + out[i].n_tokens;
    }
    free(tok); free(tgt); free(cu); free(logp);
    return worst;
}

TEST(rollout_logprobs_match_training_forward_and_follow_updates) {
    Model *m = ref_model_new(k_cfg_b, 51, 0.3f);
    int n = 2, G = 2;
    int32_t **pr;
    int *lens;
    make_prompts(n, m->cfg.vocab_size, 12, &pr, &lens, 2, 30);
    SampleParams sp = {0};
    sp.temperature = 1.0f;
    sp.max_new_tokens = 150;
    sp.seed = 3;
    sp.ignore_eos = 1;
    CrError e;
    RolloutEngine *r = rollout_create(m, NULL, 4096, &e);
    CHECKF(r != NULL, "%s", e.msg);
    Sample *out = calloc((size_t)n * G, sizeof *out);
    CHECKF(rollout_generate(r, (const int32_t *const *)pr, lens, n, G, &sp, 0, out, &e) == 0, "%s", e.msg);
    double w = max_err_vs_trainer(t_, m, pr, lens, n, G, out);
    CHECKF(w < 1e-4, "rollout vs model_forward log-probs: max rel err %.3g (over %d x 150 steps)", w, n * G);
    fprintf(stderr, "    rollout vs model_forward: max rel err %.2g over %d samples x 150 tokens\n", w, n * G);
    float first = out[0].logprobs_model[0];
    for (int i = 0; i < n * G; i++) sample_free(&out[i]);
    /* an in-place update of the weights (as the optimizer does) is seen with no sync */
    const ParamTensor *lm = model_find_tensor(m, "lm_head.weight");
    for (size_t k = 0; k < lm->numel; k++) m->params[lm->offset + k] *= 1.7f;
    CHECKF(rollout_generate(r, (const int32_t *const *)pr, lens, n, G, &sp, 0, out, &e) == 0, "%s", e.msg);
    CHECK(out[0].logprobs_model[0] != first);
    w = max_err_vs_trainer(t_, m, pr, lens, n, G, out);
    CHECKF(w < 1e-4, "after the update: max rel err %.3g", w);
    for (int i = 0; i < n * G; i++) sample_free(&out[i]);
    free(out);
    free_prompts(n, pr, lens);
    rollout_free(r);
    ref_model_free(m);
}
