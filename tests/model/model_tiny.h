/* tests/model/model_tiny.h — tiny DeepseekV2 configs shared by the model tests.
 * Defines: TinyOpts, tiny_config (a validated ModelConfig built from config.json text). */
#ifndef CRUCIBLE_TESTS_MODEL_TINY_H
#define CRUCIBLE_TESTS_MODEL_TINY_H

#include <stdio.h>

#include "model/config.h"

typedef struct TinyOpts {
    int q_lora;        /* q_lora_rank (0 = null) */
    int group_limited; /* group_limited_greedy with 4 groups, 2 kept */
    int yarn;          /* rope_scaling yarn (factor 4, original 16) */
    int tie;           /* tie_word_embeddings */
    int norm_topk;     /* norm_topk_prob */
    int seq_aux;       /* seq_aux */
    float aux_alpha;   /* aux_loss_alpha */
    float routed_scale;
    int n_shared;      /* n_shared_experts */
} TinyOpts;

/* vocab 48, D 32, 3 layers (layer 0 dense), H 4, r 16, dn 8, dr 4, dv 6 (dqk 12 != dv),
 * I 40, Ie 12, E 8, K 3, max positions 64. */
static inline int tiny_config(ModelConfig *c, TinyOpts o) {
    char js[2048];
    char ql[32], rs[256];
    if (o.q_lora) snprintf(ql, sizeof ql, "%d", o.q_lora); else snprintf(ql, sizeof ql, "null");
    if (o.yarn)
        snprintf(rs, sizeof rs, "{\"type\":\"yarn\",\"factor\":4,\"original_max_position_embeddings\":16,"
                 "\"beta_fast\":32,\"beta_slow\":1,\"mscale\":0.707,\"mscale_all_dim\":0.707}");
    else
        snprintf(rs, sizeof rs, "null");
    snprintf(js, sizeof js,
             "{\"vocab_size\":48,\"hidden_size\":32,\"num_hidden_layers\":3,\"num_attention_heads\":4,"
             "\"num_key_value_heads\":4,\"q_lora_rank\":%s,\"kv_lora_rank\":16,\"qk_nope_head_dim\":8,"
             "\"qk_rope_head_dim\":4,\"v_head_dim\":6,\"intermediate_size\":40,\"moe_intermediate_size\":12,"
             "\"n_routed_experts\":8,\"n_shared_experts\":%d,\"num_experts_per_tok\":3,\"first_k_dense_replace\":1,"
             "\"moe_layer_freq\":1,\"topk_method\":\"%s\",\"n_group\":%d,\"topk_group\":%d,"
             "\"routed_scaling_factor\":%g,\"norm_topk_prob\":%s,\"aux_loss_alpha\":%g,\"seq_aux\":%s,"
             "\"rms_norm_eps\":1e-6,\"rope_theta\":10000,\"rope_scaling\":%s,\"max_position_embeddings\":64,"
             "\"tie_word_embeddings\":%s,\"initializer_range\":0.2}",
             ql, o.n_shared, o.group_limited ? "group_limited_greedy" : "greedy", o.group_limited ? 4 : 1,
             o.group_limited ? 2 : 1, o.routed_scale > 0 ? o.routed_scale : 1.0, o.norm_topk ? "true" : "false",
             o.aux_alpha, o.seq_aux ? "true" : "false", rs, o.tie ? "true" : "false");
    return model_config_parse(c, js, "tiny", NULL);
}

#endif
