/* model/config.h — the Hugging Face DeepseekV2 config.json (spec/deepseek-v2.md §1).
 * Defines: ModelConfig, TopkMethod, model_config_parse, model_config_load,
 * model_config_to_json, model_layer_is_moe, model_softmax_scale, model_rope_inv_freq. */
#ifndef CRUCIBLE_MODEL_CONFIG_H
#define CRUCIBLE_MODEL_CONFIG_H

#include "core/error.h"

typedef enum TopkMethod { TOPK_GREEDY = 0, TOPK_GROUP_LIMITED_GREEDY = 1 } TopkMethod;

/* q_a_layernorm and kv_a_layernorm are built without an eps argument in DeepSeek's code and
 * in transformers: their eps is always 1e-6, whatever rms_norm_eps says (spec 3.2). */
#define MODEL_LATENT_NORM_EPS 1e-6f

typedef struct ModelConfig {
    int vocab_size, hidden_size, num_hidden_layers, num_attention_heads, num_key_value_heads;
    int q_lora_rank;              /* 0 = no query compression (q_proj) */
    int kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim;
    int intermediate_size, moe_intermediate_size;
    int n_routed_experts;         /* 0 = dense everywhere */
    int n_shared_experts, num_experts_per_tok, first_k_dense_replace, moe_layer_freq;
    TopkMethod topk_method;
    int n_group, topk_group;
    float routed_scaling_factor;
    int norm_topk_prob;
    float aux_loss_alpha;
    int seq_aux;
    float rms_norm_eps, rope_theta;
    int rope_yarn;                /* rope_scaling {"type": "yarn", ...} present */
    float yarn_factor, yarn_beta_fast, yarn_beta_slow, yarn_mscale, yarn_mscale_all_dim;
    int yarn_original_max_position_embeddings;
    int max_position_embeddings;
    int bos_token_id, eos_token_id;
    int tie_word_embeddings;
    float initializer_range;
} ModelConfig;

/* Parse config.json text; src names the file in errors. Unknown or contradictory
 * values are errors naming the field. */
int model_config_parse(ModelConfig *c, const char *json, const char *src, CrError *e);
int model_config_load(ModelConfig *c, const char *path, CrError *e);
/* malloc'd config.json text that model_config_parse reads back identically and that
 * transformers' DeepseekV2Config accepts. */
char *model_config_to_json(const ModelConfig *c);

/* Check a filled config for contradictions (errors name the field; src names the file). */
int model_config_validate(const ModelConfig *c, const char *src, CrError *e);

int model_layer_is_moe(const ModelConfig *c, int layer);
/* qk_head_dim^-0.5 * mscale(factor, mscale_all_dim)^2 (spec §4.3) */
double model_softmax_scale(const ModelConfig *c);
/* inv_freq[qk_rope_head_dim/2] with YaRN (spec §5.1) and the cos/sin factor (§5.2). */
void model_rope_inv_freq(const ModelConfig *c, float *inv_freq, float *cs_factor);

#endif
