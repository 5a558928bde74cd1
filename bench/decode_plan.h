/* bench/decode_plan.h — the arithmetic of bench/cuda_decode.c, kept apart so that the CPU
 * tests check it (tests/bench/test_decode_plan.c): the DeepSeek-Coder-V2-Lite config, its
 * parameter count, the device memory a decode shape needs, what to run when it does not
 * fit, the distinct experts a decode step touches, and the bytes a decode step must read.
 * Defines: DECODE_BLOCK_SLACK, DecodePlan, decode_lite_config, decode_n_params,
 * decode_cache_positions, decode_need_bytes, decode_plan, decode_distinct_experts,
 * decode_expected_experts, decode_step_bytes, decode_peer_run. Header-only (static inline). */
#ifndef CRUCIBLE_BENCH_DECODE_PLAN_H
#define CRUCIBLE_BENCH_DECODE_PLAN_H

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "model/config.h"

/* Cache positions added per sequence for the engine's block rounding (16-token blocks,
 * prompt and completion rounded separately). */
enum { DECODE_BLOCK_SLACK = 32 };

/* DeepSeek-Coder-V2-Lite's config.json values (the HF checkpoint), truncated to L layers. */
static inline int decode_lite_config(ModelConfig *cfg, int L, CrError *e) {
    char js[2048];
    snprintf(js, sizeof js,
             "{\"model_type\":\"deepseek_v2\",\"vocab_size\":102400,\"hidden_size\":2048,\"num_hidden_layers\":%d,"
             "\"num_attention_heads\":16,\"num_key_value_heads\":16,\"q_lora_rank\":null,\"kv_lora_rank\":512,"
             "\"qk_nope_head_dim\":128,\"qk_rope_head_dim\":64,\"v_head_dim\":128,\"intermediate_size\":10944,"
             "\"moe_intermediate_size\":1408,\"n_routed_experts\":64,\"n_shared_experts\":2,\"num_experts_per_tok\":6,"
             "\"first_k_dense_replace\":1,\"moe_layer_freq\":1,\"topk_method\":\"greedy\",\"n_group\":1,"
             "\"topk_group\":1,\"routed_scaling_factor\":1.0,\"norm_topk_prob\":false,\"aux_loss_alpha\":0.001,"
             "\"seq_aux\":true,\"rms_norm_eps\":1e-6,\"rope_theta\":10000,\"rope_scaling\":{\"type\":\"yarn\","
             "\"factor\":40,\"original_max_position_embeddings\":4096,\"beta_fast\":32,\"beta_slow\":1,"
             "\"mscale\":0.707,\"mscale_all_dim\":0.707},\"max_position_embeddings\":163840,"
             "\"tie_word_embeddings\":false,\"initializer_range\":0.02,\"bos_token_id\":100000,"
             "\"eos_token_id\":100001}",
             L);
    return model_config_parse(cfg, js, "Lite config", e);
}

/* Parameters of a config (q-LoRA off, untied), counted from the architecture. */
static inline double decode_n_params(const ModelConfig *c) {
    double D = c->hidden_size, H = c->num_attention_heads, dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim;
    double dv = c->v_head_dim, r = c->kv_lora_rank, E = c->n_routed_experts, Ie = c->moe_intermediate_size;
    double n = 2.0 * c->vocab_size * D + D;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        n += 2 * D + H * (dn + dr) * D + (r + dr) * D + r + H * (dn + dv) * r + D * H * dv;
        if (model_layer_is_moe(c, l))
            n += E * D + E * 3 * Ie * D + 3 * D * Ie * c->n_shared_experts;
        else
            n += 3 * D * c->intermediate_size;
    }
    return n;
}

/* The cache token budget to give rollout_create for B sequences of P + N tokens. */
static inline long decode_cache_positions(int B, int P, int N) {
    return (long)B * (long)(P + N + DECODE_BLOCK_SLACK);
}

/* Device bytes for B sequences on L Lite layers: fp32 params (plus copy_bytes per
 * parameter of bf16 copies: 2 under CRUCIBLE_CUDA_DECODE_BF16=1, else 0) + fp32 latent
 * cache (576 floats per position per layer) + reserve. */
static inline double decode_need_bytes(int L, int B, int P, int N, double reserve, double copy_bytes) {
    ModelConfig c;
    if (decode_lite_config(&c, L, NULL)) return INFINITY;
    return decode_n_params(&c) * (4.0 + copy_bytes) +
           (double)decode_cache_positions(B, P, N) * L * (c.kv_lora_rank + c.qk_rope_head_dim) * 4.0 + reserve;
}

typedef struct DecodePlan {
    int B_req, B, L;   /* asked, run (B <= B_req), layers run; B or L 0: nothing fits */
    double need_full;  /* bytes the asked shape (B_req x L_req) needs */
} DecodePlan;

/* What runs for B_req sequences of L_req layers in free_bytes: the shape itself if it fits,
 * else (fit_seqs 0) the most layers that fit B_req sequences, but at least 2 (the dense
 * layer and one MoE layer; L = 0 when even that does not fit), or (fit_seqs 1) the most
 * sequences that fit L_req layers (B = 0 when none does). */
static inline DecodePlan decode_plan(int B_req, int L_req, int P, int N, double reserve, double copy_bytes,
                                     double free_bytes, int fit_seqs) {
    DecodePlan p = {B_req, B_req, L_req, decode_need_bytes(L_req, B_req, P, N, reserve, copy_bytes)};
    if (p.need_full <= free_bytes) return p;
    if (!fit_seqs) {
        int Lmin = L_req < 2 ? L_req : 2;
        while (p.L >= Lmin && decode_need_bytes(p.L, p.B, P, N, reserve, copy_bytes) > free_bytes) p.L--;
        if (p.L < Lmin) p.L = 0;
    } else
        while (p.B > 0 && decode_need_bytes(L_req, p.B, P, N, reserve, copy_bytes) > free_bytes) p.B--;
    return p;
}

/* Mean distinct experts per MoE layer per decode step. expert_ids[b] (NULL: not recorded)
 * is sample b's [N][n_moe][K] routing; token k >= 1 was produced by decode step k.
 * -1 when any sample has no record. */
static inline double decode_distinct_experts(const int32_t *const *expert_ids, int B, int N, int n_moe, int K,
                                             int E) {
    if (N < 2 || n_moe <= 0 || E > 1024) return -1;
    for (int b = 0; b < B; b++)
        if (!expert_ids[b]) return -1;
    double sum = 0;
    for (int k = 1; k < N; k++)
        for (int j = 0; j < n_moe; j++) {
            unsigned char used[1024] = {0};
            int d = 0;
            for (int b = 0; b < B; b++)
                for (int q = 0; q < K; q++) {
                    int x = expert_ids[b][((size_t)k * n_moe + j) * K + q];
                    if (x >= 0 && x < E && !used[x]) used[x] = 1, d++;
                }
            sum += d;
        }
    return sum / (N - 1) / n_moe;
}

/* Expected distinct experts among E when B tokens each pick K distinct ones uniformly. */
static inline double decode_expected_experts(int B, int K, int E) {
    return E * (1.0 - pow(1.0 - (double)K / E, B));
}

/* Bytes one decode step of B sequences must read at least once: every parameter outside
 * the routed experts and the embedding (fixed_bytes, counted in fp32), read at fixed_wb
 * bytes per weight, B fp32 embedding rows, `experts` distinct routed experts in each of
 * n_moe layers at expert_wb bytes per weight (4: fp32 storage, 2: bf16), and the fp32
 * latent cache rows of the mean context P + N/2 over L layers. */
static inline double decode_step_bytes(const ModelConfig *c, double fixed_bytes, int B, int P, int N, double experts,
                                       double fixed_wb, double expert_wb) {
    double D = c->hidden_size, L = c->num_hidden_layers;
    int n_moe = 0;
    for (int l = 0; l < c->num_hidden_layers; l++) n_moe += model_layer_is_moe(c, l);
    double rows = B < c->vocab_size ? B : c->vocab_size;
    double expert_bytes = 3.0 * c->moe_intermediate_size * D * expert_wb;
    double cache = (double)B * (P + N / 2.0) * L * (c->kv_lora_rank + c->qk_rope_head_dim) * 4.0;
    return fixed_bytes * fixed_wb / 4.0 + rows * D * 4.0 + experts * n_moe * expert_bytes + cache;
}

/* The run of shape (B sequences, L layers, P + N tokens) in the JSON object written by
 * bench/cuda_decode_hf.py ({"prompt", "gen", "runs": [{"seqs", "layers", "decode_tok_s",
 * "e2e_tok_s"} or {"seqs", "layers", "error"}]}), or NULL with *why saying why not (no
 * peer, not in its plan, another layer count or length, the peer's run failed, fields
 * missing). Ratios are only ever taken between identical shapes. */
static inline const cJSON *decode_peer_run(const cJSON *peer, int B, int L, int P, int N, const char **why) {
    *why = "no peer JSON";
    if (!peer) return NULL;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(peer, "prompt"), *g = cJSON_GetObjectItemCaseSensitive(peer, "gen");
    if (!cJSON_IsNumber(p) || !cJSON_IsNumber(g) || p->valueint != P || g->valueint != N) {
        *why = "the peer ran another prompt/gen length";
        return NULL;
    }
    *why = "not in the peer's plan";
    const cJSON *x;
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(peer, "runs")) {
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(x, "seqs"), *l = cJSON_GetObjectItemCaseSensitive(x, "layers");
        if (!cJSON_IsNumber(s) || s->valueint != B) continue;
        if (!cJSON_IsNumber(l) || l->valueint != L) {
            *why = "the peer ran another layer count";
            continue;
        }
        if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(x, "error"))) {
            *why = "the peer's run failed (see its JSON)";
            return NULL;
        }
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(x, "decode_tok_s"), *e = cJSON_GetObjectItemCaseSensitive(x, "e2e_tok_s");
        if (!cJSON_IsNumber(d) || !cJSON_IsNumber(e) || !(d->valuedouble > 0) || !(e->valuedouble > 0)) {
            *why = "the peer's run lacks positive decode_tok_s / e2e_tok_s";
            return NULL;
        }
        return x;
    }
    return NULL;
}

#endif
