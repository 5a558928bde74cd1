/* tests/model/test_model_infer.c — the inference-row helpers of model/layers.h that the
 * rollout engine may share: model_ffn_forward_infer against a direct double-precision
 * DeepSeekMoE / dense MLP written from spec §3.3, §6.1-6.2, and model_rope_apply against
 * the §5.3 rotation with the model's YaRN frequencies. */
#include "tests/test.h"
#include "tests/model/fd.h"
#include "tests/model/model_tiny.h"
#include "model/layers.h"
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double silu(double z) { return z / (1 + exp(-z)); }

/* out[D] += scale * down(silu(gate x) * up x) */
static void mlp_ref(const float *x, int D, int I, const float *Wg, const float *Wu, const float *Wd, double scale,
                    double *out) {
    double *h = malloc(sizeof(double) * I);
    for (int i = 0; i < I; i++) {
        double g = 0, u = 0;
        for (int j = 0; j < D; j++) {
            g += (double)Wg[(size_t)i * D + j] * x[j];
            u += (double)Wu[(size_t)i * D + j] * x[j];
        }
        h[i] = silu(g) * u;
    }
    for (int d = 0; d < D; d++) {
        double s = 0;
        for (int i = 0; i < I; i++) s += (double)Wd[(size_t)d * I + i] * h[i];
        out[d] += scale * s;
    }
    free(h);
}

static void ffn_ref(const Model *m, int l, const float *x, double *out) {
    const ModelConfig *c = &m->cfg;
    const LayerWeights *w = &model_weights(m)->layers[l];
    int D = c->hidden_size;
    for (int d = 0; d < D; d++) out[d] = 0;
    if (!model_layer_is_moe(c, l)) {
        mlp_ref(x, D, c->intermediate_size, w->mlp_gate, w->mlp_up, w->mlp_down, 1.0, out);
        return;
    }
    int E = c->n_routed_experts, K = c->num_experts_per_tok, Ie = c->moe_intermediate_size;
    double p[64], mx = -1e300, z = 0, masked[64];
    for (int e = 0; e < E; e++) {
        double s = 0;
        for (int j = 0; j < D; j++) s += (double)w->router[(size_t)e * D + j] * x[j];
        p[e] = s;
        mx = s > mx ? s : mx;
    }
    for (int e = 0; e < E; e++) z += (p[e] = exp(p[e] - mx));
    for (int e = 0; e < E; e++) masked[e] = (p[e] /= z);
    if (c->topk_method == TOPK_GROUP_LIMITED_GREEDY) {
        int G = c->n_group, per = E / G, keep[64] = {0};
        for (int t = 0; t < c->topk_group; t++) {
            int best = -1;
            double bs = -1;
            for (int g = 0; g < G; g++) {
                double gm = 0;
                for (int e = 0; e < per; e++) gm = p[g * per + e] > gm ? p[g * per + e] : gm;
                if (!keep[g] && gm > bs) { bs = gm; best = g; }
            }
            keep[best] = 1;
        }
        for (int e = 0; e < E; e++) if (!keep[e / per]) masked[e] = 0;
    }
    int idx[64];
    double wsum = 0;
    for (int k = 0; k < K; k++) {
        int best = 0;
        for (int e = 1; e < E; e++) if (masked[e] > masked[best]) best = e;
        idx[k] = best;
        wsum += p[best];
        masked[best] = -1;
    }
    for (int k = 0; k < K; k++) {
        int e = idx[k];
        double wk = c->norm_topk_prob && K > 1 ? p[e] / (wsum + 1e-20) : p[e] * c->routed_scaling_factor;
        mlp_ref(x, D, Ie, w->exp_gate + (size_t)e * Ie * D, w->exp_up + (size_t)e * Ie * D,
                w->exp_down + (size_t)e * D * Ie, wk, out);
    }
    if (c->n_shared_experts > 0)
        mlp_ref(x, D, Ie * c->n_shared_experts, w->sh_gate, w->sh_up, w->sh_down, 1.0, out);
}

/* N rows through every layer; K = 3, so N = 37 (111 slots) takes the dispatched routed
 * experts (permute, per-expert GEMMs, unpermute) and N = 5 (15 slots) the small-N op
 * (Ops.moe_experts_small, model.c's slot threshold 64). */
static void infer_case_n(TestCtx *t_, TinyOpts o, int N) {
    ModelConfig cfg;
    CHECK(tiny_config(&cfg, o) == 0);
    CrError e;
    Model *m = model_create(&cfg, &e);
    if (!m) { CHECK(0); return; }
    model_init_random(m, 21);
    int D = cfg.hidden_size;
    float *x = malloc(sizeof(float) * N * D), *out = malloc(sizeof(float) * N * D);
    double ref[64];
    fd_fill(x, (size_t)N * D, 22, 1.0f);
    for (int l = 0; l < cfg.num_hidden_layers; l++) {
        model_ffn_forward_infer(m, l, x, N, out);
        double num = 0, den = 0;
        for (int n = 0; n < N; n++) {
            ffn_ref(m, l, x + n * D, ref);
            for (int d = 0; d < D; d++) {
                num += (out[n * D + d] - ref[d]) * (out[n * D + d] - ref[d]);
                den += ref[d] * ref[d];
            }
        }
        CHECKF(sqrt(num / den) < 1e-5, "layer %d, %d rows: relative error %.3g", l, N, sqrt(num / den));
    }
    free(x);
    free(out);
    model_free(m);
}

static void infer_case(TestCtx *t_, TinyOpts o) {
    infer_case_n(t_, o, 37);
    infer_case_n(t_, o, 5);
}

TEST(model_ffn_forward_infer_matches_reference) {
    infer_case(t_, (TinyOpts){.n_shared = 1});
    infer_case(t_, (TinyOpts){.group_limited = 1, .routed_scale = 16.0f, .n_shared = 2});
    infer_case(t_, (TinyOpts){.norm_topk = 1, .n_shared = 0});
}

TEST(model_rope_apply_yarn) {
    ModelConfig cfg;
    CHECK(tiny_config(&cfg, (TinyOpts){.yarn = 1}) == 0);
    CrError e;
    Model *m = model_create(&cfg, &e);
    if (!m) { CHECK(0); return; }
    int dr = cfg.qk_rope_head_dim;  /* 4: two pairs */
    float inv[2], cs;
    model_rope_inv_freq(&cfg, inv, &cs);
    float x[3 * 2 * 4], x0[3 * 2 * 4];
    int32_t pos[3] = {0, 7, 63};
    fd_fill(x, sizeof x / 4, 23, 1.0f);
    memcpy(x0, x, sizeof x);
    model_rope_apply(m, x, 2 * dr, dr, 2, 3, pos);
    for (int n = 0; n < 3; n++)
        for (int h = 0; h < 2; h++)
            for (int i = 0; i < dr / 2; i++) {
                double th = (float)pos[n] * inv[i];
                const float *a = x0 + n * 2 * dr + h * dr + 2 * i, *b = x + n * 2 * dr + h * dr + 2 * i;
                CHECK_NEAR(b[0], cs * (a[0] * cos(th) - a[1] * sin(th)), 1e-5);
                CHECK_NEAR(b[1], cs * (a[0] * sin(th) + a[1] * cos(th)), 1e-5);
            }
    model_free(m);
}
