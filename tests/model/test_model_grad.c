/* tests/model/test_model_grad.c — whole-model gradient checks on tiny configs: the
 * gradients model_backward accumulates are compared with central finite differences of
 * F = sum_t dlogp[t] logp[t] + aux_weight * aux_loss for sampled entries of EVERY
 * parameter tensor (q-LoRA on/off, greedy / group-limited routing, YaRN, tied
 * embeddings, norm_topk_prob, seq_aux on/off). A perturbation that flips a top-K
 * selection makes F discontinuous; such samples are detected (the estimates at h and h/2
 * disagree) and skipped, and at most a few may be. */
#include "tests/test.h"
#include "tests/model/fd.h"
#include "tests/model/model_tiny.h"
#include "model/layers.h"
#include "model/model.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

enum { GN = 14, GS = 2 };

typedef struct GradCtx {
    Model *m;
    Batch b;
    float dlogp[GN], logp[GN];
    float *R;      /* hidden mode: [GN, D] */
    float *hid;
    float auxw;
    int hidden;
} GradCtx;

static double objective(void *p) {
    GradCtx *c = p;
    CrError e;
    float aux = 0;
    double f = 0;
    if (c->hidden) {
        if (model_forward_hidden(c->m, &c->b, c->hid, &aux, &e)) return NAN;
        f = fd_dot(c->R, c->hid, (size_t)GN * c->m->cfg.hidden_size);
    } else {
        if (model_forward(c->m, &c->b, c->logp, &aux, &e)) return NAN;
        f = fd_dot(c->dlogp, c->logp, GN);
    }
    return f + c->auxw * (double)aux;
}

static void grad_check(TestCtx *t_, TinyOpts o, int hidden, const char *label) {
    ModelConfig cfg;
    CHECK(tiny_config(&cfg, o) == 0);
    CrError e;
    Model *m = model_create(&cfg, &e);
    CHECKF(m != NULL, "%s", e.msg);
    if (!m) return;
    model_init_random(m, 11);
    static int32_t tok[GN], tgt[GN], pos[GN], cu[GS + 1] = {0, 6, GN};
    uint32_t s = 12345;
    for (int i = 0; i < GN; i++) {
        s = s * 1664525u + 1013904223u;
        tok[i] = (int32_t)((s >> 8) % (uint32_t)cfg.vocab_size);
    }
    for (int i = 0; i < GN; i++) tgt[i] = (i == 5 || i == GN - 1) ? -1 : tok[(i + 1) % GN];
    for (int i = 0; i < 6; i++) pos[i] = i;
    for (int i = 6; i < GN; i++) pos[i] = 40 + (i - 6);  /* a continuation at positions 40.. (YaRN range) */
    GradCtx c = {.m = m, .b = {.n_tokens = GN, .n_seqs = GS, .tokens = tok, .targets = tgt, .cu_seqlens = cu, .pos = pos},
                 .auxw = 0.7f, .hidden = hidden};
    fd_fill(c.dlogp, GN, 31, 1.0f);
    size_t ND = (size_t)GN * cfg.hidden_size;
    c.R = malloc(sizeof(float) * ND);
    c.hid = malloc(sizeof(float) * ND);
    fd_fill(c.R, ND, 32, 1.0f);
    /* analytic */
    model_zero_grads(m);
    float aux = 0;
    if (hidden) {
        CHECKF(model_forward_hidden(m, &c.b, c.hid, &aux, &e) == 0, "%s", e.msg);
        CHECKF(model_backward_hidden(m, &c.b, c.R, c.auxw, &e) == 0, "%s", e.msg);
    } else {
        CHECKF(model_forward(m, &c.b, c.logp, &aux, &e) == 0, "%s", e.msg);
        CHECKF(model_backward(m, &c.b, c.dlogp, c.auxw, &e) == 0, "%s", e.msg);
    }
    if (o.aux_alpha > 0) CHECK(aux > 0);
    float *an = malloc(sizeof(float) * m->n_params);
    memcpy(an, m->grads, sizeof(float) * m->n_params);
    int checked = 0, skipped = 0, bad = 0;
    double h = 1e-2;
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const ParamTensor *pt = &m->tensors[ti];
        CrRng r;
        cr_rng_init(&r, 99, (uint64_t)ti, 0);
        /* a tensor's grad is checked at 3 entries, one of them its largest-gradient entry
         * (expert tensors of rarely chosen experts are mostly zero). */
        size_t big = 0;
        for (size_t j = 0; j < pt->numel; j++)
            if (fabsf(an[pt->offset + j]) > fabsf(an[pt->offset + big])) big = j;
        for (int k = 0; k < 3; k++) {
            size_t j = k == 0 ? big : (size_t)(cr_rng_u64(&r) % pt->numel);
            float *x = m->params + pt->offset + j;
            float x0 = *x;
            double f[4];
            const double steps[4] = {h, -h, h / 2, -h / 2};
            for (int q = 0; q < 4; q++) {
                *x = (float)(x0 + steps[q]);
                f[q] = objective(&c);
            }
            *x = x0;
            double fd1 = (f[0] - f[1]) / (2 * h), fd2 = (f[2] - f[3]) / h, a = an[pt->offset + j];
            double tol = 2e-3 + 3e-2 * fabs(a);
            if (fabs(fd1 - fd2) > tol) {  /* discontinuity (a routing decision flipped): a jump J within
                                           * h/2 shifts the h/2 estimate twice as far as the h one */
                skipped++;
                continue;
            }
            checked++;
            if (!(fabs(fd1 - a) <= tol || fabs(fd2 - a) <= tol)) {
                if (bad < 8)
                    fprintf(stderr, "    %s: %s[%zu]: analytic %.6g, finite differences %.6g / %.6g\n", label, pt->name, j,
                            a, fd1, fd2);
                bad++;
            }
        }
    }
    CHECKF(bad == 0, "%s: %d of %d sampled gradients disagree", label, bad, checked);
    CHECKF(skipped * 10 <= checked, "%s: %d samples skipped as discontinuous (of %d)", label, skipped, checked);
    free(an);
    free(c.R);
    free(c.hid);
    model_free(m);
}

TEST(model_grad_no_qlora_greedy_yarn) {
    grad_check(t_, (TinyOpts){.yarn = 1, .aux_alpha = 0.05f, .seq_aux = 1, .n_shared = 1}, 0, "A");
}

TEST(model_grad_qlora_group_limited_tied) {
    grad_check(t_, (TinyOpts){.q_lora = 10, .group_limited = 1, .yarn = 1, .tie = 1, .aux_alpha = 0.05f, .seq_aux = 1,
                              .routed_scale = 2.5f, .n_shared = 2}, 0, "B");
}

TEST(model_grad_norm_topk_global_aux) {
    grad_check(t_, (TinyOpts){.norm_topk = 1, .aux_alpha = 0.05f, .seq_aux = 0, .n_shared = 0}, 0, "C");
}

TEST(model_grad_hidden_trunk) {
    grad_check(t_, (TinyOpts){.q_lora = 10, .yarn = 1, .aux_alpha = 0.05f, .seq_aux = 1, .n_shared = 1}, 1, "H");
}

/* Backward accumulates: two backward passes give twice the gradient; aux_weight 0 drops
 * the aux term exactly (the router still gets the routing-weight gradient). */
TEST(model_backward_accumulates) {
    ModelConfig cfg;
    CHECK(tiny_config(&cfg, (TinyOpts){.yarn = 1, .aux_alpha = 0.05f, .seq_aux = 1, .n_shared = 1}) == 0);
    CrError e;
    Model *m = model_create(&cfg, &e);
    if (!m) { CHECK(0); return; }
    model_init_random(m, 3);
    int32_t tok[8] = {1, 5, 9, 2, 7, 7, 3, 4}, tgt[8] = {5, 9, 2, -1, 7, 3, 4, 8}, cu[3] = {0, 4, 8};
    Batch b = {.n_tokens = 8, .n_seqs = 2, .tokens = tok, .targets = tgt, .cu_seqlens = cu};
    float lp[8], dl[8] = {-0.1f, 0.2f, -0.3f, 0.0f, 0.5f, -0.6f, 0.7f, 0.1f};
    model_zero_grads(m);
    CHECK(model_forward(m, &b, lp, NULL, &e) == 0);
    CHECK(model_backward(m, &b, dl, 1.0f, &e) == 0);
    float *g1 = malloc(sizeof(float) * m->n_params);
    memcpy(g1, m->grads, sizeof(float) * m->n_params);
    CHECK(model_backward(m, &b, dl, 1.0f, &e) == 0);
    int ok = 1;
    for (size_t i = 0; i < m->n_params; i++) ok &= fabsf(m->grads[i] - 2 * g1[i]) <= 1e-6f * (1 + fabsf(g1[i]));
    CHECK(ok);
    /* aux only: dlogp = 0 -> only router / lower-layer grads from the aux term */
    float z[8] = {0};
    model_zero_grads(m);
    CHECK(model_backward(m, &b, z, 0.0f, &e) == 0);
    size_t nz = 0;
    for (size_t i = 0; i < m->n_params; i++) nz += m->grads[i] != 0;
    CHECK(nz == 0);
    CHECK(model_backward(m, &b, z, 1.0f, &e) == 0);
    const ModelWeights *gw = model_grad_weights(m);
    double rn = 0;
    for (int i = 0; i < 8 * 32; i++) rn += fabs(gw->layers[1].router[i]);
    CHECK(rn > 0);
    free(g1);
    model_free(m);
}

/* Forward outputs and accumulated gradients are bit-identical for 1 and 3 OpenMP threads
 * at a size where GEMMs, attention and the MoE loops are all split across threads. */
TEST(model_backward_deterministic_across_threads) {
    const char *js =
        "{\"vocab_size\":300,\"hidden_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,"
        "\"q_lora_rank\":24,\"kv_lora_rank\":32,\"qk_nope_head_dim\":16,\"qk_rope_head_dim\":8,\"v_head_dim\":16,"
        "\"intermediate_size\":192,\"moe_intermediate_size\":48,\"n_routed_experts\":8,\"n_shared_experts\":1,"
        "\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,\"topk_method\":\"group_limited_greedy\","
        "\"n_group\":4,\"topk_group\":2,\"aux_loss_alpha\":0.01,\"seq_aux\":true,\"max_position_embeddings\":1024,"
        "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":4,\"original_max_position_embeddings\":256,"
        "\"beta_fast\":32,\"beta_slow\":1,\"mscale\":0.707,\"mscale_all_dim\":0.707}}";
    ModelConfig cfg;
    CrError e;
    CHECKF(model_config_parse(&cfg, js, "det", &e) == 0, "%s", e.msg);
    Model *m = model_create(&cfg, &e);
    if (!m) { CHECK(0); return; }
    model_init_random(m, 8);
    enum { N = 400 };
    static int32_t tok[N], tgt[N], cu[4] = {0, 150, 170, N};
    static float lp[2][N], dl[N];
    for (int i = 0; i < N; i++) tok[i] = (i * 7919 + 3) % 300;
    for (int i = 0; i < N; i++) tgt[i] = tok[(i + 1) % N];
    fd_fill(dl, N, 5, 0.01f);
    Batch b = {.n_tokens = N, .n_seqs = 3, .tokens = tok, .targets = tgt, .cu_seqlens = cu};
    float *g[2], aux[2];
    for (int r = 0; r < 2; r++) {
        omp_set_num_threads(r ? 3 : 1);
        model_zero_grads(m);
        CHECKF(model_forward(m, &b, lp[r], &aux[r], &e) == 0, "%s", e.msg);
        CHECKF(model_backward(m, &b, dl, 1.0f, &e) == 0, "%s", e.msg);
        g[r] = malloc(sizeof(float) * m->n_params);
        memcpy(g[r], m->grads, sizeof(float) * m->n_params);
    }
    CHECK(memcmp(lp[0], lp[1], sizeof lp[0]) == 0);
    CHECK(aux[0] == aux[1]);
    size_t diff = 0;
    for (size_t i = 0; i < m->n_params; i++) diff += g[0][i] != g[1][i];
    CHECKF(diff == 0, "%zu of %zu gradient entries differ between 1 and 3 threads", diff, m->n_params);
    free(g[0]);
    free(g[1]);
    model_free(m);
}
