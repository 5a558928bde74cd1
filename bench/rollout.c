/* bench/rollout.c — decode throughput of the rollout engine vs Hugging Face `generate`.
 *
 *   make bench && build/bench/rollout [--threads 2] [--new 64] [--dir build/bench-rollout]
 *
 * One run: a small DeepSeek-V2 MoE (config below, random weights from model_init_random)
 * is saved with model_save; the engine samples G = 1, 8, 64 completions of one 32-token
 * prompt (temperature 1, no truncation, EOS ignored, NEW new tokens each), then
 * bench/rollout_hf.py runs transformers' generate (DynamicCache) on the SAME checkpoint
 * with the same prompt, token count and thread count. Tokens/s = G * NEW / wall time of
 * the whole call (prefill included, both sides). The greedy completions of both are
 * compared as a correctness check. Also printed: the memory-bandwidth bound, i.e. G
 * tokens per (bytes of weights a decode step must read once + latent cache bytes) /
 * (measured read bandwidth), where the routed-expert bytes count the distinct experts the
 * step actually used (recorded by the engine). The process environment is set as for
 * `crucible` (ops_cpu_env_init: OMP_WAIT_POLICY=passive, OpenBLAS core type) and the peer
 * inherits it. Tokens per CPU-second are printed too: on a shared, loaded machine they
 * are the less distorted comparison. */
#include <cjson/cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "model/model.h"
#include "model/ops.h"
#include "rollout/rollout.h"

static const char k_config[] =
    "{\"model_type\":\"deepseek_v2\",\"vocab_size\":8192,\"hidden_size\":256,\"num_hidden_layers\":4,"
    "\"num_attention_heads\":8,\"q_lora_rank\":null,\"kv_lora_rank\":64,\"qk_nope_head_dim\":32,"
    "\"qk_rope_head_dim\":16,\"v_head_dim\":32,\"intermediate_size\":512,\"moe_intermediate_size\":128,"
    "\"n_routed_experts\":16,\"n_shared_experts\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,"
    "\"topk_method\":\"greedy\",\"max_position_embeddings\":2048,\"rope_scaling\":null,"
    "\"bos_token_id\":0,\"eos_token_id\":1,\"initializer_range\":0.02}";

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Read bandwidth (bytes/s) of `threads` threads summing a 512 MB buffer, best of 3. */
static double read_bandwidth(int threads) {
    size_t n = (size_t)128 << 20;
    float *buf = cr_malloc(n * sizeof *buf);
#pragma omp parallel for num_threads(threads) schedule(static)
    for (size_t i = 0; i < n; i++) buf[i] = (float)(i & 7);
    double best = 1e30, sink = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t = now(), total = 0;
#pragma omp parallel for num_threads(threads) schedule(static) reduction(+ : total)
        for (size_t c = 0; c < n; c += 4096) {
            float s = 0;
#pragma omp simd reduction(+ : s)
            for (size_t i = c; i < c + 4096; i++) s += buf[i];
            total += s;
        }
        t = now() - t;
        sink += total;
        if (t < best) best = t;
    }
    free(buf);
    if (sink < 0) fprintf(stderr, "%g\n", sink);
    return (double)n * sizeof(float) / best;
}

static size_t tensor_bytes(const Model *m, const char *substr_yes, const char *substr_no) {
    size_t b = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (strstr(m->tensors[i].name, substr_yes) && !(substr_no && strstr(m->tensors[i].name, substr_no)))
            b += m->tensors[i].numel * sizeof(float);
    return b;
}

int main(int argc, char **argv) {
    ops_cpu_env_init(argc, argv);  /* OpenBLAS kernels and OpenMP wait policy, as crucible */
    int threads = 2, n_new = 64;
    const char *dir = "build/bench-rollout";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--new")) n_new = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--dir")) dir = argv[i + 1];
        else { fprintf(stderr, "usage: rollout [--threads N] [--new N] [--dir DIR]\n"); return 2; }
    }
    if (threads < 1 || n_new < 2) return 2;
    omp_set_num_threads(threads);
    CrError e;
    ModelConfig cfg;
    if (model_config_parse(&cfg, k_config, "bench config", &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
    Model *m = model_create(&cfg, &e);
    if (!m) { fprintf(stderr, "%s\n", e.msg); return 1; }
    model_init_random(m, 1);
    if (model_save(m, dir, &e)) { fprintf(stderr, "bench/rollout: %s\n", e.msg); return 1; }

    enum { P = 32 };
    int32_t prompt[P];
    CrRng rng;
    cr_rng_init(&rng, 42, 0, 0);
    for (int i = 0; i < P; i++) prompt[i] = 2 + (int32_t)(cr_rng_u64(&rng) % (uint64_t)(cfg.vocab_size - 2));
    const int32_t *pp[1] = {prompt};
    int plen = P;
    RolloutEngine *r = rollout_create(m, NULL, (long)(P + n_new + 16) * 64, &e);
    if (!r) { fprintf(stderr, "bench/rollout: %s\n", e.msg); return 1; }

    /* greedy reference for the correctness check */
    SampleParams sp = {0};
    sp.max_new_tokens = n_new;
    sp.ignore_eos = 1;
    Sample greedy;
    if (rollout_generate(r, pp, &plen, 1, 1, &sp, 0, &greedy, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }

    int Gs[3] = {1, 8, 64};
    double ours[3], ours_cpu[3], bound[3], distinct_experts[3];
    double bw = read_bandwidth(threads);
    int n_moe = 0;
    for (int l = 0; l < cfg.num_hidden_layers; l++) n_moe += model_layer_is_moe(&cfg, l);
    size_t expert_bytes = (size_t)3 * cfg.moe_intermediate_size * cfg.hidden_size * sizeof(float);
    size_t all_bytes = m->n_params * sizeof(float);
    size_t routed = tensor_bytes(m, ".mlp.experts.", NULL);
    size_t embed = tensor_bytes(m, "embed_tokens", NULL);
    size_t fixed = all_bytes - routed - embed;   /* read every step whatever the batch */
    sp.temperature = 1.0f;
    sp.seed = 7;
    sp.record_experts = 1;
    for (int gi = 0; gi < 3; gi++) {
        int G = Gs[gi];
        Sample *out = cr_calloc((size_t)G, sizeof *out);
        double t = now(), tc = cpu_now();
        if (rollout_generate(r, pp, &plen, 1, G, &sp, 0, out, &e)) { fprintf(stderr, "%s\n", e.msg); return 1; }
        t = now() - t;
        tc = cpu_now() - tc;
        long toks = 0;
        for (int g = 0; g < G; g++) toks += out[g].n_tokens;
        if (toks != (long)G * n_new) { fprintf(stderr, "bench/rollout: short samples\n"); return 1; }
        ours[gi] = toks / t;
        ours_cpu[gi] = toks / tc;
        /* distinct experts per MoE layer per decode step (token k >= 1 of all G samples) */
        double sum = 0;
        int K = cfg.num_experts_per_tok;
        for (int k = 1; k < n_new; k++)
            for (int j = 0; j < n_moe; j++) {
                unsigned char used[1024] = {0};
                int d = 0;
                for (int g = 0; g < G; g++)
                    for (int q = 0; q < K; q++) {
                        int x = out[g].expert_ids[((size_t)k * n_moe + j) * K + q];
                        if (!used[x]) { used[x] = 1; d++; }
                    }
                sum += d;
            }
        distinct_experts[gi] = sum / (n_new - 1) / n_moe;
        double cache = (double)G * (P + n_new / 2.0) * cfg.num_hidden_layers *
                       (cfg.kv_lora_rank + cfg.qk_rope_head_dim) * sizeof(float);
        double step_bytes = fixed + distinct_experts[gi] * n_moe * expert_bytes + cache +
                            (double)G * cfg.hidden_size * sizeof(float);
        bound[gi] = G * bw / step_bytes;
        for (int g = 0; g < G; g++) sample_free(&out[g]);
        free(out);
    }
    rollout_free(r);

    /* the peer, same checkpoint and prompt */
    char cmd[8192];
    int off = snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=%d MKL_NUM_THREADS=%d python3 bench/rollout_hf.py '%s' --new %d --threads %d --groups 1,8,64 --prompt ",
                       threads, threads, dir, n_new, threads);
    for (int i = 0; i < P; i++) off += snprintf(cmd + off, sizeof cmd - off, i ? ",%d" : "%d", prompt[i]);
    snprintf(cmd + off, sizeof cmd - off, " 2>/dev/null");
    FILE *f = popen(cmd, "r");
    char line[65536] = {0};
    if (!f || !fgets(line, sizeof line, f)) { fprintf(stderr, "bench/rollout: transformers peer failed: %s\n", cmd); return 1; }
    pclose(f);
    cJSON *j = cJSON_Parse(line);
    cJSON *ts = cJSON_GetObjectItem(j, "tok_s"), *tcpu = cJSON_GetObjectItem(j, "tok_per_cpu_s"), *hg = cJSON_GetObjectItem(j, "greedy");
    if (!ts || !tcpu || !cJSON_IsArray(hg)) { fprintf(stderr, "bench/rollout: bad peer output: %s\n", line); return 1; }
    int agree = 0;
    for (cJSON *x = hg->child; x && agree < greedy.n_tokens && x->valueint == greedy.token_ids[agree]; x = x->next) agree++;

    printf("bench/rollout: model %.2f M params (%d layers, %d experts top-%d), prompt %d, %d new tokens, %d threads\n",
           m->n_params / 1e6, cfg.num_hidden_layers, cfg.n_routed_experts, cfg.num_experts_per_tok, P, n_new, threads);
    printf("  peer: transformers %s, torch %s (generate with DynamicCache, fp32)\n",
           cJSON_GetObjectItem(j, "transformers")->valuestring, cJSON_GetObjectItem(j, "torch")->valuestring);
    printf("  greedy agreement with transformers: %d of %d tokens\n", agree, greedy.n_tokens);
    printf("  read bandwidth %.1f GB/s; weights %.1f MB (%.1f MB outside routed experts and embedding)\n",
           bw / 1e9, all_bytes / 1e6, fixed / 1e6);
    printf("  wall clock (tokens/s):\n");
    printf("  %4s %12s %12s %8s %14s %12s %10s\n", "G", "crucible", "transformers", "ratio", "experts/layer", "bw bound", "of bound");
    for (int gi = 0; gi < 3; gi++) {
        char key[8];
        snprintf(key, sizeof key, "%d", Gs[gi]);
        double hf = cJSON_GetObjectItem(ts, key)->valuedouble;
        printf("  %4d %10.1f/s %10.1f/s %7.2fx %14.1f %10.1f/s %9.0f%%\n", Gs[gi], ours[gi], hf, ours[gi] / hf,
               distinct_experts[gi], bound[gi], 100 * ours[gi] / bound[gi]);
    }
    /* CPU time is what a loaded, shared machine distorts least (with 1 thread) */
    printf("  per CPU-second of the process (tokens / (user+sys s)):\n");
    printf("  %4s %12s %12s %8s\n", "G", "crucible", "transformers", "ratio");
    for (int gi = 0; gi < 3; gi++) {
        char key[8];
        snprintf(key, sizeof key, "%d", Gs[gi]);
        double hf = cJSON_GetObjectItem(tcpu, key)->valuedouble;
        printf("  %4d %10.1f/s %10.1f/s %7.2fx\n", Gs[gi], ours_cpu[gi], hf, ours_cpu[gi] / hf);
    }
    cJSON_Delete(j);
    sample_free(&greedy);
    model_free(m);
    return 0;
}
