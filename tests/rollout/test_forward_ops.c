/* tests/rollout/test_forward_ops.c — the backend-generic rollout path on the CPU backend:
 *  - the paged-cache ops (mla_cache_scatter, mla_decode_attention) of ops_cpu() against
 *    a dense, unpaged double-precision attention on random data;
 *  - forward_ops_run (rollout/forward_ops.c) against forward_run (rollout/forward.c, the
 *    checked specification) on the same model and the same cache operations: prefill
 *    chunks, a call mixing two sequences, forks sharing blocks, decode steps crossing
 *    block boundaries with copy-on-write; logits, routing and the cached rows compared;
 *    the whole script once per attention form (rule, forced absorbed, forced MHA);
 *  - the MHA (non-absorbed) prefill form: prompts of 1, 5, 40 and 130 tokens in one call,
 *    then continuation chunks over cached context, then absorbed decode steps reading
 *    what the MHA form cached, against forward_run; the form each call took is asserted;
 *  - rollout_generate through the Ops path (CRUCIBLE_ROLLOUT_OPS=1) against the host path. */
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/ops.h"
#include "rollout/forward.h"
#include "rollout/forward_ops.h"
#include "rollout/kv_cache.h"
#include "rollout/rollout.h"
#include "tests/rollout/ref_model.h"

/* ---- the cache ops against a dense reference ---------------------------------------- */

/* n rows; row i belongs to its own sequence of ctx[i] = pos[i] + 1 positions whose dense
 * latent rows are lat_i [ctx][rw]. The rows are scattered into a paged cache through
 * shuffled block tables one position at a time (as decode steps write them), then every
 * row attends over its whole context. */
static void decode_case(TestCtx *t_, CrRng *g, int n, int H, int r, int dr, int bt, int L, int max_ctx) {
    const Ops *o = ops_cpu();
    int rw = r + dr, layer = L - 1;
    int32_t *pos = malloc(sizeof(int32_t) * n);
    int maxb = 0;
    for (int i = 0; i < n; i++) {
        pos[i] = (int32_t)(cr_rng_u64(g) % (uint64_t)max_ctx);
        int nb = pos[i] / bt + 1;
        if (nb > maxb) maxb = nb;
    }
    int n_blocks = n * maxb;
    /* a random permutation of all blocks, dealt out to the rows */
    int32_t *perm = malloc(sizeof(int32_t) * n_blocks), *table = malloc(sizeof(int32_t) * n * maxb);
    for (int b = 0; b < n_blocks; b++) perm[b] = b;
    for (int b = n_blocks - 1; b > 0; b--) {
        int k = (int)(cr_rng_u64(g) % (uint64_t)(b + 1));
        int32_t x = perm[b];
        perm[b] = perm[k];
        perm[k] = x;
    }
    memcpy(table, perm, sizeof(int32_t) * n * maxb);
    size_t cache_n = (size_t)n_blocks * L * bt * rw;
    float *cache = malloc(sizeof(float) * cache_n);
    for (size_t k = 0; k < cache_n; k++) cache[k] = NAN;  /* nothing unwritten may be read */
    float **lat = malloc(sizeof(float *) * n);
    for (int i = 0; i < n; i++) {
        lat[i] = malloc(sizeof(float) * (size_t)(pos[i] + 1) * rw);
        for (int k = 0; k < (pos[i] + 1) * rw; k++) lat[i][k] = (float)cr_rng_normal(g);
    }
    /* scatter position p of every row that has it, one call per p (rows that have it) */
    float *src = malloc(sizeof(float) * n * rw);
    int32_t *sp = malloc(sizeof(int32_t) * n), *stab = malloc(sizeof(int32_t) * n * maxb);
    for (int p = 0; p < max_ctx; p++) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            if (p > pos[i]) continue;
            memcpy(src + (size_t)m * rw, lat[i] + (size_t)p * rw, sizeof(float) * rw);
            memcpy(stab + (size_t)m * maxb, table + (size_t)i * maxb, sizeof(int32_t) * maxb);
            sp[m++] = p;
        }
        if (m) o->mla_cache_scatter(cache, stab, maxb, L, layer, bt, rw, src, sp, m);
    }
    /* every row landed where the addressing rule says */
    int misplaced = 0;
    for (int i = 0; i < n; i++)
        for (int p = 0; p <= pos[i]; p++) {
            size_t b = (size_t)table[(size_t)i * maxb + p / bt];
            const float *row = cache + ((b * L + layer) * bt + p % bt) * (size_t)rw;
            misplaced += memcmp(row, lat[i] + (size_t)p * rw, sizeof(float) * rw) != 0;
        }
    CHECKF(misplaced == 0, "%d latent rows not where block table says", misplaced);

    float scale = 0.05f + (float)cr_rng_uniform(g) * 0.2f;
    float *qa = malloc(sizeof(float) * n * H * rw), *out = malloc(sizeof(float) * n * H * r);
    float *ref = malloc(sizeof(float) * n * H * r);
    for (int k = 0; k < n * H * rw; k++) qa[k] = (float)cr_rng_normal(g);
    for (int k = 0; k < n * H * r; k++) out[k] = NAN;
    o->mla_decode_attention(out, qa, cache, table, maxb, L, layer, bt, pos, n, H, r, dr, scale);
    /* dense reference in double */
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            int ctx = pos[i] + 1;
            const float *q = qa + ((size_t)i * H + h) * rw;
            double *s = malloc(sizeof(double) * ctx), mx = -INFINITY, sum = 0;
            for (int j = 0; j < ctx; j++) {
                double d = 0;
                for (int k = 0; k < rw; k++) d += (double)q[k] * lat[i][(size_t)j * rw + k];
                s[j] = scale * d;
                mx = s[j] > mx ? s[j] : mx;
            }
            for (int j = 0; j < ctx; j++) sum += (s[j] = exp(s[j] - mx));
            for (int k = 0; k < r; k++) {
                double acc = 0;
                for (int j = 0; j < ctx; j++) acc += s[j] * lat[i][(size_t)j * rw + k];
                ref[((size_t)i * H + h) * r + k] = (float)(acc / sum);
            }
            free(s);
        }
    double err = test_rel_err(out, ref, (size_t)n * H * r);
    CHECKF(err < 1e-5, "mla_decode_attention n %d H %d r %d dr %d block %d ctx<=%d: normalised error %.3g", n, H, r,
           dr, bt, max_ctx, err);
    fprintf(stderr, "    n %2d H %2d r %3d dr %2d block %2d ctx <= %4d: err %.3g\n", n, H, r, dr, bt, max_ctx, err);
    for (int i = 0; i < n; i++) free(lat[i]);
    free(lat), free(pos), free(perm), free(table), free(cache), free(src), free(sp), free(stab);
    free(qa), free(out), free(ref);
}

TEST(rollout_mla_cache_ops_cpu_match_dense_attention) {
    CrRng g;
    cr_rng_init(&g, 2024, 9, 0);
    decode_case(t_, &g, 1, 1, 8, 2, 4, 1, 1);        /* a single position */
    decode_case(t_, &g, 5, 3, 20, 6, 4, 2, 37);      /* odd sizes, many blocks */
    decode_case(t_, &g, 7, 4, 16, 4, 16, 3, 300);
    decode_case(t_, &g, 2, 16, 64, 32, 16, 2, 600); /* Lite-like head count */
}

/* ---- forward_ops_run vs forward_run ------------------------------------------------------ */

/* no q-LoRA, greedy routing */
static const char k_cfg_plain[] =
    "{\"model_type\":\"deepseek_v2\",\"vocab_size\":96,\"hidden_size\":48,\"num_hidden_layers\":3,"
    "\"num_attention_heads\":3,\"q_lora_rank\":null,\"kv_lora_rank\":16,\"qk_nope_head_dim\":8,"
    "\"qk_rope_head_dim\":4,\"v_head_dim\":8,\"intermediate_size\":40,\"moe_intermediate_size\":16,"
    "\"n_routed_experts\":6,\"n_shared_experts\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,"
    "\"topk_method\":\"greedy\",\"n_group\":1,\"topk_group\":1,\"max_position_embeddings\":512,"
    "\"rope_scaling\":null,\"bos_token_id\":0,\"eos_token_id\":1}";
/* q-LoRA, group-limited routing, YaRN, dqk != dv */
static const char k_cfg_lora[] =
    "{\"model_type\":\"deepseek_v2\",\"vocab_size\":80,\"hidden_size\":32,\"num_hidden_layers\":3,"
    "\"num_attention_heads\":4,\"q_lora_rank\":24,\"kv_lora_rank\":12,\"qk_nope_head_dim\":6,"
    "\"qk_rope_head_dim\":4,\"v_head_dim\":5,\"intermediate_size\":36,\"moe_intermediate_size\":12,"
    "\"n_routed_experts\":8,\"n_shared_experts\":2,\"num_experts_per_tok\":3,\"first_k_dense_replace\":1,"
    "\"topk_method\":\"group_limited_greedy\",\"n_group\":4,\"topk_group\":2,\"routed_scaling_factor\":2.5,"
    "\"max_position_embeddings\":512,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4,"
    "\"original_max_position_embeddings\":64,\"beta_fast\":32,\"beta_slow\":1,\"mscale\":0.707,"
    "\"mscale_all_dim\":0.707},\"bos_token_id\":0,\"eos_token_id\":1}";

enum { NSEQ = 4, BT = 4, MAXROWS = 256 };

/* The two engines side by side: same model, two caches given the same operations. */
typedef struct Pair {
    Model *m;
    RolloutWeights w;
    Forward *ref;
    ForwardOps *ops;
    LatentCache *c[2];
    CacheSeq s[2][NSEQ];
    int reserved[2];
    int n_moe, K, V;
    double worst;
    long calls;
} Pair;

/* One call: rows (seq[i], pos[i], tok[i]); logits for rows lr[0..nl). Both engines. */
static void pair_run(TestCtx *t_, Pair *P, int n, const int *seq, const int32_t *pos, const int32_t *tok,
                     const int *lr, int nl) {
    CacheSeq *sp[2][MAXROWS];
    CHECK(n <= MAXROWS);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < n; i++) {
            CacheSeq *s = &P->s[k][seq[i]];
            cache_seq_prepare_write(P->c[k], s, pos[i], &P->reserved[k]);
            if (pos[i] + 1 > s->len) s->len = pos[i] + 1;
            sp[k][i] = s;
        }
    for (int i = 0; i < n; i++)
        CHECKF(!memcmp(P->s[0][seq[i]].blocks, P->s[1][seq[i]].blocks, sizeof(int) * P->s[0][seq[i]].n_blocks),
               "the two caches' block tables diverged");
    size_t nlog = (size_t)nl * P->V, nex = (size_t)n * P->n_moe * P->K;
    float *la = malloc(sizeof(float) * nlog), *lb = malloc(sizeof(float) * nlog);
    int32_t *ea = malloc(sizeof(int32_t) * (nex + 1)), *eb = malloc(sizeof(int32_t) * (nex + 1));
    for (size_t k = 0; k < nlog; k++) lb[k] = NAN;
    for (size_t k = 0; k < nex; k++) eb[k] = -1;
    forward_run(P->ref, P->c[0], n, tok, pos, sp[0], lr, nl, la, ea);
    forward_ops_run(P->ops, P->c[1], n, tok, pos, sp[1], lr, nl, lb, eb);
    double err = test_rel_err(lb, la, nlog);
    if (err > P->worst) P->worst = err;
    CHECKF(err < 1e-5, "call %ld (%d rows): logits normalised error %.3g", P->calls, n, err);
    size_t bad = 0;
    for (size_t k = 0; k < nex; k++) bad += ea[k] != eb[k];
    CHECKF(bad == 0, "call %ld: %zu of %zu expert ids differ", P->calls, bad, nex);
    P->calls++;
    free(la), free(lb), free(ea), free(eb);
}

/* Every cached row of every live sequence: the two caches agree. */
static double pair_cache_err(Pair *P) {
    const ModelConfig *c = &P->m->cfg;
    double worst = 0;
    for (int q = 0; q < NSEQ; q++)
        for (int l = 0; l < c->num_hidden_layers; l++)
            for (int p = 0; p < P->s[0][q].len; p++) {
                double e = test_rel_err(cache_row(P->c[1], &P->s[1][q], l, p), cache_row(P->c[0], &P->s[0][q], l, p),
                                        (size_t)P->c[0]->row);
                if (e > worst) worst = e;
            }
    return worst;
}

static void pair_open(TestCtx *t_, Pair *P, const char *json, uint64_t seed, ForwardOpsAttention mode) {
    memset(P, 0, sizeof *P);
    P->m = ref_model_new(json, seed, 0.3f);
    CrError e;
    CHECK(rollout_weights_bind(&P->w, P->m, &e) == 0);
    const ModelConfig *c = &P->m->cfg;
    P->ref = forward_new(&P->w);
    P->ops = forward_ops_new(P->m);
    forward_ops_set_attention(P->ops, mode);
    P->n_moe = P->w.n_moe_layers;
    P->K = c->num_experts_per_tok;
    P->V = c->vocab_size;
    int rw = c->kv_lora_rank + c->qk_rope_head_dim;
    P->c[0] = latent_cache_create(c->num_hidden_layers, rw, BT, 480, &e);
    P->c[1] = latent_cache_create_ops(ops_cpu(), c->num_hidden_layers, rw, BT, 480, &e);
    for (int k = 0; k < 2; k++) {
        P->reserved[k] = P->c[k]->n_blocks;
        CHECK(cache_reserve(P->c[k], P->reserved[k]) == 0);
    }
}

static void pair_close(TestCtx *t_, Pair *P) {
    for (int k = 0; k < 2; k++) {
        for (int q = 0; q < NSEQ; q++) cache_seq_release(P->c[k], &P->s[k][q]);
        cache_unreserve(P->c[k], P->reserved[k]);
        CHECK(P->c[k]->n_free == P->c[k]->n_blocks);
        latent_cache_free(P->c[k]);
    }
    forward_free(P->ref);
    forward_ops_free(P->ops);
    rollout_weights_release(&P->w);
    ref_model_free(P->m);
}

static const char *mode_name(ForwardOpsAttention mode) {
    return mode == FORWARD_OPS_ATTN_MHA ? "MHA form" : mode == FORWARD_OPS_ATTN_ABSORBED ? "absorbed" : "rule";
}

static void forward_case(TestCtx *t_, const char *json, uint64_t seed, ForwardOpsAttention mode) {
    Pair P;
    pair_open(t_, &P, json, seed, mode);
    const ModelConfig *c = &P.m->cfg;
    CrRng g;
    cr_rng_init(&g, seed, 3, 3);
    int seq[64];
    int32_t pos[64], tok[64];
    int lr[64];
#define TOK() (int32_t)(2 + cr_rng_u64(&g) % (uint64_t)(P.V - 2))
    /* prefill of sequence 0, positions 0..6 (crosses a block), logits of three rows */
    for (int i = 0; i < 7; i++) seq[i] = 0, pos[i] = i, tok[i] = TOK();
    pair_run(t_, &P, 7, seq, pos, tok, (const int[]){6, 0, 3}, 3);
    /* the rest of sequence 0 (7..12) and sequence 3's prompt (0..4) in one call */
    int n = 0;
    for (int p = 7; p < 13; p++) seq[n] = 0, pos[n] = p, tok[n] = TOK(), n++;
    for (int p = 0; p < 5; p++) seq[n] = 3, pos[n] = p, tok[n] = TOK(), n++;
    pair_run(t_, &P, n, seq, pos, tok, (const int[]){5, 10}, 2);
    /* sequences 1 and 2 fork sequence 0 (13 positions: its last block is shared and partial) */
    for (int k = 0; k < 2; k++) {
        cache_seq_fork(P.c[k], &P.s[k][1], &P.s[k][0]);
        cache_seq_fork(P.c[k], &P.s[k][2], &P.s[k][0]);
    }
    /* decode steps: every sequence one token, crossing block boundaries, copy-on-write */
    for (int step = 0; step < 9; step++) {
        for (int q = 0; q < NSEQ; q++) {
            seq[q] = q, pos[q] = P.s[0][q].len, tok[q] = TOK(), lr[q] = q;
        }
        /* rows listed in a shuffled order with the logits asked in another */
        int rot = step % NSEQ;
        int seq2[NSEQ], lr2[NSEQ];
        int32_t pos2[NSEQ], tok2[NSEQ];
        for (int q = 0; q < NSEQ; q++) {
            seq2[q] = seq[(q + rot) % NSEQ], pos2[q] = pos[(q + rot) % NSEQ], tok2[q] = tok[(q + rot) % NSEQ];
            lr2[q] = lr[NSEQ - 1 - q];
        }
        pair_run(t_, &P, NSEQ, seq2, pos2, tok2, lr2, NSEQ);
    }
    /* a decode step without logits, then one with a single logit row */
    for (int q = 0; q < NSEQ; q++) seq[q] = q, pos[q] = P.s[0][q].len, tok[q] = TOK();
    pair_run(t_, &P, NSEQ, seq, pos, tok, lr, 0);
    for (int q = 0; q < NSEQ; q++) seq[q] = q, pos[q] = P.s[0][q].len, tok[q] = TOK();
    pair_run(t_, &P, NSEQ, seq, pos, tok, (const int[]){2}, 1);
#undef TOK
    double ce = pair_cache_err(&P);
    CHECKF(ce < 1e-5, "cached latent rows differ: normalised error %.3g", ce);
    ForwardOpsStats st = forward_ops_stats(P.ops);
    /* the forced forms took every call; the rule keeps these small calls absorbed */
    if (mode == FORWARD_OPS_ATTN_MHA)
        CHECKF(st.absorbed_calls == 0 && st.mha_calls == P.calls, "forced MHA: %ld absorbed, %ld MHA calls",
               st.absorbed_calls, st.mha_calls);
    else
        CHECKF(st.mha_calls == 0 && st.absorbed_calls == P.calls, "%s: %ld MHA calls of %ld", mode_name(mode),
               st.mha_calls, P.calls);
    fprintf(stderr, "    %s, %s: %ld calls, logits err <= %.3g, cache rows err <= %.3g\n",
            c->q_lora_rank ? "q-LoRA" : "q_proj", mode_name(mode), P.calls, P.worst, ce);
    pair_close(t_, &P);
}

TEST(rollout_forward_ops_matches_forward) {
    for (int mode = 0; mode < 3; mode++) {
        forward_case(t_, k_cfg_plain, 31, (ForwardOpsAttention)mode);
        forward_case(t_, k_cfg_lora, 32, (ForwardOpsAttention)mode);
    }
}

/* Prefill through the MHA form under the rule, then absorbed decode over what it cached:
 * prompts of 1, 5, 40 and 130 tokens in one call (no context: keys = the call's rows);
 * continuations of two of them at positions 40 and 130 (cached context gathered, queries
 * placed behind it); a 6-row chunk behind 170 positions (the rule: absorbed); decode
 * steps (absorbed) crossing blocks, with a fork. Every call against forward_run. */
static void prefill_case(TestCtx *t_, const char *json, uint64_t seed) {
    Pair P;
    pair_open(t_, &P, json, seed, FORWARD_OPS_ATTN_AUTO);
    const ModelConfig *c = &P.m->cfg;
    CrRng g;
    cr_rng_init(&g, seed, 5, 5);
    static int seq[MAXROWS], lr[MAXROWS];
    static int32_t pos[MAXROWS], tok[MAXROWS];
#define TOK() (int32_t)(2 + cr_rng_u64(&g) % (uint64_t)(P.V - 2))
    ForwardOpsStats s0, s1;
    /* 1: four prompts, rows grouped by sequence; logits of every prompt's last row and a
     * few inner ones */
    const int plen[NSEQ] = {1, 5, 40, 130};
    int n = 0, nl = 0;
    for (int q = 0; q < NSEQ; q++) {
        for (int p = 0; p < plen[q]; p++) seq[n] = q, pos[n] = p, tok[n] = TOK(), n++;
        lr[nl++] = n - 1;
    }
    lr[nl++] = 7, lr[nl++] = 100;
    s0 = forward_ops_stats(P.ops);
    pair_run(t_, &P, n, seq, pos, tok, lr, nl);
    s1 = forward_ops_stats(P.ops);
    CHECKF(s1.mha_calls == s0.mha_calls + 1 && s1.mha_keys - s0.mha_keys == n,
           "prompts 1/5/40/130 in one call: not the MHA form without context (%ld keys)", s1.mha_keys - s0.mha_keys);
    /* 2: continuations: sequence 2 at 40..59, sequence 3 at 130..169 */
    n = nl = 0;
    for (int p = 40; p < 60; p++) seq[n] = 2, pos[n] = p, tok[n] = TOK(), n++;
    lr[nl++] = n - 1;
    for (int p = 130; p < 170; p++) seq[n] = 3, pos[n] = p, tok[n] = TOK(), n++;
    lr[nl++] = n - 1, lr[nl++] = 0, lr[nl++] = 25;
    s0 = forward_ops_stats(P.ops);
    pair_run(t_, &P, n, seq, pos, tok, lr, nl);
    s1 = forward_ops_stats(P.ops);
    CHECKF(s1.mha_calls == s0.mha_calls + 1 && s1.mha_keys - s0.mha_keys == 60 + 170,
           "continuation chunks: not the MHA form over 230 key rows (%ld)", s1.mha_keys - s0.mha_keys);
    /* 3: a short chunk behind a long context: 6 rows, 176 keys > 8 per row -> absorbed */
    n = 0;
    for (int p = 170; p < 176; p++) seq[n] = 3, pos[n] = p, tok[n] = TOK(), n++;
    s0 = forward_ops_stats(P.ops);
    pair_run(t_, &P, n, seq, pos, tok, (const int[]){5, 2}, 2);
    s1 = forward_ops_stats(P.ops);
    CHECKF(s1.absorbed_calls == s0.absorbed_calls + 1, "a 6-row chunk at position 170 took the MHA form");
    /* 4: sequence 0 forks sequence 2 (60 positions), then decode steps of all four */
    for (int k = 0; k < 2; k++) {
        cache_seq_release(P.c[k], &P.s[k][0]);
        cache_seq_fork(P.c[k], &P.s[k][0], &P.s[k][2]);
    }
    s0 = forward_ops_stats(P.ops);
    for (int step = 0; step < 6; step++) {
        for (int q = 0; q < NSEQ; q++) seq[q] = q, pos[q] = P.s[0][q].len, tok[q] = TOK(), lr[q] = NSEQ - 1 - q;
        pair_run(t_, &P, NSEQ, seq, pos, tok, lr, NSEQ);
    }
    s1 = forward_ops_stats(P.ops);
    CHECKF(s1.mha_calls == s0.mha_calls, "decode steps took the MHA form");
#undef TOK
    double ce = pair_cache_err(&P);
    CHECKF(ce < 1e-5, "cached latent rows differ: normalised error %.3g", ce);
    ForwardOpsStats st = forward_ops_stats(P.ops);
    fprintf(stderr,
            "    %s: %ld calls (%ld MHA: %ld rows over %ld keys; %ld absorbed), logits err <= %.3g, cache rows err "
            "<= %.3g\n",
            c->q_lora_rank ? "q-LoRA" : "q_proj", P.calls, st.mha_calls, st.mha_rows, st.mha_keys, st.absorbed_calls,
            P.worst, ce);
    pair_close(t_, &P);
}

TEST(rollout_forward_ops_mha_prefill_matches_forward) {
    prefill_case(t_, k_cfg_plain, 33);
    prefill_case(t_, k_cfg_lora, 34);
}

/* ---- rollout_generate: the Ops path against the host path ---------------------------- */

static Sample *generate(TestCtx *t_, Model *m, int ops_path, int n, int G, const SampleParams *sp,
                        int32_t **pr, const int *lens, RolloutStats *st) {
    if (ops_path)
        setenv("CRUCIBLE_ROLLOUT_OPS", "1", 1);
    else
        unsetenv("CRUCIBLE_ROLLOUT_OPS");
    CrError e;
    Sample *out = calloc((size_t)n * G, sizeof *out);
    RolloutEngine *r = rollout_create(m, NULL, 2048, &e);
    CHECKF(r != NULL, "%s", e.msg);
    if (!r) return out;
    CHECKF(rollout_generate(r, (const int32_t *const *)pr, lens, n, G, sp, 0, out, &e) == 0, "%s", e.msg);
    if (st) *st = rollout_stats(r);
    rollout_free(r);
    unsetenv("CRUCIBLE_ROLLOUT_OPS");
    return out;
}

/* Prompts of 1 (absorbed), 17, 40 and 300 tokens (MHA form: the Ops path prefills a
 * prompt in one call; the host path in chunks of 256): the Ops path's rows per form are
 * asserted (the MHA form over cached context is covered by the forward_ops tests above). */
static void generate_case(TestCtx *t_, const char *json, uint64_t seed, float temperature) {
    Model *m = ref_model_new(json, seed, 0.35f);
    int n = 4, G = 3, V = m->cfg.vocab_size;
    int32_t *pr[4];
    int lens[4] = {1, 17, 40, 300};
    CrRng g;
    cr_rng_init(&g, seed, 1, 1);
    for (int p = 0; p < n; p++) {
        pr[p] = malloc(sizeof(int32_t) * lens[p]);
        for (int k = 0; k < lens[p]; k++) pr[p][k] = 2 + (int32_t)(cr_rng_u64(&g) % (uint64_t)(V - 2));
    }
    SampleParams sp = {0};
    sp.temperature = temperature;
    sp.top_k = temperature > 0 ? 20 : 0;
    sp.max_new_tokens = 30;
    sp.ignore_eos = 1;
    sp.record_experts = 1;
    sp.seed = seed;
    RolloutStats st;
    Sample *a = generate(t_, m, 0, n, G, &sp, pr, lens, NULL), *b = generate(t_, m, 1, n, G, &sp, pr, lens, &st);
    long want_mha = 17 + 40 + 300;
    CHECKF(st.attn_mha_rows == want_mha, "Ops path: %ld rows through the MHA form, expected the %ld prompt rows of "
           "prompts >= %d tokens", st.attn_mha_rows, want_mha, (int)FORWARD_OPS_MHA_MIN_RUN);
    CHECKF(st.attn_absorbed_rows == 1 + st.generated_tokens - n * G,
           "Ops path: %ld absorbed rows, expected the 1-token prompt and every decode row", st.attn_absorbed_rows);
    int n_moe = 0, K = m->cfg.num_experts_per_tok;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) n_moe += model_layer_is_moe(&m->cfg, l);
    double worst = 0;
    long tokens = 0;
    for (int i = 0; i < n * G; i++) {
        CHECKF(a[i].n_tokens == b[i].n_tokens && a[i].n_tokens == 30, "sample %d: %d vs %d tokens", i, a[i].n_tokens,
               b[i].n_tokens);
        if (FAILED()) break;
        int same = !memcmp(a[i].token_ids, b[i].token_ids, sizeof(int32_t) * a[i].n_tokens);
        CHECKF(same, "sample %d (T %g): Ops-path tokens differ from the host path", i, temperature);
        if (!same) continue;
        CHECKF(!memcmp(a[i].expert_ids, b[i].expert_ids, sizeof(int32_t) * a[i].n_tokens * n_moe * K),
               "sample %d: recorded experts differ", i);
        for (int k = 0; k < a[i].n_tokens; k++) {
            double d1 = fabs(a[i].logprobs_model[k] - b[i].logprobs_model[k]) / fmax(1.0, fabs(a[i].logprobs_model[k]));
            double d2 = fabs(a[i].logprobs[k] - b[i].logprobs[k]) / fmax(1.0, fabs(a[i].logprobs[k]));
            worst = fmax(worst, fmax(d1, d2));
        }
        tokens += a[i].n_tokens;
    }
    CHECKF(worst < 1e-4, "log-probs: Ops path vs host path max rel err %.3g", worst);
    fprintf(stderr, "    T %.1f, q-LoRA %d: %ld tokens equal, log-prob err <= %.3g (Ops path: %ld MHA-form rows, "
            "%ld absorbed)\n", temperature, m->cfg.q_lora_rank, tokens, worst, st.attn_mha_rows,
            st.attn_absorbed_rows);
    for (int i = 0; i < n * G; i++) sample_free(&a[i]), sample_free(&b[i]);
    free(a), free(b);
    for (int p = 0; p < n; p++) free(pr[p]);
    ref_model_free(m);
}

TEST(rollout_ops_path_generate_matches_host_path) {
    generate_case(t_, k_cfg_plain, 41, 0.0f);
    generate_case(t_, k_cfg_lora, 42, 0.0f);
    /* the same draws (one uniform per token per sample stream) through the Ops path */
    generate_case(t_, k_cfg_plain, 43, 1.0f);
}

/* ---- the device-sampler hook of the Ops path ----------------------------------------- */

static long g_sampled_rows;  /* rows the stand-in sampler was asked for (this test's process) */

/* A stand-in ops->sample_rows for a copy of the CPU table: greedy = lowest-id argmax;
 * otherwise the full tempered softmax inverted at the row's uniform (the host sampler's
 * rule when nothing truncates), in double. */
static void test_sample_rows(int32_t *tokens, float *logp_sampled, float *logp_model, const float *logits, int n,
                             int V, const OpsSampler *cfg, const double *uniforms) {
    for (int i = 0; i < n; i++) {
        const float *x = logits + (size_t)i * V;
        int best = 0;
        for (int k = 1; k < V; k++)
            if (x[k] > x[best]) best = k;
        double m = x[best], z = 0, lp = 0;
        for (int k = 0; k < V; k++) z += exp(x[k] - m);
        int tok = best;
        if (cfg->temperature > 0) {
            double T = cfg->temperature, s = 0, cum = 0;
            for (int k = 0; k < V; k++) s += exp((x[k] - m) / T);
            double target = uniforms[i] * s;
            tok = V - 1;
            for (int k = 0; k < V; k++)
                if (target < (cum += exp((x[k] - m) / T))) {
                    tok = k;
                    break;
                }
            lp = (x[tok] - m) / T - log(s);
        }
        tokens[i] = tok;
        logp_sampled[i] = (float)lp;
        logp_model[i] = (float)(x[tok] - m - log(z));
        g_sampled_rows++;
    }
}

static void hook_case(TestCtx *t_, float temperature) {
    Model *m = ref_model_new(k_cfg_plain, 51, 0.35f);
    static Ops table;
    table = *ops_cpu();
    table.name = "cpu+test-sampler";
    table.sample_rows = test_sample_rows;
    CrError e;
    Model *mt = model_create_ops(&m->cfg, &table, &e);
    CHECKF(mt != NULL, "%s", e.msg);
    if (!mt) return;
    memcpy(mt->params, m->params, sizeof(float) * m->n_params);
    int n = 3, G = 2, V = m->cfg.vocab_size;
    int32_t *pr[3];
    int lens[3] = {2, 9, 23};
    CrRng g;
    cr_rng_init(&g, 51, 2, 2);
    for (int p = 0; p < n; p++) {
        pr[p] = malloc(sizeof(int32_t) * lens[p]);
        for (int k = 0; k < lens[p]; k++) pr[p][k] = 2 + (int32_t)(cr_rng_u64(&g) % (uint64_t)(V - 2));
    }
    SampleParams sp = {0};
    sp.temperature = temperature;
    sp.max_new_tokens = 25;
    sp.ignore_eos = 1;
    sp.seed = 777;
    g_sampled_rows = 0;
    Sample *a = generate(t_, m, 0, n, G, &sp, pr, lens, NULL), *b = generate(t_, mt, 0, n, G, &sp, pr, lens, NULL);
    long total = 0;
    double worst = 0;
    for (int i = 0; i < n * G; i++) {
        CHECKF(a[i].n_tokens == b[i].n_tokens &&
                   !memcmp(a[i].token_ids, b[i].token_ids, sizeof(int32_t) * (size_t)a[i].n_tokens),
               "sample %d (T %g): tokens through the sampler hook differ from the host sampler's", i, temperature);
        if (a[i].n_tokens != b[i].n_tokens) continue;
        for (int k = 0; k < a[i].n_tokens; k++) {
            worst = fmax(worst, fabs(a[i].logprobs[k] - b[i].logprobs[k]));
            worst = fmax(worst, fabs(a[i].logprobs_model[k] - b[i].logprobs_model[k]));
        }
        total += b[i].n_tokens;
    }
    CHECKF(g_sampled_rows == total, "the sampler hook drew %ld tokens, the samples hold %ld", g_sampled_rows, total);
    CHECKF(worst < 1e-4, "log-probs through the hook: max abs difference %.3g", worst);
    fprintf(stderr, "    T %.1f: %ld tokens through ops->sample_rows equal the host sampler's (log-prob diff %.3g)\n",
            temperature, total, worst);
    for (int i = 0; i < n * G; i++) sample_free(&a[i]), sample_free(&b[i]);
    free(a), free(b);
    for (int p = 0; p < n; p++) free(pr[p]);
    model_free(mt);
    ref_model_free(m);
}

TEST(rollout_ops_path_uses_backend_sampler_with_stream_uniforms) {
    hook_case(t_, 0.0f);
    hook_case(t_, 1.0f);
    hook_case(t_, 0.7f);
}
