/* bench/cuda_train_step.c — one training step (zero grads, forward, backward, AdamW) of a
 * DeepSeek-Coder-V2-Lite-shaped model (hidden 2048, MLA without q-LoRA, kv rank 512,
 * 16 heads 192/128, 64 routed experts top-6 + 2 shared, first layer dense, vocab 102400,
 * YaRN) truncated to L layers, on N packed tokens (one sequence), on the CUDA backend:
 * fp32 table, bf16-GEMM table, and the bf16 table with CRUCIBLE_CUDA_BF16_WEIGHTS=1 (row
 * "+bf16 weights": large GEMMs read bf16 copies of the parameters, refreshed once per
 * step after AdamW; model/cuda/param_shadow.cu). Prints ms/step, tokens/s and MFU (model FLOPs counted
 * as bench/cuda_torch_peer.py does, over 989 TFLOP/s dense bf16 of an H100 SXM).
 * Usage: cuda_train_step [layers] [tokens] */
#include <stdio.h>
#include <stdlib.h>

#ifndef CRUCIBLE_CUDA
int main(void) {
    printf("cuda_train_step: CUDA backend not built: nothing measured\n");
    return 0;
}
#else

#include <cuda_runtime.h>
#include <time.h>

#include "core/rng.h"
#include "model/cuda/ops_cuda.h"
#include "model/model.h"
#include "model/ops.h"

enum { WARM = 2, REPS = 5 };

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}
static double sync_ms(void) {
    if (cudaDeviceSynchronize() != cudaSuccess) { fprintf(stderr, "CUDA error\n"); exit(1); }
    return now_ms();
}
static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int L = argc > 1 ? atoi(argv[1]) : 2, N = argc > 2 ? atoi(argv[2]) : 4096;
    if (L < 1 || L > 27 || N < 16 || N > 16384) { fprintf(stderr, "usage: cuda_train_step [layers 1..27] [tokens]\n"); return 2; }
    if (crucible_cuda_device_count() <= 0) {
        printf("cuda_train_step: no CUDA device visible: nothing measured\n");
        return 0;
    }
    char js[2048];
    snprintf(js, sizeof js,
             "{\"vocab_size\":102400,\"hidden_size\":2048,\"num_hidden_layers\":%d,\"num_attention_heads\":16,"
             "\"num_key_value_heads\":16,\"q_lora_rank\":null,\"kv_lora_rank\":512,\"qk_nope_head_dim\":128,"
             "\"qk_rope_head_dim\":64,\"v_head_dim\":128,\"intermediate_size\":10944,\"moe_intermediate_size\":1408,"
             "\"n_routed_experts\":64,\"n_shared_experts\":2,\"num_experts_per_tok\":6,\"first_k_dense_replace\":1,"
             "\"moe_layer_freq\":1,\"topk_method\":\"greedy\",\"n_group\":1,\"topk_group\":1,"
             "\"routed_scaling_factor\":1.0,\"norm_topk_prob\":false,\"aux_loss_alpha\":0.001,\"seq_aux\":true,"
             "\"rms_norm_eps\":1e-6,\"rope_theta\":10000,\"rope_scaling\":{\"type\":\"yarn\",\"factor\":40,"
             "\"original_max_position_embeddings\":4096,\"beta_fast\":32,\"beta_slow\":1,\"mscale\":0.707,"
             "\"mscale_all_dim\":0.707},\"max_position_embeddings\":163840,\"tie_word_embeddings\":false,"
             "\"initializer_range\":0.02}", L);
    ModelConfig cfg;
    CrError e;
    if (model_config_parse(&cfg, js, "lite", &e)) { fprintf(stderr, "config: %s\n", e.msg); return 1; }
    int32_t *tok = malloc(4 * (size_t)N), *tgt = malloc(4 * (size_t)N), cu[2] = {0, N};
    float *logp = malloc(4 * (size_t)N), *dlogp = malloc(4 * (size_t)N);
    CrRng r;
    cr_rng_init(&r, 7, 8, 9);
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(cr_rng_u64(&r) % 102400);
    for (int i = 0; i < N; i++) tgt[i] = i + 1 < N ? tok[i + 1] : -1, dlogp[i] = -1.0f / N;
    Batch b = {.n_tokens = N, .n_seqs = 1, .tokens = tok, .targets = tgt, .cu_seqlens = cu};

    /* model FLOPs per step, as bench/cuda_torch_peer.py counts them */
    double D = 2048, H = 16, pairs = (double)N * (N + 1) / 2;
    double attn_p = D * H * 192 + D * (512 + 64) + 512 * H * (128 + 128) + H * 128 * D;
    double active = L * attn_p + 3 * D * 10944 + (L - 1) * (8 * 3 * D * 1408 + D * 64) + D * 102400;
    double flops = 6.0 * N * active + L * 6.0 * pairs * H * (192 + 128);

    const Ops *tables[3] = {ops_cuda(), ops_cuda_bf16(), ops_cuda_bf16()};
    printf("cuda_train_step: %d layers, %d tokens, %.3f model TFLOP/step\n", L, N, flops / 1e12);
    for (int k = 0; k < 3; k++) {
        if (k == 2 && setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", "1", 1) != 0) { fprintf(stderr, "setenv failed\n"); return 1; }
        const char *label = k == 2 ? "cuda-bf16 +bf16 weights" : tables[k]->name;
        long r0 = 0, g0 = 0;
        ops_cuda_param_shadow_counts(&r0, &g0);
        Model *m = model_create_ops(&cfg, tables[k], &e);
        if (!m) { fprintf(stderr, "model: %s\n", e.msg); return 1; }
        double t0 = now_ms();
        model_init_random(m, 1234);
        printf("  [%s] %.2f B params, init %.1f s\n", label, m->n_params / 1e9, (sync_ms() - t0) / 1e3);
        float *am = m->ops->alloc(sizeof(float) * m->n_params), *av = m->ops->alloc(sizeof(float) * m->n_params);
        double tf[REPS], tb[REPS], to[REPS], tt[REPS];
        for (int it = 0; it < WARM + REPS; it++) {
            double a = sync_ms(), aux = 0;
            float auxf = 0;
            model_zero_grads(m);
            if (model_forward(m, &b, logp, &auxf, &e)) { fprintf(stderr, "forward: %s\n", e.msg); return 1; }
            double bq = sync_ms();
            if (model_backward(m, &b, dlogp, 1.0f, &e)) { fprintf(stderr, "backward: %s\n", e.msg); return 1; }
            double c = sync_ms();
            for (int i = 0; i < m->n_tensors; i++) {
                const ParamTensor *pt = &m->tensors[i];
                ops_cuda_adamw_update(0.9f, 0.95f, 1e-8f, 0.1f, it + 1, 1e-5f, pt->ndim == 2, m->params + pt->offset,
                                      m->grads + pt->offset, am + pt->offset, av + pt->offset, pt->numel);
            }
            double d = sync_ms();
            aux = auxf;
            if (it == 0) {
                double nll = 0;
                for (int i = 0; i + 1 < N; i++) nll -= logp[i];
                printf("  [%s] first step: mean NLL %.4f (ln V = 11.54), aux %.5f\n", label, nll / (N - 1), aux);
            }
            if (it >= WARM) tf[it - WARM] = bq - a, tb[it - WARM] = c - bq, to[it - WARM] = d - c, tt[it - WARM] = d - a;
        }
        qsort(tf, REPS, sizeof(double), cmpd), qsort(tb, REPS, sizeof(double), cmpd);
        qsort(to, REPS, sizeof(double), cmpd), qsort(tt, REPS, sizeof(double), cmpd);
        double ms = tt[REPS / 2];
        printf("  [%s] step %.1f ms (fwd %.1f, bwd %.1f, adamw %.1f): %.0f tokens/s, %.1f TFLOP/s, MFU %.1f%%\n",
               label, ms, tf[REPS / 2], tb[REPS / 2], to[REPS / 2], N / (ms / 1e3), flops / ms / 1e9,
               100 * flops / ms / 1e9 / 989);
        long r1 = 0, g1 = 0;
        ops_cuda_param_shadow_counts(&r1, &g1);
        if (k == 2) {
            printf("  [%s] %.1f shadow refreshes and %.0f bf16-weight GEMMs per step\n", label,
                   (double)(r1 - r0) / (WARM + REPS), (double)(g1 - g0) / (WARM + REPS));
            unsetenv("CRUCIBLE_CUDA_BF16_WEIGHTS");
        }
        m->ops->free(am), m->ops->free(av);
        model_free(m);
    }
    free(tok), free(tgt), free(logp), free(dlogp);
    return 0;
}
#endif
