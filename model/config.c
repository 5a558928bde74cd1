/* model/config.c — config.json parsing, validation, writing and derived constants
 * (spec/deepseek-v2.md §1, §4.3, §5). Defaults for missing keys are those of the
 * deepseek-ai remote code (configuration_deepseek.py), as the spec's parser rules say;
 * an explicit null q_lora_rank means "no q-LoRA". Both the legacy `rope_scaling` +
 * `rope_theta` keys and transformers 5's `rope_parameters` are read. */
#include "model/config.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/json.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Keys that carry no math we implement, accepted and ignored. Anything else that is
 * not parsed below is an error naming the key, so that a config we would silently
 * misread (quantization, another model type) is refused. */
static const char *k_ignored_keys[] = {
    "architectures", "auto_map", "torch_dtype", "dtype", "transformers_version", "use_cache",
    "pretraining_tp", "ep_size", "output_router_logits", "pad_token_id", "_name_or_path",
    "num_key_value_heads", "router_aux_loss_coef", "return_dict", "output_hidden_states",
    "output_attentions", "torchscript", "is_encoder_decoder", "chunk_size_feed_forward",
    "tokenizer_class", "id2label", "label2id", "problem_type", "rope_interleave",
    "mlp_layer_types", "layer_types", "generation_config", NULL};

static int is_ignored(const char *k) {
    for (int i = 0; k_ignored_keys[i]; i++)
        if (!strcmp(k, k_ignored_keys[i])) return 1;
    return 0;
}

static const char *k_parsed_keys[] = {
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "q_lora_rank",
    "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "intermediate_size",
    "moe_intermediate_size", "n_routed_experts", "n_shared_experts", "num_experts_per_tok",
    "first_k_dense_replace", "moe_layer_freq", "topk_method", "n_group", "topk_group",
    "routed_scaling_factor", "norm_topk_prob", "aux_loss_alpha", "seq_aux", "rms_norm_eps",
    "rope_theta", "rope_scaling", "rope_parameters", "max_position_embeddings", "bos_token_id",
    "eos_token_id", "tie_word_embeddings", "initializer_range", "model_type", "hidden_act",
    "attention_bias", "attention_dropout", "mlp_bias", "scoring_func", "head_dim", "qk_head_dim",
    NULL};

static int is_parsed(const char *k) {
    for (int i = 0; k_parsed_keys[i]; i++)
        if (!strcmp(k, k_parsed_keys[i])) return 1;
    return 0;
}

/* Integer field: absent -> default; null -> null_value (or error when null_value < -1). */
static int get_int(const cJSON *o, const char *key, int def, int null_value, int *out,
                   const char *src, CrError *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) { *out = def; return 0; }
    if (cJSON_IsNull(it)) {
        if (null_value < -1) return cr_error_set(e, "%s: field \"%s\": must not be null", src, key);
        *out = null_value;
        return 0;
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) ||
        fabs(it->valuedouble) > 2e9)
        return cr_error_set(e, "%s: field \"%s\": expected an integer", src, key);
    *out = (int)it->valuedouble;
    return 0;
}

static int get_num(const cJSON *o, const char *key, double def, double *out, const char *src,
                   CrError *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) { *out = def; return 0; }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return cr_error_set(e, "%s: field \"%s\": expected a number", src, key);
    *out = it->valuedouble;
    return 0;
}

static int get_bool(const cJSON *o, const char *key, int def, int *out, const char *src,
                    CrError *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it) { *out = def; return 0; }
    if (!cJSON_IsBool(it)) return cr_error_set(e, "%s: field \"%s\": expected true or false", src, key);
    *out = cJSON_IsTrue(it);
    return 0;
}

static const char *get_str(const cJSON *o, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) ? it->valuestring : NULL;
}

static int expect_str(const cJSON *o, const char *key, const char *want, const char *src,
                      CrError *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsString(it) || strcmp(it->valuestring, want))
        return cr_error_set(e, "%s: field \"%s\": unsupported value (only \"%s\" is implemented)",
                            src, key, want);
    return 0;
}

static double yarn_get_mscale(double scale, double mscale);

/* A number of a rope block; absent or null (as transformers writes an unset one): def. */
static int rope_num(const cJSON *o, const char *field, const char *key, double def, double *out, const char *src,
                    CrError *e) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!it || cJSON_IsNull(it)) { *out = def; return 0; }
    if (!cJSON_IsNumber(it) || !isfinite(it->valuedouble))
        return cr_error_set(e, "%s: field \"%s.%s\": expected a number", src, field, key);
    *out = it->valuedouble;
    return 0;
}

/* One rope block (rope_parameters or the legacy rope_scaling) into c's rope fields. */
static int parse_rope_block(ModelConfig *c, const cJSON *root, const cJSON *use, const char *field, double theta_top,
                            const char *src, CrError *e) {
    c->rope_theta = (float)theta_top;
    c->rope_yarn = 0;
    c->yarn_factor = c->yarn_beta_fast = c->yarn_beta_slow = c->yarn_mscale = c->yarn_mscale_all_dim = 0;
    c->yarn_original_max_position_embeddings = 0;
    if (!cJSON_IsObject(use)) return cr_error_set(e, "%s: field \"%s\": expected an object", src, field);
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(use, "rope_theta");
    if (th) {
        if (!cJSON_IsNumber(th) || th->valuedouble <= 0)
            return cr_error_set(e, "%s: field \"%s.rope_theta\": expected a positive number", src, field);
        if (cJSON_GetObjectItemCaseSensitive(root, "rope_theta") && th->valuedouble != theta_top)
            return cr_error_set(e, "%s: fields \"rope_theta\" and \"%s.rope_theta\" disagree", src, field);
        c->rope_theta = (float)th->valuedouble;
    }
    const char *type = get_str(use, "rope_type");
    const char *type2 = get_str(use, "type");
    if (type && type2 && strcmp(type, type2))
        return cr_error_set(e, "%s: field \"%s\": \"type\" and \"rope_type\" disagree", src, field);
    if (!type) type = type2;
    if (!type || !strcmp(type, "default")) return 0;
    if (strcmp(type, "yarn"))
        return cr_error_set(e, "%s: field \"%s.type\": unsupported rope scaling \"%s\" (only yarn)",
                            src, field, type);
    c->rope_yarn = 1;
    double v = 0, implied = 0, origd = 0;
    if (rope_num(use, field, "original_max_position_embeddings", 0, &origd, src, e)) return -1;
    if (origd != floor(origd) || origd < 0 || origd > 1e9)
        return cr_error_set(e, "%s: field \"%s.original_max_position_embeddings\": expected a non-negative integer",
                            src, field);
    int orig = (int)origd;
    if (orig > 0) implied = (double)c->max_position_embeddings / orig;
    if (rope_num(use, field, "factor", implied, &v, src, e)) return -1;
    c->yarn_factor = (float)v;
    c->yarn_original_max_position_embeddings = orig;
    if (rope_num(use, field, "beta_fast", 32, &v, src, e)) return -1;
    c->yarn_beta_fast = (float)v;
    if (rope_num(use, field, "beta_slow", 1, &v, src, e)) return -1;
    c->yarn_beta_slow = (float)v;
    if (rope_num(use, field, "mscale", 1, &v, src, e)) return -1;
    c->yarn_mscale = (float)v;
    if (rope_num(use, field, "mscale_all_dim", 0, &v, src, e)) return -1;
    c->yarn_mscale_all_dim = (float)v;
    /* DeepSeek's code scales cos/sin by g(mscale = 1)/g(mscale_all_dim = 0) over the keys
     * given; transformers takes that ratio only when both are given and non-zero, else
     * g(1). Where the two differ the config has no single meaning. */
    {
        const cJSON *jm = cJSON_GetObjectItemCaseSensitive(use, "mscale");
        const cJSON *ja = cJSON_GetObjectItemCaseSensitive(use, "mscale_all_dim");
        int hm = jm && !cJSON_IsNull(jm), ha = ja && !cJSON_IsNull(ja);
        double f = c->yarn_factor, m = c->yarn_mscale, a = c->yarn_mscale_all_dim;
        double rc = yarn_get_mscale(f, m) / yarn_get_mscale(f, a);
        double hf = hm && ha && m != 0 && a != 0 ? rc : yarn_get_mscale(f, 1.0);
        if (fabs(rc - hf) > 1e-7 * fabs(hf))
            return cr_error_set(e, "%s: fields \"%s.mscale\" (%s) and \"%s.mscale_all_dim\" (%s): DeepSeek's code and "
                                   "transformers scale YaRN's cos/sin differently for this pair (%.6g vs %.6g); give "
                                   "both, non-zero (the released checkpoints: 0.707 and 0.707), or neither",
                                src, field, hm ? "given" : "not given", field, ha ? "given" : "not given", rc, hf);
    }
    for (const cJSON *it = use->child; it; it = it->next) {
        static const char *known[] = {"type", "rope_type", "factor", "original_max_position_embeddings",
                                      "beta_fast", "beta_slow", "mscale", "mscale_all_dim",
                                      "rope_theta", "attention_factor", "truncate", NULL};
        int ok = 0;
        for (int i = 0; known[i]; i++) ok |= !strcmp(it->string, known[i]);
        if (!ok) return cr_error_set(e, "%s: field \"%s.%s\": unknown key", src, field, it->string);
        if (!strcmp(it->string, "attention_factor") && !cJSON_IsNull(it))
            return cr_error_set(e, "%s: field \"%s.attention_factor\": explicit attention_factor is not supported", src, field);
        if (!strcmp(it->string, "truncate") && cJSON_IsFalse(it))
            return cr_error_set(e, "%s: field \"%s.truncate\": only truncate=true is supported", src, field);
    }
    return 0;
}

static int parse_rope(ModelConfig *c, const cJSON *root, const char *src, CrError *e) {
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    double theta_top = 10000.0;
    if (get_num(root, "rope_theta", 10000.0, &theta_top, src, e)) return -1;
    c->rope_theta = (float)theta_top;
    c->rope_yarn = 0;
    int has_p = rp && !cJSON_IsNull(rp), has_s = rs && !cJSON_IsNull(rs);
    if (!has_p && !has_s) return 0;
    if (parse_rope_block(c, root, has_p ? rp : rs, has_p ? "rope_parameters" : "rope_scaling", theta_top, src, e))
        return -1;
    if (has_p && has_s) {
        /* transformers 5 lets a legacy rope_scaling overwrite rope_parameters, DeepSeek's code
         * reads only rope_scaling: two blocks that scale differently have no one meaning */
        ModelConfig o = *c;
        if (parse_rope_block(&o, root, rs, "rope_scaling", theta_top, src, e)) return -1;
        if (o.rope_yarn != c->rope_yarn || o.yarn_factor != c->yarn_factor ||
            o.yarn_original_max_position_embeddings != c->yarn_original_max_position_embeddings ||
            o.yarn_beta_fast != c->yarn_beta_fast || o.yarn_beta_slow != c->yarn_beta_slow ||
            o.yarn_mscale != c->yarn_mscale || o.yarn_mscale_all_dim != c->yarn_mscale_all_dim)
            return cr_error_set(e, "%s: fields \"rope_parameters\" and \"rope_scaling\" describe different rope "
                                   "scaling: keep one of them", src);
    }
    return 0;
}

int model_config_validate(const ModelConfig *c, const char *src, CrError *e) {
#define POS(f) if (c->f <= 0) return cr_error_set(e, "%s: field \"" #f "\": must be > 0 (got %d)", src, (int)c->f)
    POS(vocab_size); POS(hidden_size); POS(num_hidden_layers); POS(num_attention_heads);
    POS(kv_lora_rank); POS(qk_rope_head_dim); POS(v_head_dim); POS(max_position_embeddings);
    POS(moe_layer_freq);
#undef POS
    if (c->qk_nope_head_dim < 0) return cr_error_set(e, "%s: field \"qk_nope_head_dim\": must be >= 0", src);
    if (c->qk_rope_head_dim % 2) return cr_error_set(e, "%s: field \"qk_rope_head_dim\": must be even (RoPE rotates pairs)", src);
    if (c->q_lora_rank < 0) return cr_error_set(e, "%s: field \"q_lora_rank\": must be null or > 0", src);
    if (c->first_k_dense_replace < 0) return cr_error_set(e, "%s: field \"first_k_dense_replace\": must be >= 0", src);
    /* Optional counts: null/absent reads as 0; a negative value is never meaningful (and
     * would not survive model_config_to_json, which writes 0 as null). */
#define NONNEG(f) if (c->f < 0) return cr_error_set(e, "%s: field \"" #f "\": must be null or >= 0 (got %d)", src, c->f)
    NONNEG(num_key_value_heads); NONNEG(n_group); NONNEG(topk_group); NONNEG(n_shared_experts);
    NONNEG(num_experts_per_tok); NONNEG(intermediate_size); NONNEG(moe_intermediate_size);
#undef NONNEG
    /* fp32 fields: a JSON number beyond fp32 range becomes inf here. */
#define FINITE(f) if (!isfinite(c->f)) return cr_error_set(e, "%s: field \"" #f "\": not a finite fp32 number", src)
    FINITE(routed_scaling_factor); FINITE(aux_loss_alpha); FINITE(rms_norm_eps); FINITE(rope_theta);
    FINITE(yarn_factor); FINITE(yarn_beta_fast); FINITE(yarn_beta_slow); FINITE(yarn_mscale);
    FINITE(yarn_mscale_all_dim); FINITE(initializer_range);
#undef FINITE
    /* Sanity caps (far above any DeepSeek-V2 model) so that hostile configs cannot make
     * the validation loop or the parameter table explode. */
#define CAP(f, lim) if (c->f > (lim)) return cr_error_set(e, "%s: field \"" #f "\": %d is beyond the supported %d", src, c->f, (lim))
    CAP(num_hidden_layers, 4096); CAP(vocab_size, 1 << 24); CAP(hidden_size, 1 << 20);
    CAP(num_attention_heads, 1 << 16); CAP(n_routed_experts, 1 << 16); CAP(n_shared_experts, 1 << 10);
    CAP(intermediate_size, 1 << 22); CAP(moe_intermediate_size, 1 << 22); CAP(kv_lora_rank, 1 << 20);
    CAP(q_lora_rank, 1 << 20); CAP(qk_nope_head_dim, 1 << 16); CAP(qk_rope_head_dim, 1 << 16);
    CAP(v_head_dim, 1 << 16);
#undef CAP
    if (!(c->rms_norm_eps > 0)) return cr_error_set(e, "%s: field \"rms_norm_eps\": must be > 0", src);
    if (!(c->rope_theta > 0)) return cr_error_set(e, "%s: field \"rope_theta\": must be > 0", src);
    if (!(c->initializer_range >= 0)) return cr_error_set(e, "%s: field \"initializer_range\": must be >= 0", src);
    int any_dense = 0, any_moe = 0;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        if (model_layer_is_moe(c, l)) any_moe = 1; else any_dense = 1;
    }
    if (any_dense && c->intermediate_size <= 0)
        return cr_error_set(e, "%s: field \"intermediate_size\": must be > 0 (the config has dense layers)", src);
    if (c->n_routed_experts < 0) return cr_error_set(e, "%s: field \"n_routed_experts\": must be null or >= 0", src);
    if (any_moe) {
        if (c->moe_intermediate_size <= 0)
            return cr_error_set(e, "%s: field \"moe_intermediate_size\": must be > 0", src);
        if (c->num_experts_per_tok <= 0 || c->num_experts_per_tok > c->n_routed_experts)
            return cr_error_set(e, "%s: field \"num_experts_per_tok\": must be in 1..n_routed_experts (%d), got %d",
                                src, c->n_routed_experts, c->num_experts_per_tok);
        if (c->n_shared_experts < 0) return cr_error_set(e, "%s: field \"n_shared_experts\": must be null or >= 0", src);
        if (c->topk_method == TOPK_GROUP_LIMITED_GREEDY) {
            if (c->n_group <= 0 || c->n_routed_experts % c->n_group)
                return cr_error_set(e, "%s: field \"n_group\": must divide n_routed_experts (%d) for group_limited_greedy, got %d",
                                    src, c->n_routed_experts, c->n_group);
            if (c->topk_group <= 0 || c->topk_group > c->n_group)
                return cr_error_set(e, "%s: field \"topk_group\": must be in 1..n_group (%d), got %d", src, c->n_group, c->topk_group);
            if (c->num_experts_per_tok > c->topk_group * (c->n_routed_experts / c->n_group))
                return cr_error_set(e, "%s: field \"num_experts_per_tok\": %d exceeds the experts in topk_group groups (%d)",
                                    src, c->num_experts_per_tok, c->topk_group * (c->n_routed_experts / c->n_group));
        }
        if (!(c->routed_scaling_factor > 0))
            return cr_error_set(e, "%s: field \"routed_scaling_factor\": must be > 0", src);
        if (!(c->aux_loss_alpha >= 0)) return cr_error_set(e, "%s: field \"aux_loss_alpha\": must be >= 0", src);
    }
    if (c->rope_yarn) {
        if (!(c->yarn_factor > 0)) return cr_error_set(e, "%s: field \"rope_scaling.factor\": must be > 0", src);
        if (c->yarn_original_max_position_embeddings <= 0)
            return cr_error_set(e, "%s: field \"rope_scaling.original_max_position_embeddings\": must be > 0 for yarn", src);
        if (!(c->yarn_beta_fast > 0) || !(c->yarn_beta_slow > 0))
            return cr_error_set(e, "%s: field \"rope_scaling.beta_fast/beta_slow\": must be > 0", src);
    }
    return 0;
}

int model_config_parse(ModelConfig *c, const char *json, const char *src, CrError *e) {
    memset(c, 0, sizeof *c);
    cJSON *root = cr_json_parse_object(json, src, e);
    if (!root) return -1;
    int rc = -1;
    for (const cJSON *it = root->child; it; it = it->next) {
        if (!is_parsed(it->string) && !is_ignored(it->string)) {
            cr_error_set(e, "%s: field \"%s\": unknown field (not a DeepseekV2 config key Crucible implements)", src, it->string);
            goto out;
        }
    }
    if (expect_str(root, "model_type", "deepseek_v2", src, e) ||
        expect_str(root, "hidden_act", "silu", src, e) ||
        expect_str(root, "scoring_func", "softmax", src, e)) goto out;
    int b = 0;
    if (get_bool(root, "attention_bias", 0, &b, src, e)) goto out;
    if (b) { cr_error_set(e, "%s: field \"attention_bias\": true is not supported (DeepSeek-V2 has no biases)", src); goto out; }
    if (get_bool(root, "mlp_bias", 0, &b, src, e)) goto out;
    if (b) { cr_error_set(e, "%s: field \"mlp_bias\": true is not supported", src); goto out; }
    double d = 0;
    if (get_num(root, "attention_dropout", 0, &d, src, e)) goto out;
    if (d != 0) { cr_error_set(e, "%s: field \"attention_dropout\": only 0 is supported", src); goto out; }

    if (get_int(root, "vocab_size", 102400, -2, &c->vocab_size, src, e) ||
        get_int(root, "hidden_size", 4096, -2, &c->hidden_size, src, e) ||
        get_int(root, "num_hidden_layers", 30, -2, &c->num_hidden_layers, src, e) ||
        get_int(root, "num_attention_heads", 32, -2, &c->num_attention_heads, src, e) ||
        get_int(root, "num_key_value_heads", 0, 0, &c->num_key_value_heads, src, e) ||
        get_int(root, "q_lora_rank", 1536, 0, &c->q_lora_rank, src, e) ||
        get_int(root, "kv_lora_rank", 512, -2, &c->kv_lora_rank, src, e) ||
        get_int(root, "qk_nope_head_dim", 128, -2, &c->qk_nope_head_dim, src, e) ||
        get_int(root, "qk_rope_head_dim", 64, -2, &c->qk_rope_head_dim, src, e) ||
        get_int(root, "v_head_dim", 128, -2, &c->v_head_dim, src, e) ||
        get_int(root, "intermediate_size", 11008, 0, &c->intermediate_size, src, e) ||
        get_int(root, "moe_intermediate_size", 1407, 0, &c->moe_intermediate_size, src, e) ||
        get_int(root, "n_routed_experts", 0, 0, &c->n_routed_experts, src, e) ||
        get_int(root, "n_shared_experts", 0, 0, &c->n_shared_experts, src, e) ||
        get_int(root, "num_experts_per_tok", 0, 0, &c->num_experts_per_tok, src, e) ||
        get_int(root, "first_k_dense_replace", 0, -2, &c->first_k_dense_replace, src, e) ||
        get_int(root, "moe_layer_freq", 1, -2, &c->moe_layer_freq, src, e) ||
        get_int(root, "n_group", 0, 0, &c->n_group, src, e) ||
        get_int(root, "topk_group", 0, 0, &c->topk_group, src, e) ||
        get_int(root, "max_position_embeddings", 2048, -2, &c->max_position_embeddings, src, e) ||
        get_int(root, "bos_token_id", 100000, -1, &c->bos_token_id, src, e) ||
        get_int(root, "eos_token_id", 100001, -1, &c->eos_token_id, src, e))
        goto out;
    if (get_num(root, "routed_scaling_factor", 1.0, &d, src, e)) goto out;
    c->routed_scaling_factor = (float)d;
    if (get_num(root, "aux_loss_alpha", 0.001, &d, src, e)) goto out;
    c->aux_loss_alpha = (float)d;
    if (get_num(root, "rms_norm_eps", 1e-6, &d, src, e)) goto out;
    c->rms_norm_eps = (float)d;
    if (get_num(root, "initializer_range", 0.02, &d, src, e)) goto out;
    c->initializer_range = (float)d;
    if (get_bool(root, "norm_topk_prob", 0, &c->norm_topk_prob, src, e) ||
        get_bool(root, "seq_aux", 1, &c->seq_aux, src, e) ||
        get_bool(root, "tie_word_embeddings", 0, &c->tie_word_embeddings, src, e))
        goto out;
    const char *tm = get_str(root, "topk_method");
    const cJSON *tmi = cJSON_GetObjectItemCaseSensitive(root, "topk_method");
    if (tmi && !cJSON_IsString(tmi)) { cr_error_set(e, "%s: field \"topk_method\": expected a string", src); goto out; }
    if (!tm || !strcmp(tm, "greedy")) c->topk_method = TOPK_GREEDY;
    else if (!strcmp(tm, "group_limited_greedy")) c->topk_method = TOPK_GROUP_LIMITED_GREEDY;
    else { cr_error_set(e, "%s: field \"topk_method\": unsupported value \"%s\" (greedy or group_limited_greedy)", src, tm); goto out; }
    if (parse_rope(c, root, src, e)) goto out;
    int qk;
    if (get_int(root, "qk_head_dim", c->qk_nope_head_dim + c->qk_rope_head_dim, 0, &qk, src, e)) goto out;
    if (qk != c->qk_nope_head_dim + c->qk_rope_head_dim) {
        cr_error_set(e, "%s: field \"qk_head_dim\": %d != qk_nope_head_dim + qk_rope_head_dim (%d)", src, qk,
                     c->qk_nope_head_dim + c->qk_rope_head_dim);
        goto out;
    }
    if (model_config_validate(c, src, e)) goto out;
    rc = 0;
out:
    cJSON_Delete(root);
    return rc;
}

int model_config_load(ModelConfig *c, const char *path, CrError *e) {
    size_t n;
    char *text = cr_read_file(path, &n, e);
    if (!text) return -1;
    if (strlen(text) != n) {
        free(text);
        return cr_error_set(e, "%s: contains a NUL byte", path);
    }
    int rc = model_config_parse(c, text, path, e);
    free(text);
    return rc;
}

/* A float field as the shortest decimal that reads back as the same fp32 value, always
 * with a '.' or exponent: transformers' strict config dataclasses refuse 0 for a float. */
static void add_float(cJSON *o, const char *key, float v) {
    char buf[48];
    for (int prec = 6; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    if (!strpbrk(buf, ".eEn")) strcat(buf, ".0");   /* "n": inf/nan never reach here (validated) */
    cJSON_AddItemToObject(o, key, cJSON_CreateRaw(buf));
}

char *model_config_to_json(const ModelConfig *c) {
    cJSON *o = cJSON_CreateObject();
    if (!o) CR_DIE("out of memory");
    cJSON *arch = cJSON_AddArrayToObject(o, "architectures");
    cJSON_AddItemToArray(arch, cJSON_CreateString("DeepseekV2ForCausalLM"));
    cJSON_AddStringToObject(o, "model_type", "deepseek_v2");
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
    cJSON_AddNumberToObject(o, "num_hidden_layers", c->num_hidden_layers);
    cJSON_AddNumberToObject(o, "num_attention_heads", c->num_attention_heads);
    if (c->num_key_value_heads > 0) cJSON_AddNumberToObject(o, "num_key_value_heads", c->num_key_value_heads);
    else cJSON_AddNullToObject(o, "num_key_value_heads");   /* absent/null reads back as 0 */
    if (c->q_lora_rank > 0) cJSON_AddNumberToObject(o, "q_lora_rank", c->q_lora_rank);
    else cJSON_AddNullToObject(o, "q_lora_rank");
    cJSON_AddNumberToObject(o, "kv_lora_rank", c->kv_lora_rank);
    cJSON_AddNumberToObject(o, "qk_nope_head_dim", c->qk_nope_head_dim);
    cJSON_AddNumberToObject(o, "qk_rope_head_dim", c->qk_rope_head_dim);
    cJSON_AddNumberToObject(o, "v_head_dim", c->v_head_dim);
    cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
    cJSON_AddNumberToObject(o, "moe_intermediate_size", c->moe_intermediate_size);
    if (c->n_routed_experts > 0) cJSON_AddNumberToObject(o, "n_routed_experts", c->n_routed_experts);
    else cJSON_AddNullToObject(o, "n_routed_experts");
    cJSON_AddNumberToObject(o, "n_shared_experts", c->n_shared_experts);
    cJSON_AddNumberToObject(o, "num_experts_per_tok", c->num_experts_per_tok);
    cJSON_AddNumberToObject(o, "first_k_dense_replace", c->first_k_dense_replace);
    cJSON_AddNumberToObject(o, "moe_layer_freq", c->moe_layer_freq);
    cJSON_AddStringToObject(o, "topk_method",
                            c->topk_method == TOPK_GROUP_LIMITED_GREEDY ? "group_limited_greedy" : "greedy");
    if (c->n_group > 0) cJSON_AddNumberToObject(o, "n_group", c->n_group);
    else cJSON_AddNullToObject(o, "n_group");
    if (c->topk_group > 0) cJSON_AddNumberToObject(o, "topk_group", c->topk_group);
    else cJSON_AddNullToObject(o, "topk_group");
    add_float(o, "routed_scaling_factor", c->routed_scaling_factor);
    cJSON_AddBoolToObject(o, "norm_topk_prob", c->norm_topk_prob);
    cJSON_AddStringToObject(o, "scoring_func", "softmax");
    add_float(o, "aux_loss_alpha", c->aux_loss_alpha);
    cJSON_AddBoolToObject(o, "seq_aux", c->seq_aux);
    cJSON_AddStringToObject(o, "hidden_act", "silu");
    add_float(o, "rms_norm_eps", c->rms_norm_eps);
    add_float(o, "rope_theta", c->rope_theta);
    if (c->rope_yarn) {
        cJSON *rs = cJSON_AddObjectToObject(o, "rope_scaling");
        cJSON_AddStringToObject(rs, "type", "yarn");
        add_float(rs, "factor", c->yarn_factor);
        cJSON_AddNumberToObject(rs, "original_max_position_embeddings", c->yarn_original_max_position_embeddings);
        add_float(rs, "beta_fast", c->yarn_beta_fast);
        add_float(rs, "beta_slow", c->yarn_beta_slow);
        add_float(rs, "mscale", c->yarn_mscale);
        add_float(rs, "mscale_all_dim", c->yarn_mscale_all_dim);
    } else {
        cJSON_AddNullToObject(o, "rope_scaling");
    }
    cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
    cJSON_AddNumberToObject(o, "bos_token_id", c->bos_token_id);
    cJSON_AddNumberToObject(o, "eos_token_id", c->eos_token_id);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    add_float(o, "initializer_range", c->initializer_range);
    cJSON_AddBoolToObject(o, "attention_bias", 0);
    add_float(o, "attention_dropout", 0.0f);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    if (!s) CR_DIE("out of memory");
    char *r = cr_strdup(s);
    cJSON_free(s);
    return r;
}

int model_layer_is_moe(const ModelConfig *c, int l) {
    return c->n_routed_experts > 0 && l >= c->first_k_dense_replace && l % c->moe_layer_freq == 0;
}

static double yarn_get_mscale(double scale, double mscale) {
    return scale <= 1 ? 1.0 : 0.1 * mscale * log(scale) + 1.0;
}

double model_softmax_scale(const ModelConfig *c) {
    double s = 1.0 / sqrt((double)(c->qk_nope_head_dim + c->qk_rope_head_dim));
    if (c->rope_yarn && c->yarn_mscale_all_dim != 0) {
        double m = yarn_get_mscale(c->yarn_factor, c->yarn_mscale_all_dim);
        s *= m * m;
    }
    return s;
}

void model_rope_inv_freq(const ModelConfig *c, float *inv_freq, float *cs_factor) {
    int dim = c->qk_rope_head_dim, half = dim / 2;
    float base = c->rope_theta;
    /* fp32 like the reference: base ** (arange(0, dim, 2) / dim) in float32 */
    for (int i = 0; i < half; i++) {
        float ex = (float)(2 * i) / (float)dim;
        float pos_freq = powf(base, ex);
        inv_freq[i] = 1.0f / pos_freq;
    }
    *cs_factor = 1.0f;
    if (!c->rope_yarn) return;
    double L0 = c->yarn_original_max_position_embeddings;
    double lb = log((double)base);
#define CORR_DIM(n) (dim * log(L0 / ((n) * 2.0 * M_PI)) / (2.0 * lb))
    double low = floor(CORR_DIM(c->yarn_beta_fast));
    double high = ceil(CORR_DIM(c->yarn_beta_slow));
#undef CORR_DIM
    if (low < 0) low = 0;
    if (high > dim - 1) high = dim - 1;
    if (low == high) high += 0.001;
    float s = c->yarn_factor;
    for (int i = 0; i < half; i++) {
        float ramp = (float)(((float)i - (float)low) / ((float)high - (float)low));
        if (ramp < 0) ramp = 0;
        if (ramp > 1) ramp = 1;
        float extra = inv_freq[i];                      /* extrapolation */
        float inter = 1.0f / (s * powf(base, (float)(2 * i) / (float)dim));  /* interpolation */
        float mask = 1.0f - ramp;                        /* inv_freq_extrapolation_factor */
        inv_freq[i] = inter * (1.0f - mask) + extra * mask;
    }
    *cs_factor = (float)(yarn_get_mscale(s, c->yarn_mscale) / yarn_get_mscale(s, c->yarn_mscale_all_dim));
}
