/* tests/cuda/test_rollout_cuda.c — the rollout engine's GPU path against the CPU path:
 *  - mla_cache_scatter and mla_decode_attention of ops_cuda() against the CPU ops
 *    (model/cpu/mla_cache.c) on fresh random inputs (seed printed; CRUCIBLE_TEST_SEED=n
 *    repeats one): contexts 1, 37, 1000 and 4096, shuffled block tables, two block
 *    sizes, Lite's latent width (r 512 + dr 64, 16 heads = two head groups), a head
 *    count that leaves a partial group, a latent row too wide for a full group, odd
 *    widths; then decode-attention splits of 32, 64 and 128 positions
 *    (CRUCIBLE_CUDA_MLA_SPLIT). The scattered cache must equal the CPU's bit for bit (unwritten rows
 *    included: both start from the same random cache); attention outputs are poisoned with NaN before the CUDA call and
 *    must agree within a normalised error of 1e-5.
 *  - rollout_generate on a tiny model held by ops_cuda() (the Ops path: forward_ops.c,
 *    cache in device memory, ops->sample_rows when the table has one) against the same
 *    weights on ops_cpu() (the host path): greedy tokens and recorded experts equal,
 *    model log-probs within 1e-4; and one sampled (T = 1, top-k) run, same draws. The
 *    longest prompt (300..399 tokens) is prefilled in the MHA form of forward_ops.h
 *    (ops->attention_forward), asserted from the engine's stats; decode runs the absorbed
 *    form; the CPU side is the host path (forward.c, absorbed, chunks of 256).
 *    cuda_rollout_matches_cpu_moe_indexed: the same under CRUCIBLE_CUDA_MOE_SMALL=indexed
 *    (the routed experts of prefill and decode through model/cuda/moe_indexed.cu).
 *    cuda_rollout_graphs_match_direct: the GPU engine with recorded decode steps (CUDA
 *    graphs, CRUCIBLE_CUDA_GRAPHS=1) against itself without, bit for bit, steps replayed.
 *    cuda_rollout_decode_bf16: the decode kernels on bf16 weight copies
 *    (CRUCIBLE_CUDA_DECODE_BF16=1) against fp32 reads of the same (bf16-exact) weights, bit
 *    for bit, with and without CUDA graphs, and after a weight update under one engine;
 *    on unrounded weights the copies change the samples, graphs reproduce them; a
 *    recorded step that read a copy is refused after the weights change.
 *  - forward_ops_run on ops_cuda() against forward_ops_run on ops_cpu() (same calls, same
 *    weights), under the rule and with each attention form forced: prompts of 1, 5, 40
 *    and 130 tokens in one call, continuations over cached context (MHA form: context
 *    gathered from the device cache, queries placed behind it), decode steps with a fork
 *    (absorbed form reading what the MHA form cached); logits (poisoned first) and every
 *    cached row within a normalised error of 1e-5.
 * Without a GPU every test SKIPs saying it was not run on a GPU. */
#include "tests/test.h"

#ifdef CRUCIBLE_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "model/cuda/ops_cuda.h"
#include "model/model.h"
#include "model/ops.h"
#include "tests/cuda/buffers.h"
#include "tests/rollout/forward_twin.h"
#include "tests/rollout/generate.h"
#include "rollout/forward_ops.h"
#include "rollout/kv_cache.h"
#include "rollout/rollout.h"



/* ---- the cache ops ---------------------------------------------------------------- */

/* n rows, row 0 with the full context ctx, the others random shorter ones; each row
 * owns blocks dealt from a random permutation. One scatter of every row's newest
 * position, then attention of every row over its context. */
static void cache_case(TestCtx *t_, CrRng *g, int n, int ctx, int H, int r, int dr, int bt) {
    const Ops *cpu = ops_cpu(), *gpu = ops_cuda();
    int rw = r + dr, L = 2, layer = 1;
    int32_t *pos = malloc(sizeof(int32_t) * n);
    for (int i = 0; i < n; i++) pos[i] = i == 0 ? ctx - 1 : (int32_t)(cr_rng_u64(g) % (uint64_t)ctx);
    int maxb = (ctx + bt - 1) / bt, n_blocks = n * maxb + 3;  /* a few blocks nobody owns */
    int32_t *perm = malloc(sizeof(int32_t) * n_blocks);
    for (int b = 0; b < n_blocks; b++) perm[b] = b;
    for (int b = n_blocks - 1; b > 0; b--) {
        int k = (int)(cr_rng_u64(g) % (uint64_t)(b + 1));
        int32_t x = perm[b];
        perm[b] = perm[k];
        perm[k] = x;
    }
    int32_t *table = malloc(sizeof(int32_t) * n * maxb);
    memcpy(table, perm, sizeof(int32_t) * n * maxb);
    size_t cn = (size_t)n_blocks * L * bt * rw;
    float *cache = malloc(sizeof(float) * cn), *back = malloc(sizeof(float) * cn);
    for (size_t k = 0; k < cn; k++) cache[k] = (float)cr_rng_normal(g);
    float *src = malloc(sizeof(float) * n * rw);
    for (int k = 0; k < n * rw; k++) src[k] = (float)cr_rng_normal(g);
    float *dcache = test_dput(gpu, cache, sizeof(float) * cn), *dsrc = test_dput(gpu, src, sizeof(float) * n * rw);
    int32_t *dtable = test_dput(gpu, table, sizeof(int32_t) * n * maxb), *dpos = test_dput(gpu, pos, sizeof(int32_t) * n);
    cpu->mla_cache_scatter(cache, table, maxb, L, layer, bt, rw, src, pos, n);
    gpu->mla_cache_scatter(dcache, dtable, maxb, L, layer, bt, rw, dsrc, dpos, n);
    gpu->download(back, dcache, sizeof(float) * cn);
    size_t diff = 0;
    for (size_t k = 0; k < cn; k++) diff += memcmp(&back[k], &cache[k], sizeof(float)) != 0;
    CHECKF(diff == 0, "mla_cache_scatter ctx %d: %zu of %zu cache floats differ from the CPU op", ctx, diff, cn);

    float scale = 0.02f + 0.1f * (float)cr_rng_uniform(g);
    size_t nq = (size_t)n * H * rw, no = (size_t)n * H * r;
    float *qa = malloc(sizeof(float) * nq), *ref = malloc(sizeof(float) * no), *got = malloc(sizeof(float) * no);
    for (size_t k = 0; k < nq; k++) qa[k] = (float)cr_rng_normal(g);
    for (size_t k = 0; k < no; k++) got[k] = NAN;
    float *dqa = test_dput(gpu, qa, sizeof(float) * nq), *dout = test_dput(gpu, got, sizeof(float) * no);  /* poisoned */
    cpu->mla_decode_attention(ref, qa, cache, table, maxb, L, layer, bt, pos, n, H, r, dr, scale);
    gpu->mla_decode_attention(dout, dqa, dcache, dtable, maxb, L, layer, bt, dpos, n, H, r, dr, scale);
    gpu->download(got, dout, sizeof(float) * no);
    double err = test_rel_err(got, ref, no);
    CHECKF(err <= 1e-5, "mla_decode_attention ctx %d n %d H %d r %d dr %d block %d: normalised error %.3g", ctx, n,
           H, r, dr, bt, err);
    fprintf(stderr, "    ctx %4d n %d H %2d r %3d dr %2d block %2d: scatter diffs %zu, attention err %.3g\n", ctx, n,
            H, r, dr, bt, diff, err);
    gpu->free(dcache), gpu->free(dsrc), gpu->free(dtable), gpu->free(dpos), gpu->free(dqa), gpu->free(dout);
    free(pos), free(perm), free(table), free(cache), free(back), free(src), free(qa), free(ref), free(got);
}

static void body_cuda_rollout_mla_cache_ops(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: not run on a GPU");
    CrRng g;
    cr_rng_init(&g, test_random_seed("cuda_rollout_mla_cache_ops"), 0x3A7, 0);
    cache_case(t_, &g, 1, 1, 3, 20, 6, 5);
    cache_case(t_, &g, 4, 37, 3, 20, 6, 5);
    cache_case(t_, &g, 4, 37, 16, 512, 64, 16);
    cache_case(t_, &g, 3, 1000, 16, 512, 64, 16);
    cache_case(t_, &g, 5, 1000, 11, 33, 7, 7);  /* widths not multiples of a warp; heads 8 + 3 */
    cache_case(t_, &g, 2, 37, 6, 2048, 64, 16); /* a row too wide for 8 heads' shared memory */
    cache_case(t_, &g, 2, 4096, 16, 512, 64, 16);
    /* shorter decode-attention splits (CRUCIBLE_CUDA_MLA_SPLIT, opt-in) */
    static const char *const splits[3] = {"32", "64", "128"};
    for (int k = 0; k < 3; k++) {
        CHECK(setenv("CRUCIBLE_CUDA_MLA_SPLIT", splits[k], 1) == 0);
        fprintf(stderr, "    CRUCIBLE_CUDA_MLA_SPLIT=%s\n", splits[k]);
        cache_case(t_, &g, 4, 37, 16, 512, 64, 16);
        cache_case(t_, &g, 3, 1000, 16, 512, 64, 16);
        cache_case(t_, &g, 5, 1000, 11, 33, 7, 7);
    }
    CHECK(unsetenv("CRUCIBLE_CUDA_MLA_SPLIT") == 0);
}

/* ---- rollout on the GPU vs the CPU ---------------------------------------------------- */

/* q-LoRA, group-limited routing, YaRN, shared experts: the most paths at once. */
static const char k_cfg[] =
    "{\"model_type\":\"deepseek_v2\",\"vocab_size\":80,\"hidden_size\":32,\"num_hidden_layers\":3,"
    "\"num_attention_heads\":4,\"q_lora_rank\":24,\"kv_lora_rank\":12,\"qk_nope_head_dim\":6,"
    "\"qk_rope_head_dim\":4,\"v_head_dim\":5,\"intermediate_size\":36,\"moe_intermediate_size\":12,"
    "\"n_routed_experts\":8,\"n_shared_experts\":2,\"num_experts_per_tok\":3,\"first_k_dense_replace\":1,"
    "\"topk_method\":\"group_limited_greedy\",\"n_group\":4,\"topk_group\":2,\"routed_scaling_factor\":2.5,"
    "\"max_position_embeddings\":512,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4,"
    "\"original_max_position_embeddings\":64,\"beta_fast\":32,\"beta_slow\":1,\"mscale\":0.707,"
    "\"mscale_all_dim\":0.707},\"bos_token_id\":0,\"eos_token_id\":1}";

/* The 3 prompts of the rollout tests: 1 token, 1..40, and 300..399 (prefilled in the MHA
 * form), random ids past the special ones; the caller frees pr[0..3). */
static void random_prompts(CrRng *g, int V, int32_t *pr[3], int lens[3]) {
    lens[0] = 1, lens[1] = 1 + (int)(cr_rng_u64(g) % 40), lens[2] = 300 + (int)(cr_rng_u64(g) % 100);
    for (int p = 0; p < 3; p++) {
        pr[p] = malloc(sizeof(int32_t) * lens[p]);
        for (int k = 0; k < lens[p]; k++) pr[p][k] = 2 + (int32_t)(cr_rng_u64(g) % (uint64_t)(V - 2));
    }
}

static void generate_case(TestCtx *t_, Model *mc, Model *mg, CrRng *g, float temperature) {
    int n = 3, G = 2, K = mc->cfg.num_experts_per_tok, n_moe = 0;
    for (int l = 0; l < mc->cfg.num_hidden_layers; l++) n_moe += model_layer_is_moe(&mc->cfg, l);
    int32_t *pr[3];
    int lens[3];
    random_prompts(g, mc->cfg.vocab_size, pr, lens);
    SampleParams sp = {0};
    sp.temperature = temperature;
    sp.top_k = temperature > 0 ? 20 : 0;
    sp.max_new_tokens = 40;
    sp.ignore_eos = 1;
    sp.record_experts = 1;
    sp.seed = cr_rng_u64(g);
    RolloutStats st;
    Sample *a = test_generate(t_, mc, 4096, n, G, &sp, pr, lens, NULL),
           *b = test_generate(t_, mg, 4096, n, G, &sp, pr, lens, &st);
    CHECKF(st.attn_mha_rows >= lens[2], "GPU prefill: %ld rows through the MHA form, fewer than the %d-token prompt",
           st.attn_mha_rows, lens[2]);
    double worst = 0;
    long equal = 0;
    for (int i = 0; i < n * G; i++) {
        CHECKF(a[i].n_tokens == b[i].n_tokens, "sample %d: %d tokens on the CPU, %d on the GPU", i, a[i].n_tokens,
               b[i].n_tokens);
        if (a[i].n_tokens != b[i].n_tokens) continue;
        int same = !memcmp(a[i].token_ids, b[i].token_ids, sizeof(int32_t) * a[i].n_tokens);
        CHECKF(same, "sample %d (T %g): GPU tokens differ from the CPU's", i, temperature);
        if (!same) continue;
        CHECKF(!memcmp(a[i].expert_ids, b[i].expert_ids, sizeof(int32_t) * a[i].n_tokens * n_moe * K),
               "sample %d: recorded experts differ", i);
        for (int k = 0; k < a[i].n_tokens; k++) {
            worst = fmax(worst, fabs(a[i].logprobs_model[k] - b[i].logprobs_model[k]) /
                                    fmax(1.0, fabs(a[i].logprobs_model[k])));
            worst = fmax(worst, fabs(a[i].logprobs[k] - b[i].logprobs[k]) / fmax(1.0, fabs(a[i].logprobs[k])));
        }
        equal += a[i].n_tokens;
    }
    CHECKF(worst <= 1e-4, "log-probs GPU vs CPU: max rel err %.3g", worst);
    fprintf(stderr, "    T %.1f: %ld tokens equal (prompts %d, %d, %d; %ld MHA-form prefill rows), log-prob err %.3g%s\n",
            temperature, equal, lens[0], lens[1], lens[2], st.attn_mha_rows, worst,
            mg->ops->sample_rows ? "" : " (host sampler: no device sample_rows)");
    for (int i = 0; i < n * G; i++) sample_free(&a[i]), sample_free(&b[i]);
    free(a), free(b);
    for (int p = 0; p < n; p++) free(pr[p]);
}

/* The tiny model k_cfg on the CPU (*mc) and on ops_cuda() (*mg) with the same random
 * weights, larger than the initializer's so greedy choices have clear margins. 0, or -1
 * (test failed) when either could not be made. */
static int model_pair(TestCtx *t_, CrRng *g, Model **mc, Model **mg) {
    ModelConfig cfg;
    CrError e;
    CHECKF(model_config_parse(&cfg, k_cfg, "test config", &e) == 0, "%s", e.msg);
    *mc = model_create(&cfg, &e);
    *mg = model_create_ops(&cfg, ops_cuda(), &e);
    CHECK(*mc && *mg);
    if (!*mc || !*mg) return -1;
    for (int i = 0; i < (*mc)->n_tensors; i++) {
        ParamTensor *pt = &(*mc)->tensors[i];
        float *p = (*mc)->params + pt->offset;
        for (size_t k = 0; k < pt->numel; k++)
            p[k] = pt->ndim == 1 ? (float)(1.0 + 0.2 * cr_rng_normal(g)) : (float)(0.35 * cr_rng_normal(g));
    }
    (*mg)->ops->upload((*mg)->params, (*mc)->params, sizeof(float) * (*mc)->n_params);
    return 0;
}

static void body_cuda_rollout_matches_cpu(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: not run on a GPU");
    CrRng g;
    cr_rng_init(&g, test_random_seed("cuda_rollout_matches_cpu"), 0x5A3, 0);
    Model *mc, *mg;
    if (model_pair(t_, &g, &mc, &mg)) return;
    generate_case(t_, mc, mg, &g, 0.0f);
    generate_case(t_, mc, mg, &g, 1.0f);
    model_free(mc);
    model_free(mg);
}

/* The same with CRUCIBLE_CUDA_MOE_SMALL=indexed (model/cuda/moe_indexed.cu): model.c's
 * threshold becomes 4096 slots, so the prefill of the 300..399-token prompt also takes
 * the indexed op (hundreds of rows), decode its few rows. */
static void body_cuda_rollout_matches_cpu_moe_indexed(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: the indexed MoE path NOT run on a GPU");
    CrRng g;
    cr_rng_init(&g, test_random_seed("cuda_rollout_matches_cpu_moe_indexed"), 0x5A4, 0);
    Model *mc, *mg;
    if (model_pair(t_, &g, &mc, &mg)) return;
    CHECK(setenv("CRUCIBLE_CUDA_MOE_SMALL", "indexed", 1) == 0);
    CHECK(unsetenv("CRUCIBLE_MOE_SMALL_SLOTS") == 0); /* an override would send prefill to the dispatch */
    CHECK(mg->ops->moe_experts_small_slots && mg->ops->moe_experts_small_slots() == 4096);
    generate_case(t_, mc, mg, &g, 0.0f);
    generate_case(t_, mc, mg, &g, 1.0f);
    unsetenv("CRUCIBLE_CUDA_MOE_SMALL");
    model_free(mc);
    model_free(mg);
}

/* x rounded to the nearest bf16 (ties to even; finite x), as model/cuda/bf16_round.cuh. */
static float round_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    memcpy(&x, &u, sizeof u);
    return x;
}

/* Samples a[0..n) and b[0..n) equal bit for bit (tokens, both log-probs); the count that differ. */
static int samples_differ(const Sample *a, const Sample *b, int n) {
    int bad = 0;
    for (int i = 0; i < n; i++) {
        size_t T = (size_t)a[i].n_tokens;
        bad += a[i].n_tokens != b[i].n_tokens || !a[i].n_tokens ||
               memcmp(a[i].token_ids, b[i].token_ids, sizeof(int32_t) * T) ||
               memcmp(a[i].logprobs, b[i].logprobs, sizeof(float) * T) ||
               memcmp(a[i].logprobs_model, b[i].logprobs_model, sizeof(float) * T);
    }
    return bad;
}

static void free_samples(Sample *a, int n) {
    for (int i = 0; i < n; i++) sample_free(&a[i]);
    free(a);
}

/* Recorded decode steps (CRUCIBLE_CUDA_GRAPHS=1, model/cuda/graph.cu): the GPU engine
 * with CUDA graphs against the same GPU engine without, bit for bit (same kernels, same
 * order: a replayed step must compute what the direct calls compute), greedy and sampled,
 * experts recorded; steps must actually replay. */
static void body_cuda_rollout_graphs_match_direct(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: CUDA graphs (recorded steps) NOT run on a GPU");
    CrRng g;
    cr_rng_init(&g, test_random_seed("cuda_rollout_graphs_match_direct"), 0x5A5, 0);
    Model *mc, *mg;
    if (model_pair(t_, &g, &mc, &mg)) return;
    int n = 3, G = 2;
    int32_t *pr[3];
    int lens[3];
    random_prompts(&g, mc->cfg.vocab_size, pr, lens);
    for (int k = 0; k < 2; k++) {
        SampleParams sp = {0};
        sp.temperature = k ? 1.0f : 0.0f;
        sp.top_p = k ? 0.9f : 1.0f;
        sp.max_new_tokens = 100;  /* within k_cfg's 512 positions */
        sp.ignore_eos = 1;
        sp.record_experts = 1;
        sp.seed = cr_rng_u64(&g);
        RolloutStats s0, s1;
        CHECK(unsetenv("CRUCIBLE_CUDA_GRAPHS") == 0);
        Sample *a = test_generate(t_, mg, 8192, n, G, &sp, pr, lens, &s0);
        CHECK(setenv("CRUCIBLE_CUDA_GRAPHS", "1", 1) == 0);
        CHECK(mg->ops->step_enabled && mg->ops->step_enabled() == 1);
        Sample *b = test_generate(t_, mg, 8192, n, G, &sp, pr, lens, &s1);
        CHECK(unsetenv("CRUCIBLE_CUDA_GRAPHS") == 0);
        int bad = samples_differ(a, b, n * G);
        CHECKF(bad == 0, "T %d: %d of %d samples differ with CUDA graphs", k, bad, n * G);
        CHECKF(s0.step_replays == 0 && s1.step_records >= 1 && s1.step_replays >= s1.decode_steps / 2,
               "T %d: %ld of %ld decode steps replayed (%ld recorded; %ld without graphs)", k, s1.step_replays,
               s1.decode_steps, s1.step_records, s0.step_replays);
        fprintf(stderr, "    T %d: %d samples equal; %ld decode steps, %ld recorded, %ld replayed; decode %.3f s "
                "direct, %.3f s with graphs\n", k, n * G, s1.decode_steps, s1.step_records, s1.step_replays,
                s0.decode_s, s1.decode_s);
        free_samples(a, n * G);
        free_samples(b, n * G);
    }
    for (int p = 0; p < n; p++) free(pr[p]);
    model_free(mc);
    model_free(mg);
}

/* The decode_bf16 tests' inputs: random_prompts and sampling at temperature 1 (top_p as
 * given, EOS ignored) for max_new tokens, seeded from g. */
static SampleParams bf16_case_inputs(CrRng *g, int V, int32_t *pr[3], int lens[3], float top_p, int max_new) {
    random_prompts(g, V, pr, lens);
    SampleParams sp = {0};
    sp.temperature = 1.0f;
    sp.top_p = top_p;
    sp.max_new_tokens = max_new;
    sp.ignore_eos = 1;
    sp.seed = cr_rng_u64(g);
    unsetenv("CRUCIBLE_CUDA_DECODE_BF16");
    unsetenv("CRUCIBLE_CUDA_GRAPHS");
    return sp;
}

/* The decode kernels on bf16 weight copies (CRUCIBLE_CUDA_DECODE_BF16=1, param_shadow.cu):
 * on weights that bf16 holds exactly (rounded first), the copies are the weights, so the
 * engine must produce what it produces without them, bit for bit (the same kernels read
 * the same values: model/cuda/weight_load.cuh), with copies actually read; also with
 * recorded steps (CUDA graphs), and after the weights change under one engine (scaled by
 * 0.5 through the table: the copies turn stale, recorded steps must not replay old
 * copies) against a fresh direct engine on the new weights. Once with the default routed
 * experts (slots kernels at these sizes) and once with CRUCIBLE_CUDA_MOE_SMALL=indexed. */
static void decode_bf16_case(TestCtx *t_, Model *mg, const float *rounded, CrRng *g, const char *moe) {
    mg->ops->upload(mg->params, rounded, sizeof(float) * mg->n_params);
    CHECK(setenv("CRUCIBLE_CUDA_MOE_SMALL", moe, 1) == 0);
    int n = 3, G = 2, N = n * G;
    int32_t *pr[3];
    int lens[3];
    SampleParams sp = bf16_case_inputs(g, mg->cfg.vocab_size, pr, lens, 0.9f, 60);
    Sample *ref = test_generate(t_, mg, 8192, n, G, &sp, pr, lens, NULL);
    CrError e;
    RolloutEngine *r = rollout_create(mg, NULL, 8192, &e);
    CHECKF(r != NULL, "%s", e.msg);
    if (r) {
        CHECK(setenv("CRUCIBLE_CUDA_DECODE_BF16", "1", 1) == 0);
        long reads0 = ops_cuda_decode_bf16_reads();
        Sample *b = cr_calloc((size_t)N, sizeof *b);
        CHECKF(rollout_generate(r, (const int32_t *const *)pr, lens, n, G, &sp, 0, b, &e) == 0, "%s", e.msg);
        long reads = ops_cuda_decode_bf16_reads() - reads0;
        int bad = samples_differ(ref, b, N);
        CHECKF(bad == 0, "%s: bf16 copies: %d of %d samples differ from the fp32 reads of the same values", moe, bad,
               N);
        CHECKF(reads > 0, "%s: bf16 copies: no decode kernel read one", moe);
        free_samples(b, N);
        /* with recorded steps too */
        CHECK(setenv("CRUCIBLE_CUDA_GRAPHS", "1", 1) == 0);
        RolloutStats s0 = rollout_stats(r), s1;
        reads0 = ops_cuda_decode_bf16_reads();
        b = cr_calloc((size_t)N, sizeof *b);
        CHECKF(rollout_generate(r, (const int32_t *const *)pr, lens, n, G, &sp, 0, b, &e) == 0, "%s", e.msg);
        s1 = rollout_stats(r);
        bad = samples_differ(ref, b, N);
        CHECKF(bad == 0, "%s: bf16 copies + CUDA graphs: %d of %d samples differ", moe, bad, N);
        CHECKF(s1.step_replays > s0.step_replays, "%s: bf16 copies + CUDA graphs: no step replayed", moe);
        CHECKF(ops_cuda_decode_bf16_reads() > reads0, "%s: bf16 copies + CUDA graphs: no copy read", moe);
        free_samples(b, N);
        /* new weights under the same engine (each generate allocates its buffers anew, so
         * its steps are recorded again anyway: decode_bf16_step_refused checks a kept one) */
        mg->ops->scale(mg->params, 0.5f, mg->n_params);
        b = cr_calloc((size_t)N, sizeof *b);
        CHECKF(rollout_generate(r, (const int32_t *const *)pr, lens, n, G, &sp, 0, b, &e) == 0, "%s", e.msg);
        CHECK(unsetenv("CRUCIBLE_CUDA_DECODE_BF16") == 0 && unsetenv("CRUCIBLE_CUDA_GRAPHS") == 0);
        Sample *ref2 = test_generate(t_, mg, 8192, n, G, &sp, pr, lens, NULL);
        CHECKF(samples_differ(ref, ref2, N) > 0, "the scaled weights changed no sample: the check below is blind");
        bad = samples_differ(ref2, b, N);
        CHECKF(bad == 0, "%s: after a weight update: %d of %d samples differ from a direct engine (stale copies?)",
               moe, bad, N);
        fprintf(stderr, "    experts %s: %d samples x %d tokens equal with bf16 copies (%ld copy reads), with CUDA "
                "graphs (%ld steps replayed), and after a weight update\n", moe, N, sp.max_new_tokens, reads,
                s1.step_replays - s0.step_replays);
        free_samples(b, N);
        free_samples(ref2, N);
        rollout_free(r);
    }
    unsetenv("CRUCIBLE_CUDA_DECODE_BF16");
    unsetenv("CRUCIBLE_CUDA_GRAPHS");
    unsetenv("CRUCIBLE_CUDA_MOE_SMALL");
    free_samples(ref, N);
    for (int p = 0; p < n; p++) free(pr[p]);
}

/* On weights bf16 does not hold exactly: the copies change the samples (they are read),
 * and recorded steps (CUDA graphs) reproduce the direct calls on the copies bit for bit. */
static void decode_bf16_unrounded(TestCtx *t_, Model *mg, CrRng *g) {
    int n = 3, G = 2, N = n * G;
    int32_t *pr[3];
    int lens[3];
    SampleParams sp = bf16_case_inputs(g, mg->cfg.vocab_size, pr, lens, 1.0f, 40);
    Sample *f32 = test_generate(t_, mg, 8192, n, G, &sp, pr, lens, NULL);
    CHECK(setenv("CRUCIBLE_CUDA_DECODE_BF16", "1", 1) == 0);
    Sample *a = test_generate(t_, mg, 8192, n, G, &sp, pr, lens, NULL);
    CHECK(setenv("CRUCIBLE_CUDA_GRAPHS", "1", 1) == 0);
    long reads0 = ops_cuda_decode_bf16_reads();
    RolloutStats st;
    Sample *b = test_generate(t_, mg, 8192, n, G, &sp, pr, lens, &st);
    long reads = ops_cuda_decode_bf16_reads() - reads0;
    CHECKF(samples_differ(f32, a, N) > 0, "unrounded weights: the bf16 copies changed no sample (not read?)");
    int bad = samples_differ(a, b, N);
    CHECKF(bad == 0, "unrounded weights: %d of %d samples differ between direct and recorded steps on the copies", bad,
           N);
    CHECKF(st.step_replays > 0 && reads > 0, "unrounded weights + CUDA graphs: %ld steps replayed, %ld copy reads",
           st.step_replays, reads);
    unsetenv("CRUCIBLE_CUDA_DECODE_BF16");
    unsetenv("CRUCIBLE_CUDA_GRAPHS");
    free_samples(f32, N), free_samples(a, N), free_samples(b, N);
    for (int p = 0; p < n; p++) free(pr[p]);
}

/* A recorded step that read a copy is refused once the weights change (the copy turned
 * stale: param_shadow.cu moves the epoch), and the next direct call reads the refreshed
 * copy: y = x W^T of one row (the GEMV) on the model's first matrix, weights halved. */
static void decode_bf16_step_refused(TestCtx *t_, Model *mg, CrRng *g) {
    const Ops *o = mg->ops;
    const ParamTensor *pt = NULL;
    for (int i = 0; i < mg->n_tensors && !pt; i++)
        if (mg->tensors[i].ndim == 2) pt = &mg->tensors[i];
    CHECK(pt != NULL);
    if (!pt) return;
    int out = (int)pt->shape[0], K = (int)pt->shape[1];
    const float *W = mg->params + pt->offset;
    float *hx = malloc(sizeof(float) * K), *y0 = malloc(sizeof(float) * out), *y1 = malloc(sizeof(float) * out);
    for (int k = 0; k < K; k++) hx[k] = (float)cr_rng_normal(g);
    float *x = o->alloc(sizeof(float) * K), *y = o->alloc(sizeof(float) * out);
    o->upload(x, hx, sizeof(float) * K);
    CHECK(setenv("CRUCIBLE_CUDA_DECODE_BF16", "1", 1) == 0 && setenv("CRUCIBLE_CUDA_GRAPHS", "1", 1) == 0);
    o->gemm(0, 1, 1, out, K, 1.0f, x, K, W, K, 0.0f, y, out);  /* direct: makes the copy */
    o->download(y0, y, sizeof(float) * out);
    long reads0 = ops_cuda_decode_bf16_reads();
    CHECK(o->step_record_begin && o->step_record_begin() == 0);
    o->gemm(0, 1, 1, out, K, 1.0f, x, K, W, K, 0.0f, y, out);
    void *step = o->step_record_end();
    CHECKF(step != NULL && ops_cuda_decode_bf16_reads() > reads0, "the recorded GEMV did not read the fresh copy");
    if (step) {
        o->zero(y, sizeof(float) * out);
        CHECK(o->step_launch(step) == 0);
        o->download(y1, y, sizeof(float) * out);
        CHECK(!memcmp(y0, y1, sizeof(float) * out));
        o->scale(mg->params, 0.5f, mg->n_params);
        CHECKF(o->step_launch(step) == -1, "a recorded step replayed after the weights it read changed");
        o->gemm(0, 1, 1, out, K, 1.0f, x, K, W, K, 0.0f, y, out);
        o->download(y1, y, sizeof(float) * out);
        int bad = 0;  /* halving every weight halves each product and sum exactly */
        for (int j = 0; j < out; j++) bad += y1[j] != 0.5f * y0[j];
        CHECKF(bad == 0, "after the update: %d of %d outputs are not half the old ones (stale copy?)", bad, out);
        o->step_free(step);
    }
    unsetenv("CRUCIBLE_CUDA_DECODE_BF16");
    unsetenv("CRUCIBLE_CUDA_GRAPHS");
    o->free(x), o->free(y);
    free(hx), free(y0), free(y1);
}

static void body_cuda_rollout_decode_bf16(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0)
        SKIP("no CUDA device visible: decode on bf16 weight copies NOT run on a GPU");
    CrRng g;
    cr_rng_init(&g, test_random_seed("cuda_rollout_decode_bf16"), 0x5A6, 0);
    Model *mc, *mg;
    if (model_pair(t_, &g, &mc, &mg)) return;
    decode_bf16_unrounded(t_, mg, &g);
    for (size_t i = 0; i < mc->n_params; i++) mc->params[i] = round_bf16(mc->params[i]);
    decode_bf16_case(t_, mg, mc->params, &g, "auto");
    decode_bf16_case(t_, mg, mc->params, &g, "indexed");
    decode_bf16_step_refused(t_, mg, &g);
    model_free(mc);
    model_free(mg);
}

/* ---- forward_ops_run on the GPU vs on the CPU, per attention form ---------------------- */

enum { FMAXN = 256, FSEQ = 4 };

/* One call of both engines (ops_cpu() and ops_cuda(), tests/rollout/forward_twin.h): the
 * GPU logits within 1e-5 (normalised) of the CPU's. */
static void ftwin_call(TestCtx *t_, FwdTwin *w, double *worst, int n, const int *seq, const int32_t *pos,
                       const int32_t *tok, const int *lr, int nl) {
    int calls = w->calls;
    fwd_twin_run(w, n, seq, pos, tok, lr, nl);
    double err = test_rel_err(w->back, w->host, (size_t)nl * w->m[0]->cfg.vocab_size);
    if (err > *worst) *worst = err;
    CHECKF(err <= 1e-5, "call %d (%d rows): GPU logits normalised error %.3g", calls, n, err);
}

/* Every cached row of every sequence: the device cache against the CPU one. */
static double ftwin_cache_err(FwdTwin *w) {
    LatentCache *cc = w->c[0], *cg = w->c[1];
    size_t nf = (size_t)cc->n_blocks * cc->n_layers * cc->block_tokens * cc->row;
    float *g = malloc(sizeof(float) * nf);
    w->m[1]->ops->download(g, cg->data, sizeof(float) * nf);
    double worst = 0;
    for (int q = 0; q < FSEQ; q++)
        for (int l = 0; l < cc->n_layers; l++)
            for (int p = 0; p < w->s[0][q].len; p++) {
                const float *a = cache_row(cc, &w->s[0][q], l, p);
                const float *b = g + (cache_row(cg, &w->s[1][q], l, p) - cg->data);  /* offset only */
                double e = test_rel_err(b, a, (size_t)cc->row);
                if (e > worst) worst = e;
            }
    free(g);
    return worst;
}

static void forms_case(TestCtx *t_, Model *mc, Model *mg, CrRng *g, ForwardOpsAttention mode) {
    FwdTwin w;
    double worst = 0;
    int V = mc->cfg.vocab_size;
    CrError e;
    int ok = fwd_twin_open(&w, mc, mg, FSEQ, FMAXN, 640, mode, &e) == 0;
    CHECKF(ok, "%s", e.msg);
    if (!ok) { fwd_twin_close(&w); return; }
    static int seq[FMAXN], lr[FMAXN];
    static int32_t pos[FMAXN], tok[FMAXN];
#define TOK() (int32_t)(2 + cr_rng_u64(g) % (uint64_t)(V - 2))
    const int plen[FSEQ] = {1, 5, 40, 130};
    int n = 0, nl = 0;
    for (int q = 0; q < FSEQ; q++) {
        for (int p = 0; p < plen[q]; p++) seq[n] = q, pos[n] = p, tok[n] = TOK(), n++;
        lr[nl++] = n - 1;
    }
    lr[nl++] = 7, lr[nl++] = 100;
    ftwin_call(t_, &w, &worst, n, seq, pos, tok, lr, nl);
    n = nl = 0;
    for (int p = 40; p < 60; p++) seq[n] = 2, pos[n] = p, tok[n] = TOK(), n++;
    lr[nl++] = n - 1;
    for (int p = 130; p < 170; p++) seq[n] = 3, pos[n] = p, tok[n] = TOK(), n++;
    lr[nl++] = n - 1, lr[nl++] = 0;
    ftwin_call(t_, &w, &worst, n, seq, pos, tok, lr, nl);
    for (int k = 0; k < 2; k++) { /* sequence 0 forks sequence 2 */
        cache_seq_release(w.c[k], &w.s[k][0]);
        cache_seq_fork(w.c[k], &w.s[k][0], &w.s[k][2]);
    }
    for (int step = 0; step < 6; step++) {
        for (int q = 0; q < FSEQ; q++) seq[q] = q, pos[q] = w.s[0][q].len, tok[q] = TOK(), lr[q] = FSEQ - 1 - q;
        ftwin_call(t_, &w, &worst, FSEQ, seq, pos, tok, lr, FSEQ);
    }
#undef TOK
    double ce = ftwin_cache_err(&w);
    CHECKF(ce <= 1e-5, "cached latent rows: GPU vs CPU normalised error %.3g", ce);
    ForwardOpsStats a = forward_ops_stats(w.f[0]), b = forward_ops_stats(w.f[1]);
    CHECKF(a.mha_calls == b.mha_calls && a.mha_keys == b.mha_keys, "the GPU and CPU engines chose different forms");
    if (mode != FORWARD_OPS_ATTN_ABSORBED) CHECKF(b.mha_calls >= 2, "the prefill calls did not take the MHA form");
    fprintf(stderr, "    %s: %d calls, logits err <= %.3g, cache err %.3g (%ld MHA-form calls over %ld keys, %ld absorbed)\n",
            mode == FORWARD_OPS_ATTN_AUTO ? "rule" : mode == FORWARD_OPS_ATTN_MHA ? "MHA form" : "absorbed", w.calls,
            worst, ce, b.mha_calls, b.mha_keys, b.absorbed_calls);
    fwd_twin_close(&w);
}

static void body_cuda_rollout_forward_ops_forms(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: not run on a GPU");
    CrRng g;
    cr_rng_init(&g, test_random_seed("cuda_rollout_forward_ops_forms"), 0x5A4, 0);
    Model *mc, *mg;
    if (model_pair(t_, &g, &mc, &mg)) return;
    forms_case(t_, mc, mg, &g, FORWARD_OPS_ATTN_AUTO);
    forms_case(t_, mc, mg, &g, FORWARD_OPS_ATTN_MHA);
    forms_case(t_, mc, mg, &g, FORWARD_OPS_ATTN_ABSORBED);
    model_free(mc);
    model_free(mg);
}

#endif

#ifdef CRUCIBLE_CUDA
#define CUDA_BODY(name) body_##name(t_)
#else
#define CUDA_BODY(name) SKIP("CUDA backend not built (no nvcc at build time, or NO_CUDA=1): not run on a GPU")
#endif
TEST(cuda_rollout_mla_cache_ops) { CUDA_BODY(cuda_rollout_mla_cache_ops); }
TEST(cuda_rollout_matches_cpu) { CUDA_BODY(cuda_rollout_matches_cpu); }
TEST(cuda_rollout_matches_cpu_moe_indexed) { CUDA_BODY(cuda_rollout_matches_cpu_moe_indexed); }
TEST(cuda_rollout_graphs_match_direct) { CUDA_BODY(cuda_rollout_graphs_match_direct); }
TEST(cuda_rollout_forward_ops_forms) { CUDA_BODY(cuda_rollout_forward_ops_forms); }
TEST(cuda_rollout_decode_bf16) { CUDA_BODY(cuda_rollout_decode_bf16); }
