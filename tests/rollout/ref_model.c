/* tests/rollout/ref_model.c — see ref_model.h */
#include "tests/rollout/ref_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"

Model *ref_model_new(const char *json, uint64_t seed, float init_std) {
    ModelConfig cfg;
    CrError e;
    if (model_config_parse(&cfg, json, "test config", &e) != 0) {
        fprintf(stderr, "%s\n", e.msg);
        abort();
    }
    Model *m = model_create(&cfg, &e);
    if (!m) {
        fprintf(stderr, "%s\n", e.msg);
        abort();
    }
    CrRng r;
    cr_rng_init(&r, seed, 77, 0);
    for (int i = 0; i < m->n_tensors; i++) {
        ParamTensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        for (size_t k = 0; k < t->numel; k++)
            p[k] = t->ndim == 1 ? (float)(1.0 + 0.2 * cr_rng_normal(&r))
                                : (float)(init_std * cr_rng_normal(&r));
    }
    return m;
}

void ref_model_free(Model *m) { model_free(m); }

static const float *P(const Model *m, const char *fmt, int l, int x) {
    char nm[128];
    snprintf(nm, sizeof nm, fmt, l, x);
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, nm)) return m->params + m->tensors[i].offset;
    fprintf(stderr, "ref: no tensor %s\n", nm);
    abort();
}

/* y[T][N] = x[T][K] W[N][K]^T */
static void lin(double *y, const double *x, const float *W, int T, int N, int K) {
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N; n++) {
            double s = 0;
            for (int k = 0; k < K; k++) s += x[(size_t)t * K + k] * W[(size_t)n * K + k];
            y[(size_t)t * N + n] = s;
        }
}

static void rms(double *y, const double *x, const float *w, int T, int D, int ldx, int ldy, double eps) {
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int i = 0; i < D; i++) ss += x[(size_t)t * ldx + i] * x[(size_t)t * ldx + i];
        double r = 1.0 / sqrt(ss / D + eps);
        for (int i = 0; i < D; i++) y[(size_t)t * ldy + i] = w[i] * x[(size_t)t * ldx + i] * r;
    }
}

static void rope(double *v, int dr, int pos, const float *inv_freq, float cs) {
    for (int i = 0; i < dr / 2; i++) {
        float ang = (float)pos * inv_freq[i];  /* fp32 angle, as the reference */
        double c = cos(ang) * cs, s = sin(ang) * cs, a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c - b * s;
        v[2 * i + 1] = a * s + b * c;
    }
}

static void swiglu_mlp(double *out, const double *x, const float *wg, const float *wu, const float *wd,
                       int D, int Im, double scale) {
    double *g = malloc(sizeof(double) * Im);
    for (int i = 0; i < Im; i++) {
        double a = 0, b = 0;
        for (int k = 0; k < D; k++) {
            a += x[k] * wg[(size_t)i * D + k];
            b += x[k] * wu[(size_t)i * D + k];
        }
        g[i] = a / (1 + exp(-a)) * b;
    }
    for (int d = 0; d < D; d++) {
        double s = 0;
        for (int i = 0; i < Im; i++) s += g[i] * wd[(size_t)d * Im + i];
        out[d] += scale * s;
    }
    free(g);
}

static int cmp_i32(const void *a, const void *b) {
    return (*(const int32_t *)a > *(const int32_t *)b) - (*(const int32_t *)a < *(const int32_t *)b);
}

void ref_forward(const Model *m, const int32_t *tok, int T, double *logits, int32_t *experts) {
    const ModelConfig *c = &m->cfg;
    int D = c->hidden_size, H = c->num_attention_heads, r = c->kv_lora_rank, dn = c->qk_nope_head_dim;
    int dr = c->qk_rope_head_dim, dv = c->v_head_dim, qk = dn + dr, V = c->vocab_size;
    int E = c->n_routed_experts, K = c->num_experts_per_tok, ql = c->q_lora_rank;
    double eps = c->rms_norm_eps, scale = model_softmax_scale(c);
    float inv_freq[128], cs;
    model_rope_inv_freq(c, inv_freq, &cs);
    double *x = calloc((size_t)T * D, 8), *h = calloc((size_t)T * D, 8);
    double *q = calloc((size_t)T * H * qk, 8), *cq = calloc((size_t)T * (ql ? ql : 1), 8);
    double *ckv = calloc((size_t)T * (r + dr), 8), *cn = calloc((size_t)T * r, 8);
    double *kv = calloc((size_t)T * H * (dn + dv), 8), *o = calloc((size_t)T * H * dv, 8);
    double *att = calloc((size_t)T * D, 8), *sc = calloc((size_t)T, 8), *ffn = calloc((size_t)D, 8);
    const float *emb = P(m, "model.embed_tokens.weight", 0, 0);
    for (int t = 0; t < T; t++)
        for (int d = 0; d < D; d++) x[(size_t)t * D + d] = emb[(size_t)tok[t] * D + d];
    int moe_l = 0, n_moe = 0;
    for (int l = 0; l < c->num_hidden_layers; l++) n_moe += model_layer_is_moe(c, l);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        rms(h, x, P(m, "model.layers.%d.input_layernorm.weight", l, 0), T, D, D, D, eps);
        if (ql) {
            lin(cq, h, P(m, "model.layers.%d.self_attn.q_a_proj.weight", l, 0), T, ql, D);
            rms(cq, cq, P(m, "model.layers.%d.self_attn.q_a_layernorm.weight", l, 0), T, ql, ql, ql, eps);
            lin(q, cq, P(m, "model.layers.%d.self_attn.q_b_proj.weight", l, 0), T, H * qk, ql);
        } else {
            lin(q, h, P(m, "model.layers.%d.self_attn.q_proj.weight", l, 0), T, H * qk, D);
        }
        lin(ckv, h, P(m, "model.layers.%d.self_attn.kv_a_proj_with_mqa.weight", l, 0), T, r + dr, D);
        rms(cn, ckv, P(m, "model.layers.%d.self_attn.kv_a_layernorm.weight", l, 0), T, r, r + dr, r, eps);
        lin(kv, cn, P(m, "model.layers.%d.self_attn.kv_b_proj.weight", l, 0), T, H * (dn + dv), r);
        for (int t = 0; t < T; t++) {
            rope(ckv + (size_t)t * (r + dr) + r, dr, t, inv_freq, cs);
            for (int hh = 0; hh < H; hh++) rope(q + (size_t)t * H * qk + hh * qk + dn, dr, t, inv_freq, cs);
        }
        for (int t = 0; t < T; t++)
            for (int hh = 0; hh < H; hh++) {
                const double *qv = q + (size_t)t * H * qk + hh * qk;
                double mx = -1e300, sum = 0;
                for (int j = 0; j <= t; j++) {
                    const double *kn = kv + (size_t)j * H * (dn + dv) + hh * (dn + dv);
                    const double *kp = ckv + (size_t)j * (r + dr) + r;
                    double s = 0;
                    for (int k = 0; k < dn; k++) s += qv[k] * kn[k];
                    for (int k = 0; k < dr; k++) s += qv[dn + k] * kp[k];
                    sc[j] = s * scale;
                    if (sc[j] > mx) mx = sc[j];
                }
                for (int j = 0; j <= t; j++) sum += (sc[j] = exp(sc[j] - mx));
                double *ov = o + (size_t)t * H * dv + hh * dv;
                for (int k = 0; k < dv; k++) ov[k] = 0;
                for (int j = 0; j <= t; j++) {
                    const double *vv = kv + (size_t)j * H * (dn + dv) + hh * (dn + dv) + dn;
                    for (int k = 0; k < dv; k++) ov[k] += sc[j] / sum * vv[k];
                }
            }
        lin(att, o, P(m, "model.layers.%d.self_attn.o_proj.weight", l, 0), T, D, H * dv);
        for (size_t i = 0; i < (size_t)T * D; i++) x[i] += att[i];
        rms(h, x, P(m, "model.layers.%d.post_attention_layernorm.weight", l, 0), T, D, D, D, eps);
        int moe = model_layer_is_moe(c, l);
        for (int t = 0; t < T; t++) {
            const double *ht = h + (size_t)t * D;
            for (int d = 0; d < D; d++) ffn[d] = 0;
            if (!moe) {
                swiglu_mlp(ffn, ht, P(m, "model.layers.%d.mlp.gate_proj.weight", l, 0),
                           P(m, "model.layers.%d.mlp.up_proj.weight", l, 0),
                           P(m, "model.layers.%d.mlp.down_proj.weight", l, 0), D, c->intermediate_size, 1.0);
            } else {
                const float *wr = P(m, "model.layers.%d.mlp.gate.weight", l, 0);
                double s[256], mx = -1e300, sum = 0;
                for (int e = 0; e < E; e++) {
                    s[e] = 0;
                    for (int d = 0; d < D; d++) s[e] += ht[d] * wr[(size_t)e * D + d];
                    if (s[e] > mx) mx = s[e];
                }
                for (int e = 0; e < E; e++) sum += (s[e] = exp(s[e] - mx));
                for (int e = 0; e < E; e++) s[e] /= sum;
                if (c->topk_method == TOPK_GROUP_LIMITED_GREEDY && c->n_group > 1) {
                    int g = E / c->n_group, keep[64] = {0};
                    double gs[64];
                    for (int j = 0; j < c->n_group; j++) {
                        gs[j] = 0;
                        for (int e = j * g; e < (j + 1) * g; e++) gs[j] = s[e] > gs[j] ? s[e] : gs[j];
                    }
                    for (int k = 0; k < c->topk_group; k++) {
                        int b = -1;
                        for (int j = 0; j < c->n_group; j++)
                            if (!keep[j] && (b < 0 || gs[j] > gs[b])) b = j;
                        keep[b] = 1;
                    }
                    for (int e = 0; e < E; e++) if (!keep[e / g]) s[e] = 0;
                }
                int taken[256] = {0};
                int32_t sel[64];
                double wsum = 0, wk[64];
                for (int k = 0; k < K; k++) {
                    int b = -1;
                    for (int e = 0; e < E; e++)
                        if (!taken[e] && (b < 0 || s[e] > s[b])) b = e;
                    taken[b] = 1;
                    sel[k] = b;
                    wk[k] = s[b];
                    wsum += s[b];
                }
                for (int k = 0; k < K; k++) {
                    double wgt = c->norm_topk_prob ? wk[k] / (wsum + 1e-20) : wk[k] * c->routed_scaling_factor;
                    swiglu_mlp(ffn, ht, P(m, "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, sel[k]),
                               P(m, "model.layers.%d.mlp.experts.%d.up_proj.weight", l, sel[k]),
                               P(m, "model.layers.%d.mlp.experts.%d.down_proj.weight", l, sel[k]), D,
                               c->moe_intermediate_size, wgt);
                }
                if (c->n_shared_experts)
                    swiglu_mlp(ffn, ht, P(m, "model.layers.%d.mlp.shared_experts.gate_proj.weight", l, 0),
                               P(m, "model.layers.%d.mlp.shared_experts.up_proj.weight", l, 0),
                               P(m, "model.layers.%d.mlp.shared_experts.down_proj.weight", l, 0), D,
                               c->moe_intermediate_size * c->n_shared_experts, 1.0);
                if (experts) {
                    qsort(sel, (size_t)K, sizeof *sel, cmp_i32);
                    memcpy(experts + ((size_t)t * n_moe + moe_l) * K, sel, (size_t)K * sizeof *sel);
                }
            }
            for (int d = 0; d < D; d++) x[(size_t)t * D + d] += ffn[d];
        }
        moe_l += moe;
    }
    rms(h, x, P(m, "model.norm.weight", 0, 0), T, D, D, D, eps);
    lin(logits, h, P(m, "lm_head.weight", 0, 0), T, V, D);
    free(x); free(h); free(q); free(cq); free(ckv); free(cn); free(kv); free(o); free(att); free(sc); free(ffn);
}

double ref_logprob(const double *row, int V, int tok, double temperature) {
    double mx = -1e300, sum = 0;
    for (int i = 0; i < V; i++) mx = row[i] / temperature > mx ? row[i] / temperature : mx;
    for (int i = 0; i < V; i++) sum += exp(row[i] / temperature - mx);
    return row[tok] / temperature - mx - log(sum);
}

int ref_argmax(const double *row, int V) {
    int b = 0;
    for (int i = 1; i < V; i++) if (row[i] > row[b]) b = i;
    return b;
}
