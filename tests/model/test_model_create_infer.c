/* tests/model/test_model_create_infer.c — inference-only models (model_create_infer):
 * the rollout engine decodes the same greedy tokens and log-probs on one as on a full
 * model with the same weights; the training entry points refuse it with a message; and
 * model_init_random (chunked host staging) still gives every tensor its own documented
 * stream, checked by regenerating the streams independently. On a backend whose memory
 * the host cannot touch (tests/guarded_ops.h, the stand-in for a GPU), an inference model
 * is created, randomly initialised and decoded through the Ops path without one host
 * access to backend memory, with the same samples as on ops_cpu(). */
#include "tests/test.h"
#include "tests/model/model_tiny.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/adamw.h"
#include "model/model.h"
#include "model/ops.h"
#include "rollout/rollout.h"
#include "tests/guarded_ops.h"

TEST(model_infer_rollout_matches_full_model) {
    ModelConfig c;
    CHECK(tiny_config(&c, (TinyOpts){.yarn = 1, .n_shared = 1}) == 0);
    CrError e;
    Model *full = model_create(&c, &e), *inf = model_create_infer(&c, ops_cpu(), &e);
    CHECKF(full && inf, "%s", e.msg);
    if (!full || !inf) return;
    CHECK(inf->grads == NULL && full->grads != NULL);
    CHECK(model_is_infer_only(inf) == 1 && model_is_infer_only(full) == 0);
    CHECK(inf->n_params == full->n_params && inf->n_tensors == full->n_tensors);
    model_init_random(full, 11);
    model_init_random(inf, 11);
    CHECK(memcmp(full->params, inf->params, sizeof(float) * full->n_params) == 0);

    enum { NP = 3, P = 9, NEW = 20 };
    int32_t pr[NP][P];
    const int32_t *pp[NP];
    int lens[NP];
    CrRng r;
    cr_rng_init(&r, 3, 0, 0);
    for (int p = 0; p < NP; p++) {
        for (int t = 0; t < P; t++) pr[p][t] = (int32_t)(cr_rng_u64(&r) % (uint64_t)c.vocab_size);
        pp[p] = pr[p];
        lens[p] = P - p;
    }
    SampleParams sp = {0};
    sp.max_new_tokens = NEW;
    sp.ignore_eos = 1;
    sp.record_experts = 1;
    Sample a[NP], b[NP];
    RolloutEngine *ra = rollout_create(full, NULL, 1024, &e), *rb = rollout_create(inf, NULL, 1024, &e);
    CHECKF(ra && rb, "%s", e.msg);
    if (!ra || !rb) return;
    CHECKF(rollout_generate(ra, pp, lens, NP, 1, &sp, 0, a, &e) == 0, "%s", e.msg);
    CHECKF(rollout_generate(rb, pp, lens, NP, 1, &sp, 0, b, &e) == 0, "%s", e.msg);
    if (FAILED()) return;
    int distinct = 0;
    for (int p = 0; p < NP; p++) {
        CHECK(a[p].n_tokens == NEW && b[p].n_tokens == NEW);
        CHECK(memcmp(a[p].token_ids, b[p].token_ids, sizeof(int32_t) * NEW) == 0);
        CHECK(memcmp(a[p].logprobs_model, b[p].logprobs_model, sizeof(float) * NEW) == 0);
        for (int t = 1; t < NEW; t++) distinct += a[p].token_ids[t] != a[p].token_ids[0];
        for (int t = 0; t < NEW; t++) CHECK(isfinite(b[p].logprobs_model[t]) && b[p].logprobs_model[t] <= 0);
        CHECK(b[p].expert_ids != NULL);
    }
    CHECKF(distinct > 0, "degenerate completions: every token equal");  /* the check is not vacuous */
    for (int p = 0; p < NP; p++) sample_free(&a[p]), sample_free(&b[p]);
    rollout_free(ra);
    rollout_free(rb);
    model_free(full);
    model_free(inf);
}

TEST(model_infer_refuses_training) {
    ModelConfig c;
    CHECK(tiny_config(&c, (TinyOpts){.aux_alpha = 0.01f, .n_shared = 1}) == 0);
    CrError e;
    Model *m = model_create_infer(&c, ops_cpu(), &e);
    CHECKF(m != NULL, "%s", e.msg);
    if (!m) return;
    model_init_random(m, 2);
    int32_t tok[4] = {1, 2, 3, 4}, tgt[4] = {2, 3, 4, -1}, cu[2] = {0, 4};
    float logp[4], dlogp[4] = {-1, -1, -1, 0}, hid[4 * 32], aux = 0;
    Batch b = {.n_tokens = 4, .n_seqs = 1, .tokens = tok, .targets = tgt, .cu_seqlens = cu};
    e.msg[0] = 0;
    CHECK(model_forward(m, &b, logp, &aux, &e) == -1);
    CHECKF(strstr(e.msg, "model_forward") && strstr(e.msg, "model_create_infer"), "message: %s", e.msg);
    e.msg[0] = 0;
    CHECK(model_backward(m, &b, dlogp, 1.0f, &e) == -1);
    CHECKF(strstr(e.msg, "model_backward") && strstr(e.msg, "inference only"), "message: %s", e.msg);
    e.msg[0] = 0;
    CHECK(model_forward_hidden(m, &b, hid, &aux, &e) == -1);
    CHECKF(strstr(e.msg, "model_forward_hidden"), "message: %s", e.msg);
    e.msg[0] = 0;
    CHECK(model_backward_hidden(m, &b, hid, 1.0f, &e) == -1);
    CHECKF(strstr(e.msg, "model_backward_hidden"), "message: %s", e.msg);
    model_zero_grads(m);  /* no gradients: nothing to do, must not crash */
    AdamW opt;
    e.msg[0] = 0;
    CHECK(adamw_init(&opt, m, adamw_default_config(), &e) == -1);
    CHECKF(strstr(e.msg, "no gradients"), "message: %s", e.msg);
    model_free(m);
}

/* vocab 33000 x hidden 1024 (68 M parameters) through staging chunks of twice its largest
 * tensor (the embedding: 3 chunks) and of 1 M floats (every chunk one tensor, uploaded while
 * the next is generated), on a copy of the CPU table (the staged path a device takes): each
 * tensor's first values must be its own stream (seed, tensor index, 0x1a17) scaled by
 * initializer_range, and every value equal to model_init_random's on ops_cpu() (generated
 * in place). */
TEST(model_init_random_streams_across_chunks) {
    const char js[] =
        "{\"vocab_size\":33000,\"hidden_size\":1024,\"num_hidden_layers\":2,\"num_attention_heads\":2,"
        "\"q_lora_rank\":null,\"kv_lora_rank\":32,\"qk_nope_head_dim\":16,\"qk_rope_head_dim\":8,"
        "\"v_head_dim\":16,\"intermediate_size\":64,\"moe_intermediate_size\":32,\"n_routed_experts\":4,"
        "\"n_shared_experts\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,\"topk_method\":\"greedy\","
        "\"max_position_embeddings\":64,\"rope_scaling\":null,\"initializer_range\":0.05}";
    ModelConfig c;
    CrError e;
    CHECKF(model_config_parse(&c, js, "chunk test", &e) == 0, "%s", e.msg);
    /* a copy of the CPU table: model_init_random stages through host chunks and uploads,
     * as for a device (on ops_cpu() itself it generates in place) */
    static Ops staged;
    staged = *ops_cpu();
    staged.name = "cpu-staged";
    Model *m = model_create_infer(&c, &staged, &e);
    CHECKF(m != NULL, "%s", e.msg);
    if (!m) return;
    Model *ref = model_create_infer(&c, ops_cpu(), &e);
    CHECKF(ref != NULL, "%s", e.msg);
    if (!ref) return;
    model_init_random(ref, 99);
    for (int pass = 0; pass < 2; pass++) {
        memset(m->params, 0, sizeof(float) * m->n_params);
        model_init_random_chunked(m, 99, pass == 0 ? 1 : (size_t)1 << 20);
        CHECK(memcmp(m->params, ref->params, sizeof(float) * m->n_params) == 0);
        int bad = 0, norms = 0;
        for (int i = 0; i < m->n_tensors && bad < 5; i++) {
            const ParamTensor *t = &m->tensors[i];
            const float *p = m->params + t->offset;
            size_t n = t->numel < 4096 ? t->numel : 4096, len = strlen(t->name);
            if (len >= 11 && strcmp(t->name + len - 11, "norm.weight") == 0) {
                norms++;
                for (size_t j = 0; j < t->numel; j++) bad += p[j] != 1.0f;
                continue;
            }
            CrRng r;
            cr_rng_init(&r, 99, (uint64_t)i, 0x1a17);
            for (size_t j = 0; j < n; j++)
                if (p[j] != (float)(cr_rng_normal(&r) * 0.05f)) {
                    fprintf(stderr, "    tensor %s value %zu differs\n", t->name, j);
                    bad++;
                    break;
                }
            /* the last value of every tensor was written (not left zero) */
            bad += p[t->numel - 1] == 0.0f;
        }
        CHECK(bad == 0);
        CHECK(norms == 2 * 3 + 1);  /* input, post-attention, kv_a per layer + final */
    }
    model_free(ref);
    model_free(m);
}

/* What bench/cuda_decode does on a GPU, on a backend that traps host access instead. */
TEST(model_infer_on_guarded_backend_decodes) {
    ModelConfig c;
    CHECK(tiny_config(&c, (TinyOpts){.q_lora = 8, .group_limited = 1, .n_shared = 2}) == 0);
    CrError e;
    Model *full = model_create(&c, &e), *inf = model_create_infer(&c, guarded_ops(), &e);
    CHECKF(full && inf, "%s", e.msg);
    if (!full || !inf) return;
    CHECK(inf->grads == NULL);
    model_init_random(full, 21);
    model_init_random(inf, 21);  /* through ops->upload only: a host write would SIGSEGV */
    float *host = malloc(sizeof(float) * inf->n_params);
    inf->ops->download(host, inf->params, sizeof(float) * inf->n_params);
    CHECK(memcmp(host, full->params, sizeof(float) * full->n_params) == 0);
    free(host);

    enum { NP = 2, P = 11, NEW = 16 };
    int32_t pr[NP][P];
    const int32_t *pp[NP] = {pr[0], pr[1]};
    int lens[NP] = {P, 5};
    for (int p = 0; p < NP; p++)
        for (int t = 0; t < P; t++) pr[p][t] = (int32_t)((7 * t + 13 * p + 3) % c.vocab_size);
    SampleParams sp = {0};
    sp.temperature = 0.8f;
    sp.top_p = 1.0f;
    sp.max_new_tokens = NEW;
    sp.ignore_eos = 1;
    sp.record_experts = 1;
    sp.seed = 3;
    Sample a[NP * 2], b[NP * 2];
    setenv("CRUCIBLE_ROLLOUT_OPS", "1", 1);  /* the full CPU model through the same Ops path */
    RolloutEngine *ra = rollout_create(full, NULL, 512, &e);
    unsetenv("CRUCIBLE_ROLLOUT_OPS");
    RolloutEngine *rb = rollout_create(inf, NULL, 512, &e);
    CHECKF(ra && rb, "%s", e.msg);
    if (!ra || !rb) return;
    CHECKF(rollout_generate(ra, pp, lens, NP, 2, &sp, 0, a, &e) == 0, "%s", e.msg);
    CHECKF(rollout_generate(rb, pp, lens, NP, 2, &sp, 0, b, &e) == 0, "%s", e.msg);
    if (FAILED()) return;
    for (int i = 0; i < NP * 2; i++) {
        CHECK(a[i].n_tokens == NEW && b[i].n_tokens == NEW);
        CHECK(memcmp(a[i].token_ids, b[i].token_ids, sizeof(int32_t) * NEW) == 0);
        CHECK(memcmp(a[i].logprobs, b[i].logprobs, sizeof(float) * NEW) == 0);
        CHECK(a[i].expert_ids && b[i].expert_ids);
        sample_free(&a[i]), sample_free(&b[i]);
    }
    rollout_free(ra);
    rollout_free(rb);
    model_free(inf);
    model_free(full);
    CHECKF(guarded_ops_live_allocations() == 0, "%d backend buffers leaked", guarded_ops_live_allocations());
}
