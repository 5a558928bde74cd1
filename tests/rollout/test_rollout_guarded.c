/* tests/rollout/test_rollout_guarded.c — the rollout engine on a backend whose memory the
 * host cannot touch (tests/guarded_ops.h): the GPU decode path (forward_ops, the latent
 * cache in backend memory, copy-on-write forks, logits and sampling) must reach backend
 * memory only through the Ops table. A host dereference of a backend pointer kills the
 * test with SIGSEGV here, as it would corrupt or crash a GPU run. The samples must equal
 * the same engine's Ops path on ops_cpu() (same kernels). Both attention forms of
 * forward_ops.h run there: the MHA (non-absorbed) prefill form, with and without cached
 * context gathered from the cache, and the absorbed decode form. */
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/ops.h"
#include "rollout/forward_ops.h"
#include "rollout/kv_cache.h"
#include "rollout/rollout.h"
#include "tests/guarded_ops.h"
#include "tests/rollout/forward_twin.h"
#include "tests/rollout/generate.h"
#include "tests/rollout/ref_model.h"

static const char k_cfg[] =
    "{\"vocab_size\": 97, \"hidden_size\": 48, \"intermediate_size\": 64, \"moe_intermediate_size\": 24,"
    " \"num_hidden_layers\": 3, \"num_attention_heads\": 4, \"n_routed_experts\": 6, \"num_experts_per_tok\": 2,"
    " \"n_shared_experts\": 1, \"first_k_dense_replace\": 1, \"kv_lora_rank\": 16, \"q_lora_rank\": 24,"
    " \"qk_nope_head_dim\": 8, \"qk_rope_head_dim\": 8, \"v_head_dim\": 8, \"max_position_embeddings\": 256,"
    " \"topk_method\": \"group_limited_greedy\", \"n_group\": 3, \"topk_group\": 2}";

TEST(rollout_guarded_backend_generate) {
    Model *ref = ref_model_new(k_cfg, 61, 0.35f);
    CrError e;
    Model *m = model_create_ops(&ref->cfg, guarded_ops(), &e);
    CHECKF(m != NULL, "%s", e.msg);
    if (!m) return;
    m->ops->upload(m->params, ref->params, sizeof(float) * ref->n_params);
    int n = 3, G = 3, V = ref->cfg.vocab_size;
    int32_t *pr[3];
    int lens[3] = {1, 13, 30};
    CrRng g;
    cr_rng_init(&g, 61, 3, 3);
    for (int p = 0; p < n; p++) {
        pr[p] = malloc(sizeof(int32_t) * lens[p]);
        for (int k = 0; k < lens[p]; k++) pr[p][k] = 2 + (int32_t)(cr_rng_u64(&g) % (uint64_t)(V - 2));
    }
    float temps[2] = {0.0f, 0.9f};
    for (int c = 0; c < 2; c++) {
        SampleParams sp = {0};
        sp.temperature = temps[c];
        sp.top_p = temps[c] > 0 ? 0.9f : 1.0f;
        sp.max_new_tokens = 24;
        sp.ignore_eos = 1;
        sp.record_experts = 1;
        sp.seed = 7 + (uint64_t)c;
        setenv("CRUCIBLE_ROLLOUT_OPS", "1", 1);
        /* a small budget: forks share blocks, finished samples free theirs, waiting ones reuse them */
        Sample *a = test_generate(t_, ref, 160, n, G, &sp, pr, lens, NULL);
        unsetenv("CRUCIBLE_ROLLOUT_OPS");
        RolloutStats st;
        Sample *b = test_generate(t_, m, 160, n, G, &sp, pr, lens, &st);
        CHECKF(st.attn_mha_rows == 30, "the 30-token prompt's prefill took the MHA form for %ld rows, not 30",
               st.attn_mha_rows);
        long tokens = 0;
        for (int i = 0; i < n * G && !FAILED(); i++) {
            CHECKF(a[i].n_tokens == b[i].n_tokens, "sample %d: %d vs %d tokens", i, a[i].n_tokens, b[i].n_tokens);
            if (FAILED()) break;
            CHECKF(!memcmp(a[i].token_ids, b[i].token_ids, sizeof(int32_t) * a[i].n_tokens),
                   "sample %d (T %g): guarded-backend tokens differ from ops_cpu's", i, temps[c]);
            for (int k = 0; k < a[i].n_tokens && !FAILED(); k++)
                CHECKF(a[i].logprobs[k] == b[i].logprobs[k] && a[i].logprobs_model[k] == b[i].logprobs_model[k],
                       "sample %d token %d: log-probs differ", i, k);
            tokens += a[i].n_tokens;
        }
        fprintf(stderr, "    T %.1f: %ld tokens equal on the guarded backend\n", temps[c], tokens);
        for (int i = 0; i < n * G; i++) sample_free(&a[i]), sample_free(&b[i]);
        free(a), free(b);
    }
    for (int p = 0; p < n; p++) free(pr[p]);
    model_free(m);
    CHECKF(guarded_ops_live_allocations() == 0, "%d backend buffers leaked", guarded_ops_live_allocations());
    ref_model_free(ref);
}

/* One call of both engines (ops_cpu() and the guarded backend, tests/rollout/forward_twin.h):
 * the logits must be equal bit for bit (same kernels). */
static void twin_call(TestCtx *t_, FwdTwin *w, int n, const int *seq, const int32_t *pos, const int32_t *tok,
                      const int *lr, int nl) {
    int calls = w->calls;
    fwd_twin_run(w, n, seq, pos, tok, lr, nl);
    CHECKF(!memcmp(w->host, w->back, sizeof(float) * (size_t)nl * w->m[0]->cfg.vocab_size),
           "call %d: guarded-backend logits differ from ops_cpu's", calls);
}

/* forward_ops_run directly on the guarded backend against ops_cpu(): two prompts in one
 * call (MHA form, keys = the rows), a continuation behind 40 cached positions with a
 * fresh 1-row prompt (MHA form, context gathered from the cache, queries placed behind
 * it), then decode steps (absorbed, reading rows the MHA form cached). */
TEST(rollout_guarded_backend_forward_ops_both_forms) {
    enum { GMAXN = 128, GSEQ = 3 };
    FwdTwin w;
    Model *ref = ref_model_new(k_cfg, 62, 0.35f);
    CrError e;
    Model *mg = model_create_ops(&ref->cfg, guarded_ops(), &e);
    CHECKF(mg != NULL, "%s", e.msg);
    if (!mg) return;
    mg->ops->upload(mg->params, ref->params, sizeof(float) * ref->n_params);
    int V = ref->cfg.vocab_size;
    int ok = fwd_twin_open(&w, ref, mg, GSEQ, GMAXN, 160, FORWARD_OPS_ATTN_AUTO, &e) == 0;
    CHECKF(ok, "%s", e.msg);
    if (!ok) { fwd_twin_close(&w); return; }
    CrRng g;
    cr_rng_init(&g, 62, 4, 4);
    int seq[GMAXN], n = 0;
    int32_t pos[GMAXN], tok[GMAXN];
#define TOK() (int32_t)(2 + cr_rng_u64(&g) % (uint64_t)(V - 2))
    for (int p = 0; p < 40; p++) seq[n] = 0, pos[n] = p, tok[n] = TOK(), n++;
    for (int p = 0; p < 20; p++) seq[n] = 1, pos[n] = p, tok[n] = TOK(), n++;
    twin_call(t_, &w, n, seq, pos, tok, (const int[]){39, 59, 3}, 3);
    n = 0;
    for (int p = 40; p < 64; p++) seq[n] = 0, pos[n] = p, tok[n] = TOK(), n++;
    seq[n] = 2, pos[n] = 0, tok[n] = TOK(), n++;
    twin_call(t_, &w, n, seq, pos, tok, (const int[]){23, 24, 0}, 3);
    ForwardOpsStats a = forward_ops_stats(w.f[1]);
    CHECKF(a.mha_calls == 2 && a.mha_keys == 60 + 65,
           "prefill calls: %ld MHA-form calls over %ld keys, expected 2 over 125", a.mha_calls, a.mha_keys);
    for (int step = 0; step < 10; step++) {
        for (int q = 0; q < GSEQ; q++) seq[q] = q, pos[q] = w.s[0][q].len, tok[q] = TOK();
        twin_call(t_, &w, GSEQ, seq, pos, tok, (const int[]){2, 1, 0}, GSEQ);
    }
#undef TOK
    ForwardOpsStats b = forward_ops_stats(w.f[1]);
    CHECKF(b.mha_calls == 2 && b.absorbed_calls == 10, "decode steps: %ld absorbed calls of 10", b.absorbed_calls);
    fprintf(stderr, "    %d calls equal on the guarded backend (%ld MHA-form rows over %ld keys, %ld absorbed rows)\n",
            w.calls, b.mha_rows, b.mha_keys, b.absorbed_rows);
    fwd_twin_close(&w);
    model_free(mg);
    CHECKF(guarded_ops_live_allocations() == 0, "%d backend buffers leaked", guarded_ops_live_allocations());
    ref_model_free(ref);
}
