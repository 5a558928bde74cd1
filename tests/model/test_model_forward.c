/* tests/model/test_model_forward.c — whole-model forward: normalisation of the fused
 * LM head, packed vs one-sequence-at-a-time equivalence (incl. the per-sequence aux
 * loss), thread-count determinism, hidden states, and bad-input errors. */
#include "tests/test.h"
#include "tests/model/model_tiny.h"
#include "model/layers.h"
#include "model/model.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static Model *tiny_model(TinyOpts o, uint64_t seed) {
    ModelConfig c;
    if (tiny_config(&c, o)) return NULL;
    CrError e;
    Model *m = model_create(&c, &e);
    if (m) model_init_random(m, seed);
    return m;
}

static void fill_tokens(int32_t *tok, int32_t *tgt, int n, uint32_t seed, int V) {
    for (int i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        tok[i] = (int32_t)((seed >> 8) % (uint32_t)V);
    }
    for (int i = 0; i < n; i++) tgt[i] = i + 1 < n ? tok[i + 1] : -1;
}

TEST(model_forward_lmhead_normalised) {
    TinyOpts o = {.yarn = 1, .aux_alpha = 0.01f, .seq_aux = 1, .n_shared = 1};
    Model *m = tiny_model(o, 1);
    CHECK(m != NULL);
    if (!m) return;
    int V = m->cfg.vocab_size, T = 7, N = V * T;
    /* V copies of one sequence; copy v asks for target v at its last position. */
    int32_t *tok = malloc(sizeof(int32_t) * N), *tgt = malloc(sizeof(int32_t) * N), *cu = malloc(sizeof(int32_t) * (V + 1));
    float *lp = malloc(sizeof(float) * N);
    int32_t base[7], bt[7];
    fill_tokens(base, bt, T, 7, V);
    for (int v = 0; v < V; v++) {
        memcpy(tok + v * T, base, sizeof base);
        for (int i = 0; i < T; i++) tgt[v * T + i] = i == T - 1 ? v : -1;
        cu[v] = v * T;
    }
    cu[V] = N;
    Batch b = {.n_tokens = N, .n_seqs = V, .tokens = tok, .targets = tgt, .cu_seqlens = cu};
    CrError e;
    float aux = -1;
    CHECKF(model_forward(m, &b, lp, &aux, &e) == 0, "%s", e.msg);
    double s = 0;
    for (int v = 0; v < V; v++) {
        s += exp(lp[v * T + T - 1]);
        CHECK(lp[v * T] == 0.0f);  /* target -1 -> 0 */
        CHECK(lp[v * T + T - 1] < 0);
    }
    CHECK_NEAR(s, 1.0, 1e-5);
    CHECK(aux > 0 && isfinite(aux));
    free(tok); free(tgt); free(cu); free(lp);
    model_free(m);
}

/* Each sequence alone gives the same logp as inside the packed batch, and the packed
 * seq_aux loss is the mean of the per-sequence losses (spec §6.4). */
static void packed_vs_single(TestCtx *t_, TinyOpts o) {
    Model *m = tiny_model(o, 2);
    CHECK(m != NULL);
    if (!m) return;
    enum { S = 3 };
    int lens[S] = {5, 11, 8}, N = 24, V = m->cfg.vocab_size;
    int32_t tok[24], tgt[24], cu[S + 1] = {0, 5, 16, 24};
    for (int s = 0; s < S; s++) fill_tokens(tok + cu[s], tgt + cu[s], lens[s], 100 + s, V);
    float lp[24], one[24], aux = 0, aux1, aux_sum = 0;
    CrError e;
    Batch b = {.n_tokens = N, .n_seqs = S, .tokens = tok, .targets = tgt, .cu_seqlens = cu};
    CHECKF(model_forward(m, &b, lp, &aux, &e) == 0, "%s", e.msg);
    for (int s = 0; s < S; s++) {
        int32_t c1[2] = {0, lens[s]};
        Batch b1 = {.n_tokens = lens[s], .n_seqs = 1, .tokens = tok + cu[s], .targets = tgt + cu[s], .cu_seqlens = c1};
        CHECKF(model_forward(m, &b1, one + cu[s], &aux1, &e) == 0, "%s", e.msg);
        aux_sum += aux1;
    }
    for (int i = 0; i < N; i++) CHECK_NEAR(lp[i], one[i], 2e-5);
    if (o.seq_aux) CHECK_NEAR(aux, aux_sum / S, 1e-5);
    else CHECK(aux > 0);
    model_free(m);
}

TEST(model_forward_packed_equals_single) {
    packed_vs_single(t_, (TinyOpts){.yarn = 1, .aux_alpha = 0.01f, .seq_aux = 1, .n_shared = 1});
    packed_vs_single(t_, (TinyOpts){.q_lora = 10, .group_limited = 1, .aux_alpha = 0.02f, .seq_aux = 1,
                                    .routed_scale = 2.5f, .tie = 1, .n_shared = 2});
    packed_vs_single(t_, (TinyOpts){.norm_topk = 1, .aux_alpha = 0.01f, .seq_aux = 0});
}

TEST(model_forward_deterministic_across_threads) {
    TinyOpts o = {.q_lora = 10, .yarn = 1, .aux_alpha = 0.01f, .seq_aux = 1, .n_shared = 1};
    Model *m = tiny_model(o, 3);
    CHECK(m != NULL);
    if (!m) return;
    int32_t tok[40], tgt[40], cu[3] = {0, 17, 40};
    fill_tokens(tok, tgt, 40, 9, m->cfg.vocab_size);
    Batch b = {.n_tokens = 40, .n_seqs = 2, .tokens = tok, .targets = tgt, .cu_seqlens = cu};
    float a[40], c[40], auxa, auxc;
    CrError e;
    omp_set_num_threads(1);
    CHECKF(model_forward(m, &b, a, &auxa, &e) == 0, "%s", e.msg);
    omp_set_num_threads(3);
    CHECKF(model_forward(m, &b, c, &auxc, &e) == 0, "%s", e.msg);
    CHECK(memcmp(a, c, sizeof a) == 0);
    CHECK(auxa == auxc);
    model_free(m);
}

TEST(model_forward_hidden_matches_logp) {
    TinyOpts o = {.yarn = 1, .n_shared = 1};
    Model *m = tiny_model(o, 4);
    CHECK(m != NULL);
    if (!m) return;
    int D = m->cfg.hidden_size, V = m->cfg.vocab_size;
    int32_t tok[9], tgt[9], cu[2] = {0, 9};
    fill_tokens(tok, tgt, 9, 5, V);
    Batch b = {.n_tokens = 9, .n_seqs = 1, .tokens = tok, .targets = tgt, .cu_seqlens = cu};
    float lp[9], hid[9 * 32];
    CrError e;
    CHECKF(model_forward(m, &b, lp, NULL, &e) == 0, "%s", e.msg);
    CHECKF(model_forward_hidden(m, &b, hid, NULL, &e) == 0, "%s", e.msg);
    /* logp recomputed in double from the hidden states and lm_head. */
    const float *W = model_weights(m)->lm_head;
    for (int t = 0; t < 8; t++) {
        double mx = -1e300, lg[48];
        for (int v = 0; v < V; v++) {
            double s = 0;
            for (int i = 0; i < D; i++) s += (double)hid[t * D + i] * W[v * D + i];
            lg[v] = s;
            if (s > mx) mx = s;
        }
        double z = 0;
        for (int v = 0; v < V; v++) z += exp(lg[v] - mx);
        CHECK_NEAR(lp[t], lg[tgt[t]] - mx - log(z), 1e-5);
    }
    model_free(m);
}

TEST(model_forward_bad_input) {
    TinyOpts o = {.n_shared = 1};
    Model *m = tiny_model(o, 5);
    CHECK(m != NULL);
    if (!m) return;
    int32_t tok[6] = {1, 2, 3, 4, 5, 6}, tgt[6] = {2, 3, 4, 5, 6, -1}, cu[4] = {0, 2, 6, 6}, pos[6] = {0, 1, 0, 1, 2, 64};
    float lp[6];
    CrError e;
    struct { Batch b; const char *want; } cases[] = {
        {{.n_tokens = 0, .n_seqs = 1, .tokens = tok, .targets = tgt, .cu_seqlens = cu}, "empty"},
        {{.n_tokens = 6, .n_seqs = 1, .tokens = tok, .targets = tgt, .cu_seqlens = cu}, "cu_seqlens"},
        {{.n_tokens = 6, .n_seqs = 3, .tokens = tok, .targets = tgt, .cu_seqlens = cu}, "cu_seqlens"},
        {{.n_tokens = 6, .n_seqs = 0, .tokens = tok, .targets = tgt, .cu_seqlens = cu}, "n_seqs"},
        {{.n_tokens = 6, .n_seqs = 2, .tokens = tok, .targets = tgt, .cu_seqlens = cu, .pos = pos}, "position"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        e.msg[0] = 0;
        CHECKF(model_forward(m, &cases[i].b, lp, NULL, &e) == -1, "case %zu accepted", i);
        CHECKF(strstr(e.msg, cases[i].want) != NULL, "case %zu: '%s' lacks '%s'", i, e.msg, cases[i].want);
    }
    tok[3] = 48;
    Batch b = {.n_tokens = 6, .n_seqs = 2, .tokens = tok, .targets = tgt, .cu_seqlens = cu};
    CHECK(model_forward(m, &b, lp, NULL, &e) == -1 && strstr(e.msg, "token id 48"));
    tok[3] = -1;
    CHECK(model_forward(m, &b, lp, NULL, &e) == -1 && strstr(e.msg, "token id -1"));
    tok[3] = 4;
    tgt[1] = 99;
    CHECK(model_forward(m, &b, lp, NULL, &e) == -1 && strstr(e.msg, "target id 99"));
    tgt[1] = 3;
    /* backward without a matching forward */
    float dl[6] = {0};
    CHECK(model_backward(m, &b, dl, 1.0f, &e) == -1 && strstr(e.msg, "must follow"));
    CHECKF(model_forward(m, &b, lp, NULL, &e) == 0, "%s", e.msg);
    /* a NaN parameter is reported by name */
    const ParamTensor *pt = model_find_tensor(m, "model.layers.1.self_attn.kv_b_proj.weight");
    CHECK(pt != NULL);
    if (pt) {
        m->params[pt->offset + 3] = NAN;
        CHECK(model_forward(m, &b, lp, NULL, &e) == -1 && strstr(e.msg, "kv_b_proj"));
    }
    model_free(m);
}

TEST(model_params_table) {
    TinyOpts o = {.q_lora = 10, .n_shared = 2};
    ModelConfig c;
    CHECK(tiny_config(&c, o) == 0);
    CrError e;
    Model *m = model_create(&c, &e);
    CHECK(m != NULL);
    if (!m) return;
    /* count by hand: embed 48*32 + lm_head 48*32 + norm 32; per layer attn:
     * 2 norms 64 + q_a 10*32 + q_a_norm 10 + q_b 48*10 + kv_a 20*32 + kv_a_norm 16 + kv_b 56*16 + o 32*24 */
    size_t attn = 64 + 320 + 10 + 480 + 640 + 16 + 896 + 768;
    size_t dense = 3 * 40 * 32, moe = 8 * 32 + 8 * 3 * 12 * 32 + 3 * 24 * 32;
    CHECK(m->n_params == 2 * 48 * 32 + 32 + 3 * attn + dense + 2 * moe);
    const ParamTensor *a = model_find_tensor(m, "model.layers.2.mlp.experts.0.up_proj.weight");
    const ParamTensor *b = model_find_tensor(m, "model.layers.2.mlp.experts.1.up_proj.weight");
    CHECK(a && b && b->offset == a->offset + 12 * 32 && a->shape[0] == 12 && a->shape[1] == 32);
    const ModelWeights *w = model_weights(m);
    CHECK(a && w->layers[2].exp_up == m->params + a->offset);
    CHECK(w->layers[0].mlp_gate && !w->layers[0].router && !w->layers[1].mlp_gate && w->layers[1].sh_down);
    CHECK(model_find_tensor(m, "lm_head.weight") && !model_find_tensor(m, "model.layers.0.self_attn.q_proj.weight"));
    model_free(m);
}
