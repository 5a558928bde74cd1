/* tests/model/test_config.c — config.json parsing: spec constants (§12), defaults,
 * rejection of unknown/contradictory fields, round trip through model_config_to_json. */
#include "tests/test.h"
#include "model/config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* DeepSeek-Coder-V2-Lite config.json values (spec §1.1). */
static const char *k_lite =
    "{\"architectures\":[\"DeepseekV2ForCausalLM\"],\"model_type\":\"deepseek_v2\",\"vocab_size\":102400,"
    "\"hidden_size\":2048,\"num_hidden_layers\":27,\"num_attention_heads\":16,\"num_key_value_heads\":16,"
    "\"q_lora_rank\":null,\"kv_lora_rank\":512,\"qk_nope_head_dim\":128,\"qk_rope_head_dim\":64,"
    "\"v_head_dim\":128,\"intermediate_size\":10944,\"moe_intermediate_size\":1408,\"n_routed_experts\":64,"
    "\"n_shared_experts\":2,\"num_experts_per_tok\":6,\"first_k_dense_replace\":1,\"moe_layer_freq\":1,"
    "\"topk_method\":\"greedy\",\"n_group\":1,\"topk_group\":1,\"routed_scaling_factor\":1.0,"
    "\"norm_topk_prob\":false,\"scoring_func\":\"softmax\",\"aux_loss_alpha\":0.001,\"seq_aux\":true,"
    "\"hidden_act\":\"silu\",\"rms_norm_eps\":1e-06,\"rope_theta\":10000,\"rope_scaling\":{\"type\":\"yarn\","
    "\"factor\":40,\"original_max_position_embeddings\":4096,\"beta_fast\":32,\"beta_slow\":1,"
    "\"mscale\":0.707,\"mscale_all_dim\":0.707},\"max_position_embeddings\":163840,\"bos_token_id\":100000,"
    "\"eos_token_id\":100001,\"tie_word_embeddings\":false,\"attention_bias\":false,\"attention_dropout\":0.0,"
    "\"torch_dtype\":\"bfloat16\",\"transformers_version\":\"4.39.3\",\"use_cache\":true,\"pretraining_tp\":1}";

TEST(model_config_lite_constants) {
    ModelConfig c;
    CrError e;
    CHECKF(model_config_parse(&c, k_lite, "lite.json", &e) == 0, "%s", e.msg);
    if (FAILED()) return;
    CHECK(c.q_lora_rank == 0);
    CHECK(c.n_routed_experts == 64 && c.num_experts_per_tok == 6 && c.first_k_dense_replace == 1);
    CHECK(!model_layer_is_moe(&c, 0) && model_layer_is_moe(&c, 1) && model_layer_is_moe(&c, 26));
    CHECK_NEAR(model_softmax_scale(&c), 0.11472138679292612, 1e-7); /* config floats are fp32 */
    float inv[32], cs;
    model_rope_inv_freq(&c, inv, &cs);
    CHECK_NEAR(cs, 1.0, 1e-7);
    /* spec §5.1 table (double-precision values; fp32 agrees to ~1e-7 relative) */
    static const double want[32] = {1.0, 7.498942093e-01, 5.623413252e-01, 4.216965034e-01, 3.162277660e-01,
        2.371373706e-01, 1.778279410e-01, 1.333521432e-01, 1.000000000e-01, 7.498942093e-02, 5.623413252e-02,
        3.900692657e-02, 2.687936011e-02, 1.837814622e-02, 1.244795587e-02, 8.334508951e-03, 5.500000000e-03,
        3.561997494e-03, 2.249365301e-03, 1.370513636e-03, 7.905694150e-04, 4.149903985e-04, 1.778279410e-04,
        3.333803580e-05, 2.500000000e-05, 1.874735523e-05, 1.405853313e-05, 1.054241259e-05, 7.905694150e-06,
        5.928434264e-06, 4.445698525e-06, 3.333803580e-06};
    for (int i = 0; i < 32; i++)
        CHECKF(fabs(inv[i] - want[i]) <= 1e-6 * want[i] + 1e-12, "inv_freq[%d] = %.9e want %.9e", i, inv[i], want[i]);
    /* round trip */
    char *js = model_config_to_json(&c);
    ModelConfig d;
    CHECKF(model_config_parse(&d, js, "roundtrip", &e) == 0, "%s", e.msg);
    CHECK(memcmp(&c, &d, sizeof c) == 0);
    free(js);
}

TEST(model_config_rejects_bad_fields) {
    struct { const char *json; const char *field; } cases[] = {
        {"{\"hidden_size\": 64, \"quantization_config\": {}}", "quantization_config"},
        {"{\"topk_method\": \"noaux_tc\"}", "topk_method"},
        {"{\"hidden_act\": \"gelu\"}", "hidden_act"},
        {"{\"scoring_func\": \"sigmoid\"}", "scoring_func"},
        {"{\"hidden_size\": \"big\"}", "hidden_size"},
        {"{\"hidden_size\": -4}", "hidden_size"},
        {"{\"qk_rope_head_dim\": 7}", "qk_rope_head_dim"},
        {"{\"n_routed_experts\": 8, \"num_experts_per_tok\": 9}", "num_experts_per_tok"},
        {"{\"n_routed_experts\": 8, \"num_experts_per_tok\": 2, \"topk_method\": \"group_limited_greedy\", \"n_group\": 3, \"topk_group\": 1}", "n_group"},
        {"{\"n_routed_experts\": 8, \"num_experts_per_tok\": 2, \"topk_method\": \"group_limited_greedy\", \"n_group\": 4, \"topk_group\": 5}", "topk_group"},
        {"{\"rope_scaling\": {\"type\": \"linear\", \"factor\": 2}}", "rope_scaling"},
        {"{\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 4}}", "original_max_position_embeddings"},
        {"{\"attention_bias\": true}", "attention_bias"},
        /* two rope blocks that scale differently (transformers 5 lets the legacy one win) */
        {"{\"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 10000.0}, \"rope_scaling\": {\"type\": \"yarn\", "
         "\"factor\": 4, \"original_max_position_embeddings\": 64}}", "rope_parameters\" and \"rope_scaling"},
        {"{\"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4, \"original_max_position_embeddings\": 64}, "
         "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 8, \"original_max_position_embeddings\": 64}}", "describe different"},
        {"{\"rope_parameters\": {\"rope_type\": \"yarn\", \"factor\": 4, \"original_max_position_embeddings\": 64, "
         "\"mscale\": \"x\"}}", "rope_parameters.mscale"},
        /* one of the two mscales: DeepSeek's code and transformers compute different factors */
        {"{\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 40, \"original_max_position_embeddings\": 64, "
         "\"mscale_all_dim\": 0.707}}", "rope_scaling.mscale_all_dim"},
        {"{\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 40, \"original_max_position_embeddings\": 64, "
         "\"mscale\": 0.707}}", "DeepSeek's code and transformers"},
        {"{\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 40, \"original_max_position_embeddings\": 64, "
         "\"mscale\": 0, \"mscale_all_dim\": 0.707}}", "rope_scaling.mscale"},
        {"{\"hidden_size\": 64", "syntax"},
        {"[1,2]", "JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ModelConfig c;
        CrError e = {{0}};
        int rc = model_config_parse(&c, cases[i].json, "bad.json", &e);
        CHECKF(rc == -1, "case %zu accepted: %s", i, cases[i].json);
        CHECKF(strstr(e.msg, cases[i].field) && strstr(e.msg, "bad.json"), "case %zu: message '%s' lacks '%s'", i, e.msg, cases[i].field);
    }
}

TEST(model_config_defaults_follow_remote_code) {
    ModelConfig c;
    CrError e;
    /* q_lora_rank absent -> 1536 (remote-code default); explicit null -> none */
    CHECKF(model_config_parse(&c, "{\"n_routed_experts\": 4, \"num_experts_per_tok\": 2}", "d.json", &e) == 0, "%s", e.msg);
    CHECK(c.q_lora_rank == 1536 && c.kv_lora_rank == 512 && c.first_k_dense_replace == 0);
    CHECK(c.seq_aux == 1 && fabs(c.aux_loss_alpha - 0.001) < 1e-9 && c.topk_method == TOPK_GREEDY);
    CHECK(!c.rope_yarn && fabs(model_softmax_scale(&c) - 1 / sqrt(192.0)) < 1e-12);
    /* transformers 5 style rope_parameters */
    CHECKF(model_config_parse(&c, "{\"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 10000.0, \"factor\": 40, "
        "\"original_max_position_embeddings\": 4096, \"mscale\": 0.707, \"mscale_all_dim\": 0.707, \"beta_fast\": 32, \"beta_slow\": 1}}",
        "v5.json", &e) == 0, "%s", e.msg);
    CHECK(c.rope_yarn);
    CHECK_NEAR(model_softmax_scale(&c), 0.11472138679292612, 1e-7); /* config floats are fp32 */
    /* both blocks, saying the same (theta only in the new one): accepted; null = the default */
    CHECKF(model_config_parse(&c, "{\"rope_parameters\": {\"rope_type\": \"yarn\", \"rope_theta\": 10000.0, \"factor\": 40, "
        "\"original_max_position_embeddings\": 4096, \"mscale\": null, \"mscale_all_dim\": null, \"beta_fast\": null}, "
        "\"rope_scaling\": {\"type\": \"yarn\", \"factor\": 40, \"original_max_position_embeddings\": 4096}}",
        "both.json", &e) == 0, "%s", e.msg);
    CHECK(c.rope_yarn && c.yarn_mscale == 1.0f && c.yarn_beta_fast == 32.0f && c.yarn_factor == 40.0f);
}
