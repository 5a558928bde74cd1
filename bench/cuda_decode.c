/* bench/cuda_decode.c — decode throughput of the rollout engine on one GPU, for the full
 * DeepSeek-Coder-V2-Lite shape, against the memory-bandwidth bound measured in the same
 * run and (given its JSON) against transformers' `generate` (bench/cuda_decode_hf.py).
 *
 *   build/bench/cuda_decode [--layers 27] [--seqs 1,64,256] [--prompt 1000] [--gen 1000]
 *                           [--table bf16|fp32] [--fit layers|seqs] [--reserve-gib 6]
 *                           [--peer FILE.json] [--out FILE.json] [--print-plan]
 *                           [--moe auto|slots|indexed] [--variants "A=1;B=64,C=warp"]
 *
 * Model: the Lite config (hidden 2048, 27 layers, 16 heads, MLA kv_lora_rank 512 without
 * q-LoRA, qk 128 + 64 rope, v 128, layer 0 dense with intermediate 10944, layers 1..26
 * MoE: 64 routed experts top-6 greedy + 2 shared of width 1408, vocab 102400, YaRN x40),
 * random weights (model_init_random, N(0, 0.02)), created with model_create_infer on
 * ops_cuda_bf16() (or ops_cuda() with --table fp32): parameters stored in fp32 on the
 * device, no gradients. The engine decodes on the GPU (rollout/rollout.h on a device
 * model takes its Ops path: latent cache in device memory; sampling on the device when the
 * table has sample_rows, else on the host from logits downloaded each step — the output
 * says which).
 *
 * Work per batch size B: B distinct random prompts of --prompt tokens, one sample each,
 * --gen new tokens each (EOS ignored), temperature 1 without truncation. Timed: one
 * rollout_generate with max_new_tokens = 1 (prefill + first token: t1) and one with
 * max_new_tokens = gen (tN), wall clock. Printed: decode tokens/s = B (gen - 1) /
 * (tN - t1), end-to-end tokens/s = B gen / tN (prefill included), and the engine's own
 * prefill / decode seconds (RolloutStats).
 *
 * Memory-bandwidth bound: the bytes one decode step must read at least once, over the
 * device bandwidth measured at the start of this run (best of a 2 GiB device-to-device
 * cudaMemcpy, counted as read + write, and a read-only reduction kernel). Bytes per step:
 * every parameter outside the routed experts and the embedding table (attention, norms,
 * dense MLP, shared experts, routers, LM head) in fp32 as stored, plus B embedding rows,
 * plus the routed experts actually used: distinct experts per MoE layer per step as the
 * engine recorded them (record_experts; if the engine returns none, the expectation under
 * uniform routing, E (1 - (1 - K/E)^B), and the output says so), plus the latent cache rows
 * read: B x (prompt + gen/2) positions on average x layers x 576 floats. Activations are
 * not counted (small against the weights). Bound tokens/s = B x bandwidth / bytes.
 * Weights count as read: fp32 (4 bytes) unless the run's decode kernels took bf16 copies
 * (CRUCIBLE_CUDA_DECODE_BF16=1: 2 bytes for the routed experts while B K is under model.c's
 * slot threshold, and for the other weights at B <= 8, where the linear layers run on the
 * GEMV kernel, except kv_b_proj: cuBLAS's batched GEMM in the absorbed form); "of bf16 b." also puts the
 * run against the bound of a model read wholly in bf16 (what transformers reads), the
 * stricter figure. The copies' 2 bytes per parameter are planned for when the switch is
 * set in the environment or in a variant (27 layers then no longer fit 80 GB: 21 do).
 *
 * What fits on an 80 GB H100 (fp32 storage): 27 layers are 15.71 B parameters = 62.8 GB;
 * the latent cache of one sequence of 2000 tokens over 27 layers is 2000 x 27 x 576 x 4 B
 * = 124 MB, so 256 sequences need 31.9 GB: params + cache = 94.7 GB does not fit, 64
 * sequences (8.0 GB of cache) do. For each B the bench therefore plans, from the free
 * device memory at start minus --reserve-gib for the engine's scratch: with --fit layers
 * (default) the most layers <= --layers that fit B sequences (21-22 layers for 256 x 2000
 * tokens with 78-79 GiB free), with --fit seqs the most sequences <= B that fit --layers
 * layers (114-123). Every reduction is printed as a NOTE line and
 * kept in the summary table (columns "layers" and "seqs"); the bandwidth bound is computed
 * for the shape actually run. --print-plan prints the plan ("B:layers,..." of what will
 * run) and exits: bench/cuda_decode_hf.py --plan takes it so the peer runs the same shapes.
 *
 * Peer: --peer FILE.json is the output of bench/cuda_decode_hf.py (transformers
 * DeepseekV2ForCausalLM.generate, bf16 weights, same shapes, own random weights, measured
 * with the same t1/tN method); ratios are printed only for runs of identical shape
 * (seqs, layers, prompt, gen). tests/cuda/cuda_check.sh runs peer and bench in one call.
 *
 * --moe sets CRUCIBLE_CUDA_MOE_SMALL for the run (model/cuda/ops_cuda.h): slots (each
 * slot reads its expert; model.c's 64-slot threshold), indexed (experts grouped on the
 * device, read once per call; the threshold becomes 4096 slots, so every B <= 682 takes
 * the op without a host sync) or auto (the default: slots up to 64 slots, indexed
 * above); unset, the environment's choice. The JSON records it.
 *
 * --variants: after each shape's run with the environment as it is ("base"), the same run
 * again under each ';'-separated variant, a ','-separated list of NAME=VALUE set for that
 * run (every name a variant mentions is unset before each run, then the variant's set):
 * the backend's per-call switches (CRUCIBLE_CUDA_GRAPHS, CRUCIBLE_CUDA_MLA_SPLIT,
 * CRUCIBLE_CUDA_ROUTE, ...) A/B-compared on one model, initialised once. Up to 7 variants;
 * a row per variant in the table and the JSON ("variant").
 *
 * The arithmetic (config, parameter count, memory plan, experts, bytes per step) is in
 * bench/decode_plan.h, checked on the CPU by tests/bench/test_decode_plan.c.
 *
 * Without a CUDA build or a visible GPU it prints that nothing was measured and exits 0. */
#include <stdio.h>
#include <stdlib.h>

#ifndef CRUCIBLE_CUDA
int main(void) {
    printf("cuda_decode: CUDA backend not built (no nvcc at build time, or NO_CUDA=1): nothing measured\n");
    return 0;
}
#else

#include <cjson/cJSON.h>
#include <cuda_runtime.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/args.h"
#include "core/file.h"
#include "core/json.h"
#include "core/rng.h"
#include "model/cuda/ops_cuda.h"
#include "model/layers.h"
#include "model/model.h"
#include "model/ops.h"
#include "rollout/rollout.h"
#include "bench/decode_plan.h"

enum { MAX_B = 16 };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void cuda_ok(cudaError_t rc, const char *what) {
    if (rc != cudaSuccess) {
        fprintf(stderr, "cuda_decode: %s: %s\n", what, cudaGetErrorString(rc));
        exit(1);
    }
}

/* Device bandwidth in bytes/s: best of 5 device-to-device copies of `bytes` (read +
 * write traffic, 2 x bytes) and of 5 read-only passes (ops->count_nonfinite). */
static void measure_bandwidth(const Ops *o, size_t bytes, double *copy_bw, double *read_bw) {
    void *a = NULL, *b = NULL;
    cuda_ok(cudaMalloc(&a, bytes), "cudaMalloc (bandwidth buffer)");
    cuda_ok(cudaMalloc(&b, bytes), "cudaMalloc (bandwidth buffer)");
    cuda_ok(cudaMemset(a, 0, bytes), "cudaMemset");
    cuda_ok(cudaMemset(b, 0, bytes), "cudaMemset");
    cudaEvent_t e0, e1;
    cuda_ok(cudaEventCreate(&e0), "cudaEventCreate");
    cuda_ok(cudaEventCreate(&e1), "cudaEventCreate");
    double best = 1e30;
    for (int i = 0; i < 6; i++) {
        cuda_ok(cudaEventRecord(e0, 0), "cudaEventRecord");
        cuda_ok(cudaMemcpy(b, a, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy D2D");
        cuda_ok(cudaEventRecord(e1, 0), "cudaEventRecord");
        cuda_ok(cudaEventSynchronize(e1), "cudaEventSynchronize");
        float ms = 0;
        cuda_ok(cudaEventElapsedTime(&ms, e0, e1), "cudaEventElapsedTime");
        if (i > 0 && ms < best) best = ms;  /* the first is a warm-up */
    }
    *copy_bw = 2.0 * (double)bytes / (best * 1e-3);
    best = 1e30;
    for (int i = 0; i < 6; i++) {
        size_t bad = 0;
        cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
        double t = now_s();
        o->count_nonfinite((const float *)a, bytes / sizeof(float), &bad);  /* synchronises */
        t = now_s() - t;
        if (i > 0 && t < best) best = t;
    }
    *read_bw = (double)bytes / best;
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cuda_ok(cudaFree(a), "cudaFree");
    cuda_ok(cudaFree(b), "cudaFree");
}

typedef struct Result {
    int ok;
    double t1, tN, dec_tps, e2e_tps;
    double eng_prefill_s, eng_decode_s;
    long eng_steps, step_records, step_replays;
    int max_live;
    double experts_per_layer;
    int experts_measured;
    double step_bytes, bound_tps, bw;
    long bf16_reads;        /* weights read from bf16 copies by decode kernels (CRUCIBLE_CUDA_DECODE_BF16) */
    double bf16_bound_tps;  /* the bound with every weight read in bf16 (as transformers stores it) */
} Result;

static size_t tensor_bytes(const Model *m, const char *has) {
    size_t b = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (strstr(m->tensors[i].name, has)) b += m->tensors[i].numel * sizeof(float);
    return b;
}

static int run_batch(Model *m, int B, int P, int N, double bw, uint64_t seed, Result *res, CrError *e) {
    const ModelConfig *c = &m->cfg;
    memset(res, 0, sizeof *res);
    int32_t **pr = cr_calloc((size_t)B, sizeof *pr);
    int *lens = cr_calloc((size_t)B, sizeof *lens);
    CrRng rng;
    for (int b = 0; b < B; b++) {
        pr[b] = cr_malloc(sizeof(int32_t) * (size_t)P);
        lens[b] = P;
        cr_rng_init(&rng, seed, 0xdec0de, (uint64_t)b);
        for (int t = 0; t < P; t++) pr[b][t] = (int32_t)(cr_rng_u64(&rng) % 100000);  /* below the special ids */
    }
    Sample *out = cr_calloc((size_t)B, sizeof *out);
    int rc = -1;
    RolloutEngine *r = rollout_create(m, NULL, decode_cache_positions(B, P, N), e);
    if (!r) goto done;
    SampleParams sp = {0};
    sp.temperature = 1.0f;
    sp.top_p = 1.0f;
    sp.ignore_eos = 1;
    sp.seed = seed;
    /* warm-up: one short sequence (kernels, cuBLAS heuristics, scratch growth) */
    int wl = P < 16 ? P : 16;
    sp.max_new_tokens = 4;
    if (rollout_generate(r, (const int32_t *const *)pr, &wl, 1, 1, &sp, 0, out, e)) goto done;
    sample_free(&out[0]);

    sp.max_new_tokens = 1;
    cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    double t = now_s();
    if (rollout_generate(r, (const int32_t *const *)pr, lens, B, 1, &sp, 0, out, e)) goto done;
    cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    res->t1 = now_s() - t;
    for (int b = 0; b < B; b++) sample_free(&out[b]);

    sp.max_new_tokens = N;
    sp.record_experts = 1;
    RolloutStats s0 = rollout_stats(r);
    long reads0 = ops_cuda_decode_bf16_reads();
    t = now_s();
    if (rollout_generate(r, (const int32_t *const *)pr, lens, B, 1, &sp, 0, out, e)) goto done;
    cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    res->tN = now_s() - t;
    RolloutStats s1 = rollout_stats(r);
    long toks = 0;
    for (int b = 0; b < B; b++) toks += out[b].n_tokens;
    if (toks != (long)B * N) {
        cr_error_set(e, "engine returned %ld tokens, expected %d x %d", toks, B, N);
        goto done;
    }
    res->dec_tps = res->tN > res->t1 ? (double)B * (N - 1) / (res->tN - res->t1) : 0;
    res->e2e_tps = (double)B * N / res->tN;
    res->eng_prefill_s = s1.prefill_s - s0.prefill_s;
    res->eng_decode_s = s1.decode_s - s0.decode_s;
    res->eng_steps = s1.decode_steps - s0.decode_steps;
    res->max_live = s1.max_live;
    res->step_records = s1.step_records - s0.step_records;
    res->step_replays = s1.step_replays - s0.step_replays;
    res->bf16_reads = ops_cuda_decode_bf16_reads() - reads0;

    /* the bandwidth bound of this shape */
    int n_moe = 0, E = c->n_routed_experts, K = c->num_experts_per_tok;
    for (int l = 0; l < c->num_hidden_layers; l++) n_moe += model_layer_is_moe(c, l);
    const int32_t **ids = cr_calloc((size_t)B, sizeof *ids);
    for (int b = 0; b < B; b++) ids[b] = out[b].n_tokens == N ? out[b].expert_ids : NULL;
    double d = decode_distinct_experts(ids, B, N, n_moe, K, E);
    free(ids);
    res->experts_measured = d >= 0;
    if (d < 0) d = decode_expected_experts(B, K, E);
    res->experts_per_layer = d;
    double fixed = (double)m->n_params * sizeof(float) - (double)tensor_bytes(m, ".mlp.experts.") -
                   (double)tensor_bytes(m, "embed_tokens");
    /* weights as read: bf16 copies when the kernels took them — the GEMV (up to 8 rows: the
     * fixed weights at B <= 8, except kv_b_proj, read by cuBLAS's batched GEMM of the
     * absorbed form) and moe_experts_small (while B K is under model.c's slot threshold) —,
     * else fp32 */
    int bf16 = res->bf16_reads > 0;
    long slots = m->ops->moe_experts_small ? model_moe_small_slots(m) : 0;
    double kvb = (double)tensor_bytes(m, "kv_b_proj");
    res->step_bytes = decode_step_bytes(c, fixed - kvb, B, P, N, d, bf16 && B <= 8 ? 2 : 4,
                                        bf16 && (long)B * K <= slots ? 2 : 4) + kvb;
    res->bw = bw;
    res->bound_tps = B * bw / res->step_bytes;
    res->bf16_bound_tps = B * bw / decode_step_bytes(c, fixed, B, P, N, d, 2, 2);
    res->ok = 1;
    rc = 0;
done:
    for (int b = 0; b < B; b++) sample_free(&out[b]), free(pr[b]);
    free(out);
    free(pr);
    free(lens);
    rollout_free(r);
    return rc;
}

static int parse_seqs(const char *s, int *out, CrError *e) {
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 4096 || n == MAX_B || (*end && *end != ','))
            return cr_error_set(e, "--seqs: expected up to %d comma-separated counts in 1..4096, got '%s'", MAX_B, s);
        out[n++] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (!n) return cr_error_set(e, "--seqs: empty");
    return n;
}

enum { MAX_V = 8 };

/* --variants: the NAME=VALUE lists (v[0] = "base", empty) and every name mentioned. */
typedef struct Variants {
    int n;
    char *text[MAX_V];
    char names[64][64];
    int n_names;
} Variants;

static int parse_variants(const char *s, Variants *v, CrError *e) {
    memset(v, 0, sizeof *v);
    v->text[v->n++] = cr_strdup("");
    if (!s || !*s) return 0;
    char *all = cr_strdup(s), *save = NULL;
    for (char *tok = strtok_r(all, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        if (v->n == MAX_V) return cr_error_set(e, "--variants: at most %d", MAX_V - 1);
        v->text[v->n++] = cr_strdup(tok);
        char *copy = cr_strdup(tok), *s2 = NULL;
        for (char *kv = strtok_r(copy, ",", &s2); kv; kv = strtok_r(NULL, ",", &s2)) {
            char *eq = strchr(kv, '=');
            if (!eq || eq == kv || (size_t)(eq - kv) >= sizeof v->names[0])
                return cr_error_set(e, "--variants: '%s' is not NAME=VALUE", kv);
            *eq = 0;
            int known = 0;
            for (int i = 0; i < v->n_names; i++) known |= !strcmp(v->names[i], kv);
            if (!known) {
                if (v->n_names == 64) return cr_error_set(e, "--variants: too many names");
                snprintf(v->names[v->n_names++], sizeof v->names[0], "%s", kv);
            }
        }
        free(copy);
    }
    free(all);
    return 0;
}

/* Unset every name the variants mention, then set variant k's. */
static void apply_variant(const Variants *v, int k) {
    for (int i = 0; i < v->n_names; i++) unsetenv(v->names[i]);
    char *copy = cr_strdup(v->text[k]), *save = NULL;
    for (char *kv = strtok_r(copy, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(kv, '=');
        *eq = 0;
        if (setenv(kv, eq + 1, 1) != 0) perror("cuda_decode: setenv");
    }
    free(copy);
}
static const char *variant_name(const Variants *v, int k) { return k ? v->text[k] : "base"; }

int main(int argc, char **argv) {
    long layers = 27, prompt = 1000, gen = 1000, seed = 1;
    double reserve_gib = 6.0;
    const char *seqs_s = "1,64,256", *table = "bf16", *fit = "layers", *peer_path = NULL, *out_path = NULL;
    const char *moe = NULL, *variants_s = NULL;
    int print_plan = 0;
    ArgSpec specs[] = {
        {"layers", ARG_INT, &layers, "decoder layers of the Lite shape (1..27; layer 0 is dense)", 0},
        {"seqs", ARG_STR, &seqs_s, "comma-separated numbers of concurrent sequences", 0},
        {"prompt", ARG_INT, &prompt, "prompt tokens per sequence", 0},
        {"gen", ARG_INT, &gen, "generated tokens per sequence (EOS ignored)", 0},
        {"table", ARG_STR, &table, "bf16 (ops_cuda_bf16: bf16 tensor-core GEMMs) or fp32 (ops_cuda)", 0},
        {"fit", ARG_STR, &fit, "when a shape does not fit: 'layers' (fewer layers) or 'seqs' (fewer sequences)", 0},
        {"reserve-gib", ARG_FLOAT, &reserve_gib, "device memory kept free for the engine's scratch (GiB)", 0},
        {"seed", ARG_INT, &seed, "weights and prompts seed", 0},
        {"peer", ARG_STR, &peer_path, "JSON of bench/cuda_decode_hf.py: print ratios for identical shapes", 0},
        {"out", ARG_STR, &out_path, "write the results as JSON to this file", 0},
        {"print-plan", ARG_BOOL, &print_plan, "print the shapes that fit (B:layers,...) and exit", 0},
        {"moe", ARG_STR, &moe, "routed experts of decode: auto, slots or indexed (sets CRUCIBLE_CUDA_MOE_SMALL)", 0},
        {"variants", ARG_STR, &variants_s, "';'-separated NAME=VALUE[,NAME=VALUE] lists: each shape rerun under each", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    CrError e;
    int rc = cr_args_parse("cuda_decode [flags]", specs, argc - 1, argv + 1, NULL, NULL, &e);
    if (rc == CR_ARGS_HELP) return 0;
    if (rc) {
        fprintf(stderr, "cuda_decode: %s\n", e.msg);
        return 2;
    }
    int Bs[MAX_B], nB = parse_seqs(seqs_s, Bs, &e);
    if (nB < 0 || layers < 1 || layers > 27 || prompt < 1 || gen < 2 || prompt + gen > 163840 || reserve_gib < 0 ||
        (strcmp(table, "bf16") && strcmp(table, "fp32")) || (strcmp(fit, "layers") && strcmp(fit, "seqs"))) {
        fprintf(stderr, "cuda_decode: %s\n",
                nB < 0 ? e.msg
                       : "bad flags: --layers 1..27, --prompt >= 1, --gen >= 2 (prompt + gen <= 163840), "
                         "--table bf16|fp32, --fit layers|seqs, --reserve-gib >= 0");
        return 2;
    }
    Variants var;
    if (parse_variants(variants_s, &var, &e)) {
        fprintf(stderr, "cuda_decode: %s\n", e.msg);
        return 2;
    }
    if (moe && strcmp(moe, "auto") && strcmp(moe, "slots") && strcmp(moe, "indexed")) {
        fprintf(stderr, "cuda_decode: --moe: expected auto, slots or indexed, got '%s'\n", moe);
        return 2;
    }
    if (moe && setenv("CRUCIBLE_CUDA_MOE_SMALL", moe, 1) != 0) {
        perror("cuda_decode: setenv CRUCIBLE_CUDA_MOE_SMALL");
        return 2;
    }
    const char *moe_env = getenv("CRUCIBLE_CUDA_MOE_SMALL");
    const char *moe_mode = moe_env && *moe_env ? moe_env : "auto";
    int P = (int)prompt, N = (int)gen, Lreq = (int)layers;
    /* --print-plan's stdout is the plan only: without a device it is empty (exit 1) */
    const Ops *ops = crucible_cuda_device_count() <= 0 ? NULL : strcmp(table, "fp32") ? ops_cuda_bf16() : ops_cuda();
    if (!ops) {
        fprintf(print_plan ? stderr : stdout, "cuda_decode: no usable CUDA device visible: nothing measured\n");
        return print_plan ? 1 : 0;
    }
    cuda_ok(cudaFree(NULL), "CUDA context");
    size_t free_b = 0, total_b = 0;
    cuda_ok(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
    double reserve = reserve_gib * (double)(1 << 30), freeb = (double)free_b;
    /* bf16 weight copies (CRUCIBLE_CUDA_DECODE_BF16=1, here or in a variant) take 2 bytes
     * per parameter besides the fp32 weights: planned for */
    const char *dbf = getenv("CRUCIBLE_CUDA_DECODE_BF16");
    double copy_bytes = (dbf && !strcmp(dbf, "1")) || (variants_s && strstr(variants_s, "CRUCIBLE_CUDA_DECODE_BF16=1")) ? 2 : 0;

    /* the plan: what runs for each requested B */
    DecodePlan plan[MAX_B];
    for (int i = 0; i < nB; i++) plan[i] = decode_plan(Bs[i], Lreq, P, N, reserve, copy_bytes, freeb, !strcmp(fit, "seqs"));
    if (print_plan) {
        for (int i = 0, k = 0; i < nB; i++)
            if (plan[i].L > 0 && plan[i].B > 0) printf("%s%d:%d", k++ ? "," : "", plan[i].B, plan[i].L);
        printf("\n");
        return 0;
    }

    struct cudaDeviceProp prop;
    cuda_ok(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    printf("cuda_decode: DeepSeek-Coder-V2-Lite shape (hidden 2048, MLA kv_lora 512, 16 heads 192/128, "
           "64 experts top-6 + 2 shared, vocab 102400), random weights, fp32 storage, table %s, moe_experts_small %s\n", ops->name, moe_mode);
    printf("  device %s: %.1f GiB total, %.1f GiB free at start; reserve %.1f GiB for scratch\n", prop.name,
           total_b / 1073741824.0, free_b / 1073741824.0, reserve_gib);
    printf("  %d prompt + %d generated tokens per sequence, temperature 1, EOS ignored; sampling %s\n", P, N,
           ops->sample_rows ? "on the device (ops->sample_rows)"
                            : "on the host (the table has no sample_rows: logits downloaded every step)");
    double copy_bw = 0, read_bw = 0;
    size_t bw_bytes = (size_t)2 << 30;
    if ((double)bw_bytes * 2 > freeb / 2) bw_bytes = (size_t)(freeb / 8);
    measure_bandwidth(ops, bw_bytes, &copy_bw, &read_bw);
    double bw = copy_bw > read_bw ? copy_bw : read_bw;
    printf("  bandwidth (measured now): device-to-device copy %.0f GB/s (read + write), read kernel %.0f GB/s; "
           "the bound uses %.0f GB/s\n", copy_bw / 1e9, read_bw / 1e9, bw / 1e9);
    for (int i = 0; i < nB; i++) {
        const DecodePlan *p = &plan[i];
        if (p->L == Lreq && p->B == p->B_req) continue;
        if (p->L <= 0 || p->B <= 0)
            printf("  NOTE: %d sequences x %d layers needs %.1f GB (params + latent cache + reserve) > %.1f GB free, "
                   "and no smaller %s fits: NOT RUN\n", p->B_req, Lreq, p->need_full / 1e9, freeb / 1e9, fit);
        else
            printf("  NOTE: %d sequences x %d layers needs %.1f GB (params + latent cache + reserve) > %.1f GB free: "
                   "runs %d sequences x %d layers instead (%.1f GB)\n", p->B_req, Lreq, p->need_full / 1e9,
                   freeb / 1e9, p->B, p->L, decode_need_bytes(p->L, p->B, P, N, reserve, copy_bytes) / 1e9);
    }

    cJSON *peer = NULL;
    if (peer_path) {
        peer = cr_json_load_object(peer_path, &e);
        if (!peer) printf("  peer: %s (no ratios)\n", e.msg);
        else {
            const cJSON *tv = cJSON_GetObjectItemCaseSensitive(peer, "transformers"),
                        *pv = cJSON_GetObjectItemCaseSensitive(peer, "torch"),
                        *xv = cJSON_GetObjectItemCaseSensitive(peer, "experts_implementation"),
                        *av = cJSON_GetObjectItemCaseSensitive(peer, "attn_implementation");
            printf("  peer: transformers %s, torch %s, DeepseekV2ForCausalLM.generate in bf16 (experts %s, attention %s)\n",
                   cJSON_IsString(tv) ? tv->valuestring : "?", cJSON_IsString(pv) ? pv->valuestring : "?",
                   cJSON_IsString(xv) ? xv->valuestring : "?", cJSON_IsString(av) ? av->valuestring : "?");
        }
    }

    static Result res[MAX_B][MAX_V];
    memset(res, 0, sizeof res);
    Model *m = NULL;
    int mL = 0, status = 0;
    for (int i = 0; i < nB; i++) {
        const DecodePlan *p = &plan[i];
        if (p->L <= 0 || p->B <= 0) continue;
        if (!m || mL != p->L) {
            model_free(m);
            m = NULL;
            ModelConfig cfg;
            if (decode_lite_config(&cfg, p->L, &e) || !(m = model_create_infer(&cfg, ops, &e))) {
                fprintf(stderr, "cuda_decode: %s\n", e.msg);
                return 1;
            }
            if ((double)m->n_params != decode_n_params(&cfg)) {
                fprintf(stderr, "cuda_decode: the model has %zu parameters, the planner counted %.0f\n", m->n_params,
                        decode_n_params(&cfg));
                return 1;
            }
            double t = now_s();
            model_init_random(m, (uint64_t)seed);
            cuda_ok(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
            mL = p->L;
            printf("  model: %d layers, %.2f B parameters (%.1f GB fp32), random init %.1f s\n", mL, m->n_params / 1e9,
                   m->n_params * 4.0 / 1e9, now_s() - t);
        }
        fflush(stdout);
        for (int k = 0; k < var.n; k++) {
        apply_variant(&var, k);
        if (run_batch(m, p->B, P, N, bw, (uint64_t)seed, &res[i][k], &e)) {
            printf("  [%d seqs, %d layers, %s] FAILED: %s\n", p->B, p->L, variant_name(&var, k), e.msg);
            status = 1;
            continue;
        }
        const Result *r = &res[i][k];
        printf("  [%d seqs, %d layers, %s] t1 (prefill + 1 token) %.2f s, tN %.2f s: decode %.1f tok/s, end-to-end "
               "%.1f tok/s; engine prefill %.2f s, decode %.2f s over %ld steps, max live %d\n", p->B, p->L,
               variant_name(&var, k), r->t1, r->tN, r->dec_tps, r->e2e_tps, r->eng_prefill_s, r->eng_decode_s,
               r->eng_steps, r->max_live);
        if (r->bf16_reads)
            printf("  bf16 weight copies (CRUCIBLE_CUDA_DECODE_BF16=1): %ld weight reads by decode kernels\n",
                   r->bf16_reads);
        if (r->step_records || r->step_replays)
            printf("  recorded steps (CUDA graphs, CRUCIBLE_CUDA_GRAPHS=1): %ld recorded, %ld of %ld decode steps "
                   "replayed\n", r->step_records, r->step_replays, r->eng_steps);
        if (r->max_live < p->B)
            printf("  WARNING: only %d of %d sequences decoded together (cache budget or admission)\n", r->max_live,
                   p->B);
        fflush(stdout);
        }
        apply_variant(&var, 0);
    }
    model_free(m);

    printf("\n%-5s %-6s %-6s %-6s %-5s %12s %12s %9s %9s %12s %8s %9s %14s %8s %8s\n", "seqs", "asked", "layers",
           "prompt", "gen", "decode tok/s", "e2e tok/s", "GB/step", "exp/layer", "bound tok/s", "of bound", "of bf16 b.",
           "transformers", "ratio", "e2e rat.");
    for (int i = 0; i < nB; i++)
        for (int k = 0; k < var.n; k++) {
        const DecodePlan *p = &plan[i];
        const Result *r = &res[i][k];
        if (k) printf("      ^ %s\n", variant_name(&var, k));
        if (!r->ok) {
            printf("%-5d %-6d %-6d %-6d %-5d %12s\n", p->B, p->B_req, p->L, P, N,
                   p->L <= 0 || p->B <= 0 ? "not run (memory)" : "FAILED");
            continue;
        }
        const char *why;
        const cJSON *pr = decode_peer_run(peer, p->B, p->L, P, N, &why);
        char hf[32] = "-", ratio[16] = "-", eratio[16] = "-";
        if (pr) {
            double hd = cJSON_GetObjectItemCaseSensitive(pr, "decode_tok_s")->valuedouble;
            double he = cJSON_GetObjectItemCaseSensitive(pr, "e2e_tok_s")->valuedouble;
            snprintf(hf, sizeof hf, "%.1f", hd);
            snprintf(ratio, sizeof ratio, "%.2fx", r->dec_tps / hd);
            snprintf(eratio, sizeof eratio, "%.2fx", r->e2e_tps / he);
        }
        printf("%-5d %-6d %-6d %-6d %-5d %12.1f %12.1f %9.2f %8.1f%s %12.1f %7.1f%% %8.1f%% %14s %8s %8s\n", p->B,
               p->B_req, p->L, P, N, r->dec_tps, r->e2e_tps, r->step_bytes / 1e9, r->experts_per_layer,
               r->experts_measured ? " " : "*", r->bound_tps, 100 * r->dec_tps / r->bound_tps,
               100 * r->dec_tps / r->bf16_bound_tps, hf, ratio, eratio);
        if (peer && !pr) printf("      (no ratio for %d seqs x %d layers: %s)\n", p->B, p->L, why);
        }
    printf("decode tok/s = seqs (gen - 1) / (tN - t1); e2e = seqs gen / tN; bound = seqs x %.0f GB/s / GB per step "
           "(weights as read: fp32, or bf16 copies); of bf16 b. = of the bound with every weight in bf16; "
           "ratio = ours / transformers, same shape, same run", bw / 1e9);
    int est = 0;
    for (int i = 0; i < nB; i++)
        for (int k = 0; k < var.n; k++) est |= res[i][k].ok && !res[i][k].experts_measured;
    printf("%s\n", est ? "; * = expected distinct experts under uniform routing (engine recorded none)" : "");

    if (out_path) {
        cJSON *j = cJSON_CreateObject(), *runs = cJSON_AddArrayToObject(j, "runs");
        cJSON_AddStringToObject(j, "device", prop.name);
        cJSON_AddStringToObject(j, "table", ops->name);
        cJSON_AddStringToObject(j, "moe_small", moe_mode);
        cJSON_AddNumberToObject(j, "prompt", P);
        cJSON_AddNumberToObject(j, "gen", N);
        cJSON_AddNumberToObject(j, "copy_bw_GBs", copy_bw / 1e9);
        cJSON_AddNumberToObject(j, "read_bw_GBs", read_bw / 1e9);
        for (int i = 0; i < nB; i++)
            for (int k = 0; k < var.n; k++) {
            const Result *r = &res[i][k];
            cJSON *x = cJSON_CreateObject();
            cJSON_AddStringToObject(x, "variant", variant_name(&var, k));
            cJSON_AddNumberToObject(x, "seqs_asked", plan[i].B_req);
            cJSON_AddNumberToObject(x, "seqs", plan[i].B);
            cJSON_AddNumberToObject(x, "layers", plan[i].L);
            cJSON_AddBoolToObject(x, "ok", r->ok);
            if (r->ok) {
                cJSON_AddNumberToObject(x, "decode_tok_s", r->dec_tps);
                cJSON_AddNumberToObject(x, "e2e_tok_s", r->e2e_tps);
                cJSON_AddNumberToObject(x, "t1_s", r->t1);
                cJSON_AddNumberToObject(x, "tN_s", r->tN);
                cJSON_AddNumberToObject(x, "step_GB", r->step_bytes / 1e9);
                cJSON_AddNumberToObject(x, "experts_per_layer", r->experts_per_layer);
                cJSON_AddBoolToObject(x, "experts_measured", r->experts_measured);
                cJSON_AddNumberToObject(x, "bound_tok_s", r->bound_tps);
                cJSON_AddNumberToObject(x, "bf16_bound_tok_s", r->bf16_bound_tps);
                cJSON_AddNumberToObject(x, "bf16_copy_reads", (double)r->bf16_reads);
            }
            cJSON_AddItemToArray(runs, x);
            }
        char *txt = cJSON_Print(j);
        if (!txt || cr_write_file_atomic(out_path, txt, strlen(txt), &e)) {
            fprintf(stderr, "cuda_decode: %s\n", txt ? e.msg : "out of memory");
            status = 1;
        }
        free(txt);
        cJSON_Delete(j);
    }
    cJSON_Delete(peer);
    for (int k = 0; k < var.n; k++) free(var.text[k]);
    return status;
}
#endif
