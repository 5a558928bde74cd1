/* bench/train_step.c — time one training step (model_forward + model_backward + AdamW) of a
 * small DeepSeek-V2 MoE model on the CPU: hidden 256, 4 layers (1 dense + 3 MoE), 16 routed
 * experts top-4, 2 shared, MLA with kv_lora_rank 64, vocab 4096, one sequence of 512 tokens.
 *
 *   build/bench/train_step [--model DIR] [--steps 10] [--warmup 2] [--threads 2]
 *                          [--seqs 1] [--seq-len 512]
 *
 * With --model DIR (written by `bench/train_step_torch.py --write DIR`) the weights and the
 * token batch are those the PyTorch peer times; otherwise the same config is built here with
 * model_init_random and random tokens. The objective matches the peer: dlogp = -1/N (mean
 * next-token NLL, targets rolled within each sequence) plus the aux loss (aux_weight 1).
 * Prints the median step time (wall clock, and the process CPU time, which a machine shared
 * with other jobs disturbs less) and a last line `c_tokens_per_s=<x>`; bench/run_train_step.sh
 * runs both and prints the ratio. */
#include "core/args.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "model/adamw.h"
#include "model/model.h"
#include "model/ops.h"

#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Same as BENCH_CONFIG in bench/train_step_torch.py. */
static const char k_config[] =
    "{\"model_type\":\"deepseek_v2\",\"vocab_size\":4096,\"hidden_size\":256,\"num_hidden_layers\":4,"
    "\"num_attention_heads\":4,\"num_key_value_heads\":4,\"q_lora_rank\":null,\"kv_lora_rank\":64,"
    "\"qk_nope_head_dim\":32,\"qk_rope_head_dim\":16,\"v_head_dim\":32,\"intermediate_size\":1024,"
    "\"moe_intermediate_size\":128,\"n_routed_experts\":16,\"n_shared_experts\":2,\"num_experts_per_tok\":4,"
    "\"first_k_dense_replace\":1,\"moe_layer_freq\":1,\"topk_method\":\"greedy\",\"n_group\":1,\"topk_group\":1,"
    "\"routed_scaling_factor\":1.0,\"norm_topk_prob\":false,\"scoring_func\":\"softmax\",\"aux_loss_alpha\":0.001,"
    "\"seq_aux\":true,\"hidden_act\":\"silu\",\"rms_norm_eps\":1e-6,\"rope_theta\":10000.0,"
    "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":40,\"original_max_position_embeddings\":4096,"
    "\"beta_fast\":32,\"beta_slow\":1,\"mscale\":0.707,\"mscale_all_dim\":0.707},"
    "\"max_position_embeddings\":163840,\"bos_token_id\":0,\"eos_token_id\":1,\"tie_word_embeddings\":false,"
    "\"initializer_range\":0.02}";

static double clock_s(clockid_t id) {
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Tokens from DIR/batch.safetensors ({tokens [S*T], n_seqs, seq_len}) into toks[S*T]. */
static int load_batch(const char *dir, int32_t *toks, long seqs, long seq_len, CrError *e) {
    char path[1024];
    snprintf(path, sizeof path, "%s/batch.safetensors", dir);
    SafeTensors *st = st_open(path, e);
    if (!st) return -1;
    int rc = -1;
    size_t n = (size_t)(seqs * seq_len);
    int64_t meta[2];
    const StTensor *ts = st_find(st, "n_seqs"), *tl = st_find(st, "seq_len"), *tt = st_find(st, "tokens");
    int64_t *tmp = malloc(n * sizeof *tmp);
    if (!ts || !tl || !tt) { cr_error_set(e, "%s: needs tensors tokens, n_seqs, seq_len", path); goto out; }
    if (!tmp || st_read_i64(ts, &meta[0], 1, e) || st_read_i64(tl, &meta[1], 1, e)) goto out;
    if (meta[0] != seqs || meta[1] != seq_len) {
        cr_error_set(e, "%s: batch is %lldx%lld, asked for %ldx%ld", path, (long long)meta[0],
                     (long long)meta[1], seqs, seq_len);
        goto out;
    }
    if (st_read_i64(tt, tmp, n, e)) goto out;
    for (size_t i = 0; i < n; i++) toks[i] = (int32_t)tmp[i];
    rc = 0;
out:
    free(tmp);
    st_close(st);
    return rc;
}

int main(int argc, char **argv) {
    ops_cpu_env_init(argc, argv);   /* OpenBLAS core type, OpenMP wait policy (re-execs once) */
    const char *model_dir = NULL;
    long steps = 10, warmup = 2, threads = 2, seqs = 1, seq_len = 512;
    ArgSpec specs[] = {
        {"model", ARG_STR, &model_dir, "model dir + batch.safetensors from train_step_torch.py --write", 0},
        {"steps", ARG_INT, &steps, "timed steps (median reported)", 0},
        {"warmup", ARG_INT, &warmup, "untimed steps first", 0},
        {"threads", ARG_INT, &threads, "OpenMP and OpenBLAS threads", 0},
        {"seqs", ARG_INT, &seqs, "sequences in the batch", 0},
        {"seq-len", ARG_INT, &seq_len, "tokens per sequence", 0},
        {NULL, 0, NULL, NULL, 0}};
    CrError e = {{0}};
    int rc = cr_args_parse("train_step [flags]", specs, argc - 1, argv + 1, NULL, NULL, &e);
    if (rc == CR_ARGS_HELP) return 0;
    if (rc) { fprintf(stderr, "train_step: %s\n", e.msg); return 2; }
    if (steps < 1 || warmup < 0 || threads < 1 || seqs < 1 || seq_len < 2) {
        fprintf(stderr, "train_step: steps >= 1, warmup >= 0, threads >= 1, seqs >= 1, seq-len >= 2\n");
        return 2;
    }
    omp_set_num_threads((int)threads);   /* the CPU backend splits GEMMs over OpenMP itself */

    Model *m = NULL;
    int n = (int)(seqs * seq_len);
    int32_t *tokens = malloc((size_t)n * sizeof *tokens), *targets = malloc((size_t)n * sizeof *targets);
    int32_t *cu = malloc((size_t)(seqs + 1) * sizeof *cu);
    float *logp = malloc((size_t)n * sizeof *logp), *dlogp = malloc((size_t)n * sizeof *dlogp);
    double *times = malloc((size_t)steps * sizeof *times), *cpu = malloc((size_t)steps * sizeof *cpu);
    if (!tokens || !targets || !cu || !logp || !dlogp || !times || !cpu) { fprintf(stderr, "train_step: out of memory\n"); return 1; }
    if (model_dir) {
        m = model_load(model_dir, &e);
        if (!m || load_batch(model_dir, tokens, seqs, seq_len, &e)) { fprintf(stderr, "train_step: %s\n", e.msg); return 1; }
    } else {
        ModelConfig cfg;
        if (model_config_parse(&cfg, k_config, "bench config", &e) || !(m = model_create(&cfg, &e))) {
            fprintf(stderr, "train_step: %s\n", e.msg);
            return 1;
        }
        model_init_random(m, 0);
        CrRng r;
        cr_rng_init(&r, 1, 0, 0);
        for (int i = 0; i < n; i++) tokens[i] = 2 + (int32_t)(cr_rng_u64(&r) % (uint64_t)(m->cfg.vocab_size - 2));
    }
    for (long s = 0; s <= seqs; s++) cu[s] = (int32_t)(s * seq_len);
    for (long s = 0; s < seqs; s++)      /* next token, wrapping like torch.roll(ids, -1) */
        for (long t = 0; t < seq_len; t++)
            targets[s * seq_len + t] = tokens[s * seq_len + (t + 1) % seq_len];
    for (int i = 0; i < n; i++) dlogp[i] = -1.0f / (float)n;
    Batch b = {.n_tokens = n, .n_seqs = (int)seqs, .tokens = tokens, .targets = targets,
               .cu_seqlens = cu, .pos = NULL};
    AdamW opt;
    AdamWConfig acfg = {.lr = 1e-4f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    if (adamw_init(&opt, m, acfg, &e)) { fprintf(stderr, "train_step: %s\n", e.msg); return 1; }

    double loss0 = 0;
    for (long i = 0; i < warmup + steps; i++) {
        double t0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        float aux = 0;
        model_zero_grads(m);
        if (model_forward(m, &b, logp, &aux, &e) || model_backward(m, &b, dlogp, 1.0f, &e)) {
            fprintf(stderr, "train_step: step %ld: %s\n", i, e.msg);
            return 1;
        }
        adamw_step(&opt, m, acfg.lr);
        double dt = clock_s(CLOCK_MONOTONIC) - t0;
        if (i >= warmup) {
            times[i - warmup] = dt;
            cpu[i - warmup] = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        }
        if (i == 0) {
            for (int t = 0; t < n; t++) loss0 -= logp[t] / n;
            loss0 += aux;
        }
    }
    qsort(times, (size_t)steps, sizeof *times, cmp_double);
    qsort(cpu, (size_t)steps, sizeof *cpu, cmp_double);
    double med = steps % 2 ? times[steps / 2] : 0.5 * (times[steps / 2 - 1] + times[steps / 2]);
    double cmed = steps % 2 ? cpu[steps / 2] : 0.5 * (cpu[steps / 2 - 1] + cpu[steps / 2]);
    const char *wp = getenv("OMP_WAIT_POLICY");
    printf("crucible cpu: %zu params, batch %ldx%ld, threads %ld, OpenBLAS %s, OMP_WAIT_POLICY=%s, "
           "first-step loss %.4f\n", m->n_params, seqs, seq_len, threads, openblas_get_corename(),
           wp ? wp : "(default)", loss0);
    printf("crucible cpu: median %.1f ms/step over %ld (min %.1f), %.0f tokens/s; CPU time %.1f ms/step\n",
           med * 1e3, steps, times[0] * 1e3, n / med, cmed * 1e3);
    printf("c_cpu_ms_per_step=%.1f\n", cmed * 1e3);
    printf("c_tokens_per_s=%.1f\n", n / med);
    adamw_free(&opt);
    model_free(m);
    free(tokens); free(targets); free(cu); free(logp); free(dlogp); free(times); free(cpu);
    return 0;
}
