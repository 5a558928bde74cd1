/* tests/bench/test_decode_plan.c — the arithmetic of the GPU decode benchmark
 * (bench/decode_plan.h), checked on the CPU: the parameter count against the model's own
 * parameter table and the published size of DeepSeek-Coder-V2-Lite, the memory plan
 * against values computed by hand (a separate Python evaluation of the same formulas,
 * quoted below), the distinct-expert count on a hand-made routing record, and the bytes
 * per decode step on a hand-derived case. */
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench/decode_plan.h"
#include "model/params.h"

TEST(bench_decode_plan_params_match_model_layout) {
    for (int L = 1; L <= 27; L += 13) {
        ModelConfig c;
        CrError e;
        CHECKF(decode_lite_config(&c, L, &e) == 0, "%s", e.msg);
        int nt = 0;
        size_t np = 0;
        ParamTensor *t = model_params_layout(&c, &nt, &np);
        CHECKF(decode_n_params(&c) == (double)np, "L %d: planner %.0f, layout %zu", L, decode_n_params(&c), np);
        free(t);
    }
    ModelConfig c;
    CHECK(decode_lite_config(&c, 27, NULL) == 0);
    /* DeepSeek-Coder-V2-Lite: 15.7 B total parameters (model card); 15,706,484,224 by hand */
    CHECK(decode_n_params(&c) == 15706484224.0);
    CHECK(c.num_hidden_layers == 27 && c.first_k_dense_replace == 1 && c.q_lora_rank == 0);
}

/* By hand (Python, same formulas): with 80e9 bytes free and 6 GiB reserve, 1000 + 1000
 * tokens: 1 and 64 sequences fit 27 layers (64 x 27 needs 77.36 GB), 256 x 27 needs
 * 101.63 GB: 20 layers fit 256 sequences, or 84 sequences fit 27 layers. */
TEST(bench_decode_plan_fits_80gb) {
    double reserve = 6.0 * (1 << 30), fr = 80e9;
    CHECK(fabs(decode_need_bytes(27, 64, 1000, 1000, reserve, 0) - 77358413824.0) < 1);
    CHECK(fabs(decode_need_bytes(27, 256, 1000, 1000, reserve, 0) - 101628491776.0) < 1);
    DecodePlan p = decode_plan(1, 27, 1000, 1000, reserve, 0, fr, 0);
    CHECK(p.B == 1 && p.L == 27);
    p = decode_plan(64, 27, 1000, 1000, reserve, 0, fr, 0);
    CHECK(p.B == 64 && p.L == 27);
    p = decode_plan(256, 27, 1000, 1000, reserve, 0, fr, 0);
    CHECKF(p.B == 256 && p.L == 20 && p.B_req == 256, "B %d L %d", p.B, p.L);
    p = decode_plan(256, 27, 1000, 1000, reserve, 0, fr, 1);
    CHECKF(p.B == 84 && p.L == 27, "B %d L %d", p.B, p.L);
    /* 10 GB: 1 layer (2.0 GB of params) would fit, but it has no MoE layer; 2 layers need
     * 4.3 GB + 6.4 GB reserve */
    p = decode_plan(4, 27, 1000, 1000, reserve, 0, 10e9, 0);
    CHECKF(p.L == 0, "L %d", p.L);
    p = decode_plan(4, 27, 1000, 1000, reserve, 0, 11e9, 0);
    CHECKF(p.L == 2, "L %d", p.L);
    CHECK(decode_cache_positions(3, 10, 20) == 3 * (30 + DECODE_BLOCK_SLACK));
    /* bf16 copies (CRUCIBLE_CUDA_DECODE_BF16=1) add 2 bytes per parameter: one sequence of
     * 27 layers needs 100.81 GB, 21 layers fit 80 GB (by hand, Python) */
    CHECK(fabs(decode_need_bytes(27, 1, 1000, 1000, reserve, 2) - 100807762944.0) < 1);
    p = decode_plan(1, 27, 1000, 1000, reserve, 2, fr, 0);
    CHECKF(p.B == 1 && p.L == 21, "B %d L %d", p.B, p.L);
}

TEST(bench_decode_plan_distinct_experts) {
    /* B 2, N 3 tokens, 1 MoE layer, K 2, E 8: token 0 (prefill) is not a decode step;
     * step 1: {1,2} u {2,3} = 3, step 2: {4,5} u {5,4} = 2 -> 2.5 */
    int32_t a[] = {7, 6, 1, 2, 4, 5}, b[] = {0, 7, 2, 3, 5, 4};
    const int32_t *ids[2] = {a, b};
    CHECK(decode_distinct_experts(ids, 2, 3, 1, 2, 8) == 2.5);
    ids[1] = NULL;
    CHECK(decode_distinct_experts(ids, 2, 3, 1, 2, 8) == -1);
    CHECK(fabs(decode_expected_experts(1, 6, 64) - 6) < 1e-12);
    CHECK(decode_expected_experts(256, 6, 64) > 63.9 && decode_expected_experts(256, 6, 64) < 64);
}

TEST(bench_decode_plan_step_bytes) {
    ModelConfig c;
    CHECK(decode_lite_config(&c, 2, NULL) == 0);  /* 1 dense + 1 MoE layer */
    /* fixed 1000 B + 3 embedding rows (3 x 2048 x 4) + 2.5 experts x 1 layer x (3 x 1408 x
     * 2048 x 4) + cache 3 x (10 + 4/2) x 2 layers x 576 x 4 */
    double want = 1000 + 3 * 2048 * 4.0 + 2.5 * 3 * 1408 * 2048 * 4.0 + 3 * 12 * 2 * 576 * 4.0;
    CHECK(fabs(decode_step_bytes(&c, 1000, 3, 10, 4, 2.5, 4, 4) - want) < 1e-3);
    /* weights read in bf16 (fixed and experts at 2 bytes; embedding rows and cache stay fp32) */
    want = 500 + 3 * 2048 * 4.0 + 2.5 * 3 * 1408 * 2048 * 2.0 + 3 * 12 * 2 * 576 * 4.0;
    CHECK(fabs(decode_step_bytes(&c, 1000, 3, 10, 4, 2.5, 2, 2) - want) < 1e-3);
    want = 1000 + 3 * 2048 * 4.0 + 2.5 * 3 * 1408 * 2048 * 2.0 + 3 * 12 * 2 * 576 * 4.0;
    CHECK(fabs(decode_step_bytes(&c, 1000, 3, 10, 4, 2.5, 4, 2) - want) < 1e-3);
    /* batch 1 of the 27-layer model with 6 experts reads ~2.45 B fp32 parameters: the
     * published 2.4 B activated parameters of DeepSeek-V2-Lite */
    CHECK(decode_lite_config(&c, 27, NULL) == 0);
    double fixed = decode_n_params(&c) * 4 - 4.0 * 26 * 64 * 3 * 1408 * 2048 - 4.0 * 102400 * 2048;
    double active = decode_step_bytes(&c, fixed, 1, 0, 0, 6, 4, 4) / 4;
    CHECKF(active > 2.40e9 && active < 2.50e9, "active %.3g", active);
}

/* The JSON contract with bench/cuda_decode_hf.py (its output format, as it printed it in a
 * CPU smoke run, trimmed): ratios only for identical shapes, reasons otherwise. */
TEST(bench_decode_peer_json_contract) {
    const char *js =
        "{\"torch\": \"2.15.0\", \"transformers\": \"5.23.0\", \"device\": \"cpu\", \"dtype\": \"bfloat16\", "
        "\"prompt\": 8, \"gen\": 3, \"runs\": [{\"seqs\": 1, \"layers\": 1, \"t1_s\": 0.32, \"tN_s\": 0.97, "
        "\"decode_tok_s\": 3.08, \"e2e_tok_s\": 3.09, \"peak_gib\": 0.0}, {\"seqs\": 2, \"layers\": 2, "
        "\"error\": \"out of memory: CUDA out of memory\"}, {\"seqs\": 4, \"layers\": 3, \"decode_tok_s\": 0}], "
        "\"experts_implementation\": \"grouped_mm\", \"attn_implementation\": \"sdpa\"}";
    cJSON *j = cJSON_Parse(js);
    CHECK(j != NULL);
    const char *why = NULL;
    const cJSON *r = decode_peer_run(j, 1, 1, 8, 3, &why);
    CHECK(r && cJSON_GetObjectItem(r, "decode_tok_s")->valuedouble == 3.08);
    CHECK(!decode_peer_run(j, 1, 2, 8, 3, &why) && strstr(why, "layer count"));
    CHECK(!decode_peer_run(j, 1, 1, 9, 3, &why) && strstr(why, "length"));
    CHECK(!decode_peer_run(j, 2, 2, 8, 3, &why) && strstr(why, "failed"));
    CHECK(!decode_peer_run(j, 4, 3, 8, 3, &why) && strstr(why, "lacks"));
    CHECK(!decode_peer_run(j, 64, 1, 8, 3, &why) && strstr(why, "plan"));
    CHECK(!decode_peer_run(NULL, 1, 1, 8, 3, &why) && strstr(why, "no peer"));
    cJSON_Delete(j);
}
