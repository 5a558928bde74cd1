/* rollout/forward.c — see forward.h. */
#include "rollout/forward.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "rollout/linear.h"

/* ---- weight views ------------------------------------------------------------------ */

static const float *tensor(const Model *m, const char *name, int64_t rows, int64_t cols, CrError *e) {
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        if (strcmp(t->name, name) != 0) continue;
        int ok = cols == 0 ? (t->ndim == 1 && t->shape[0] == rows)
                           : (t->ndim == 2 && t->shape[0] == rows && t->shape[1] == cols);
        if (!ok) {
            cr_error_set(e, "rollout: tensor %s has shape [%lld%s%lld], expected [%lld, %lld]", name,
                         (long long)t->shape[0], t->ndim == 2 ? ", " : "",
                         t->ndim == 2 ? (long long)t->shape[1] : 0LL, (long long)rows,
                         (long long)cols);
            return NULL;
        }
        return m->params + t->offset;
    }
    cr_error_set(e, "rollout: model has no tensor %s", name);
    return NULL;
}

#define BIND(dst, rows, cols, ...)                                                     \
    do {                                                                               \
        snprintf(nm, sizeof nm, __VA_ARGS__);                                          \
        if (!((dst) = tensor(m, nm, (rows), (cols), e))) goto fail;                    \
    } while (0)

int rollout_weights_bind(RolloutWeights *w, const Model *m, CrError *e) {
    const ModelConfig *c = &m->cfg;
    memset(w, 0, sizeof *w);
    w->cfg = c;
    char nm[128];
    int D = c->hidden_size, H = c->num_attention_heads, qk = c->qk_nope_head_dim + c->qk_rope_head_dim;
    int r = c->kv_lora_rank, dr = c->qk_rope_head_dim, dn = c->qk_nope_head_dim, dv = c->v_head_dim;
    if (H > 512 || c->n_routed_experts > 1024 || c->n_group > 256) {
        cr_error_set(e, "rollout: at most 512 heads, 1024 experts, 256 groups (got %d, %d, %d)", H,
                     c->n_routed_experts, c->n_group);
        return -1;
    }
    if (dr / 2 > 128 || dr % 2) {
        cr_error_set(e, "rollout: qk_rope_head_dim %d unsupported (even, <= 256)", dr);
        return -1;
    }
    w->layers = cr_calloc((size_t)c->num_hidden_layers, sizeof *w->layers);
    BIND(w->embed, c->vocab_size, D, "model.embed_tokens.weight");
    BIND(w->final_norm, D, 0, "model.norm.weight");
    if (c->tie_word_embeddings && !model_find_tensor(m, "lm_head.weight"))
        w->lm_head = w->embed;
    else
        BIND(w->lm_head, c->vocab_size, D, "lm_head.weight");
    for (int l = 0; l < c->num_hidden_layers; l++) {
        RolloutLayer *L = &w->layers[l];
        BIND(L->attn_norm, D, 0, "model.layers.%d.input_layernorm.weight", l);
        BIND(L->ffn_norm, D, 0, "model.layers.%d.post_attention_layernorm.weight", l);
        if (c->q_lora_rank == 0) {
            BIND(L->wq, (int64_t)H * qk, D, "model.layers.%d.self_attn.q_proj.weight", l);
        } else {
            BIND(L->wq_a, c->q_lora_rank, D, "model.layers.%d.self_attn.q_a_proj.weight", l);
            BIND(L->q_a_norm, c->q_lora_rank, 0, "model.layers.%d.self_attn.q_a_layernorm.weight", l);
            BIND(L->wq_b, (int64_t)H * qk, c->q_lora_rank, "model.layers.%d.self_attn.q_b_proj.weight", l);
        }
        BIND(L->wkv_a, r + dr, D, "model.layers.%d.self_attn.kv_a_proj_with_mqa.weight", l);
        BIND(L->kv_a_norm, r, 0, "model.layers.%d.self_attn.kv_a_layernorm.weight", l);
        BIND(L->wkv_b, (int64_t)H * (dn + dv), r, "model.layers.%d.self_attn.kv_b_proj.weight", l);
        BIND(L->wo, D, (int64_t)H * dv, "model.layers.%d.self_attn.o_proj.weight", l);
        L->moe = model_layer_is_moe(c, l);
        if (!L->moe) {
            int Im = c->intermediate_size;
            BIND(L->w_gate, Im, D, "model.layers.%d.mlp.gate_proj.weight", l);
            BIND(L->w_up, Im, D, "model.layers.%d.mlp.up_proj.weight", l);
            BIND(L->w_down, D, Im, "model.layers.%d.mlp.down_proj.weight", l);
            continue;
        }
        int E = c->n_routed_experts, Ie = c->moe_intermediate_size;
        w->n_moe_layers++;
        BIND(L->router, E, D, "model.layers.%d.mlp.gate.weight", l);
        L->e_gate = cr_calloc((size_t)E, sizeof *L->e_gate);
        L->e_up = cr_calloc((size_t)E, sizeof *L->e_up);
        L->e_down = cr_calloc((size_t)E, sizeof *L->e_down);
        for (int x = 0; x < E; x++) {
            BIND(L->e_gate[x], Ie, D, "model.layers.%d.mlp.experts.%d.gate_proj.weight", l, x);
            BIND(L->e_up[x], Ie, D, "model.layers.%d.mlp.experts.%d.up_proj.weight", l, x);
            BIND(L->e_down[x], D, Ie, "model.layers.%d.mlp.experts.%d.down_proj.weight", l, x);
        }
        if (c->n_shared_experts > 0) {
            int Is = Ie * c->n_shared_experts;
            BIND(L->s_gate, Is, D, "model.layers.%d.mlp.shared_experts.gate_proj.weight", l);
            BIND(L->s_up, Is, D, "model.layers.%d.mlp.shared_experts.up_proj.weight", l);
            BIND(L->s_down, D, Is, "model.layers.%d.mlp.shared_experts.down_proj.weight", l);
        }
    }
    model_rope_inv_freq(c, w->inv_freq, &w->cs_factor);
    w->softmax_scale = (float)model_softmax_scale(c);
    return 0;
fail:
    rollout_weights_release(w);
    return -1;
}

void rollout_weights_release(RolloutWeights *w) {
    if (w->layers && w->cfg)
        for (int l = 0; l < w->cfg->num_hidden_layers; l++) {
            free(w->layers[l].e_gate);
            free(w->layers[l].e_up);
            free(w->layers[l].e_down);
        }
    free(w->layers);
    w->layers = NULL;
}

/* ---- scratch ------------------------------------------------------------------------ */

struct Forward {
    const RolloutWeights *w;
    int cap;                                 /* rows the buffers hold */
    float *X, *CS, *Hn, *CQ, *Q, *CKV, *QA, *OL, *O, *G, *U, *Xe, *Ye, *RL, *wt;
    int32_t *idx, *rows;
    int *count;
    float *scores;                           /* attention scores, per thread [H][ctx] */
    size_t scores_cap;
};

Forward *forward_new(const RolloutWeights *w) {
    Forward *f = cr_calloc(1, sizeof *f);
    f->w = w;
    f->count = cr_calloc((size_t)(w->cfg->n_routed_experts + 1), sizeof *f->count);
    return f;
}

void forward_free(Forward *f) {
    if (!f) return;
    float *bufs[] = {f->X, f->CS, f->Hn, f->CQ, f->Q, f->CKV, f->QA, f->OL, f->O, f->G, f->U, f->Xe, f->Ye, f->RL, f->wt};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(f->idx);
    free(f->rows);
    free(f->scores);
    free(f->count);
    free(f);
}

static void ensure(Forward *f, int n) {
    if (n <= f->cap) return;
    const ModelConfig *c = f->w->cfg;
    size_t N = (size_t)n;
    int H = c->num_attention_heads, r = c->kv_lora_rank, dr = c->qk_rope_head_dim;
    int qk = c->qk_nope_head_dim + dr, D = c->hidden_size;
    int Imax = c->intermediate_size;
    int Is = c->moe_intermediate_size * (c->n_shared_experts > 1 ? c->n_shared_experts : 1);
    if (Is > Imax) Imax = Is;
    int K = c->num_experts_per_tok > 0 ? c->num_experts_per_tok : 1;
    int E = c->n_routed_experts > 0 ? c->n_routed_experts : 1;
#define GROW(p, count) (p) = cr_realloc((p), (count) * sizeof *(p))
    GROW(f->X, N * D);
    GROW(f->CS, N * dr);
    GROW(f->Hn, N * D);
    GROW(f->CQ, N * (c->q_lora_rank > 0 ? c->q_lora_rank : 1));
    GROW(f->Q, N * H * qk);
    GROW(f->CKV, N * (r + dr));
    GROW(f->QA, N * H * (r + dr));
    GROW(f->OL, N * H * r);
    GROW(f->O, N * H * c->v_head_dim);
    GROW(f->G, N * Imax);
    GROW(f->U, N * Imax);
    GROW(f->Xe, N * D);
    GROW(f->Ye, N * D);
    GROW(f->RL, N * E);
    GROW(f->wt, N * K);
    GROW(f->idx, N * K);
    GROW(f->rows, N * K);
#undef GROW
    f->cap = n;
}

/* ---- kernels ----------------------------------------------------------------------- */

/* y[M,N] = x[M,K] W[N,K]^T (+ y when accumulate) */
static void linear(float *y, int ldy, const float *x, int ldx, const float *W, int M, int N, int K,
                   int accumulate) {
    rollout_linear(y, ldy, x, ldx, W, M, N, K, accumulate);
}

static void rmsnorm_row(float *out, const float *x, const float *w, int D, float eps) {
    float ss = 0;
    for (int i = 0; i < D; i++) ss += x[i] * x[i];
    float r = 1.0f / sqrtf(ss / D + eps);
    for (int i = 0; i < D; i++) out[i] = w[i] * (x[i] * r);
}

static void rmsnorm_rows(float *out, int ldo, const float *x, int ldx, const float *w, int n, int D,
                         float eps) {
#pragma omp parallel for schedule(static) if ((long)n * D > (1L << 16))
    for (int i = 0; i < n; i++) rmsnorm_row(out + (size_t)i * ldo, x + (size_t)i * ldx, w, D, eps);
}

/* Interleaved-pair rotation (spec §5.3); angle fp32(pos) * inv_freq[i] rounded to fp32. */
static void rope_table(float *cs_out, int dr, int pos, const float *inv_freq, float cs) {
    float p = (float)pos;
    for (int i = 0; i < dr / 2; i++) {
        float ang = p * inv_freq[i];
        cs_out[2 * i] = cosf(ang) * cs;
        cs_out[2 * i + 1] = sinf(ang) * cs;
    }
}

/* rotate with a row of rope_table: pairs (2i, 2i+1) */
static void rope_vec(float *v, int dr, const float *cs) {
    for (int i = 0; i < dr / 2; i++) {
        float co = cs[2 * i], si = cs[2 * i + 1];
        float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * co - b * si;
        v[2 * i + 1] = a * si + b * co;
    }
}

static float silu(float x) { return x / (1.0f + expf(-x)); }

/* SwiGLU MLP on n rows of x: acc[i] += scale_i * down(silu(gate x) * up x). */
static void mlp(Forward *f, const float *x, int n, const float *wg, const float *wu, const float *wd,
                int Im, float *out, int accumulate) {
    int D = f->w->cfg->hidden_size;
    linear(f->G, Im, x, D, wg, n, Im, D, 0);
    linear(f->U, Im, x, D, wu, n, Im, D, 0);
    size_t nI = (size_t)n * Im;
    for (size_t k = 0; k < nI; k++) f->G[k] = silu(f->G[k]) * f->U[k];
    linear(out, D, f->G, Im, wd, n, D, Im, accumulate);
}

/* Router (spec §6.1): softmax over E, greedy or group-limited top-K (ties to the lower
 * index), weights scaled or renormalised. Writes idx[K] (descending score) and wt[K]. */
static void route_row(const ModelConfig *c, float *s, int32_t *idx, float *wt) {
    int E = c->n_routed_experts, K = c->num_experts_per_tok;
    float m = s[0];
    for (int e = 1; e < E; e++) m = s[e] > m ? s[e] : m;
    float sum = 0;
    for (int e = 0; e < E; e++) sum += (s[e] = expf(s[e] - m));
    for (int e = 0; e < E; e++) s[e] /= sum;
    float masked[1024];
    const float *sc = s;
    if (c->topk_method == TOPK_GROUP_LIMITED_GREEDY && c->n_group > 1 && E <= 1024) {
        int G = c->n_group, g = E / G;
        float gs[256];
        unsigned char keep[256] = {0};
        for (int j = 0; j < G && j < 256; j++) {
            gs[j] = s[j * g];
            for (int e = j * g; e < (j + 1) * g; e++) gs[j] = s[e] > gs[j] ? s[e] : gs[j];
        }
        for (int t = 0; t < c->topk_group; t++) {
            int b = -1;
            for (int j = 0; j < G; j++)
                if (!keep[j] && (b < 0 || gs[j] > gs[b])) b = j;
            keep[b] = 1;
        }
        for (int e = 0; e < E; e++) masked[e] = keep[e / g] ? s[e] : 0.0f;
        sc = masked;
    }
    unsigned char taken[1024] = {0};
    float wsum = 0;
    for (int k = 0; k < K; k++) {
        int b = -1;
        for (int e = 0; e < E; e++)
            if (!taken[e] && (b < 0 || sc[e] > sc[b])) b = e;
        taken[b] = 1;
        idx[k] = b;
        wt[k] = sc[b];
        wsum += sc[b];
    }
    for (int k = 0; k < K; k++)
        wt[k] = (K > 1 && c->norm_topk_prob) ? wt[k] / (wsum + 1e-20f) : wt[k] * c->routed_scaling_factor;
}

/* Attention of one row's H query heads over positions 0..last of its sequence (MQA over
 * the latent rows). Per cache block (its rows are contiguous for a layer), scores are a
 * small GEMM Q [H, rw] x rows^T and the output accumulates P x rows[:, :r], both on the
 * batch-invariant kernels of linear.h; softmax per head in between. S: [H][last+1]. */
static void attend_row(float *out, const float *qa, float *S, const LatentCache *cache, const CacheSeq *seq,
                       int l, int last, int H, int rw, int r, float scale) {
    int n = last + 1, bt = cache->block_tokens;
    for (int j0 = 0; j0 < n; j0 += bt) {
        int nb = n - j0 < bt ? n - j0 : bt;
        rollout_linear(S + j0, n, qa, rw, cache_row(cache, seq, l, j0), H, nb, rw, 0);
    }
    float inv[512];
    for (int h = 0; h < H; h++) {
        float *sh = S + (size_t)h * n, mx = -INFINITY, sum = 0;
        for (int j = 0; j < n; j++) mx = sh[j] * scale > mx ? sh[j] * scale : mx;
        for (int j = 0; j < n; j++) sum += (sh[j] = expf(sh[j] * scale - mx));
        inv[h] = 1.0f / sum;
    }
    for (int j0 = 0; j0 < n; j0 += bt) {
        int nb = n - j0 < bt ? n - j0 : bt;
        rollout_linear_nn(out, r, S + j0, n, cache_row(cache, seq, l, j0), rw, H, r, nb, j0 > 0);
    }
    for (int h = 0; h < H; h++)
        for (int k = 0; k < r; k++) out[(size_t)h * r + k] *= inv[h];
}

/* ---- the pass ---------------------------------------------------------------------- */

void forward_run(Forward *f, LatentCache *cache, int n, const int32_t *tokens, const int32_t *pos,
                 CacheSeq *const *seqs, const int *logit_rows, int n_logits, float *logits,
                 int32_t *experts) {
    const RolloutWeights *w = f->w;
    const ModelConfig *c = w->cfg;
    ensure(f, n > n_logits ? n : n_logits);
    int D = c->hidden_size, H = c->num_attention_heads, r = c->kv_lora_rank;
    int dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim, dv = c->v_head_dim, qk = dn + dr;
    int ql = c->q_lora_rank, rw = r + dr, K = c->num_experts_per_tok;
    float eps = c->rms_norm_eps, scale = w->softmax_scale;

    for (int i = 0; i < n; i++) rope_table(f->CS + (size_t)i * dr, dr, pos[i], w->inv_freq, w->cs_factor);
    for (int i = 0; i < n; i++)
        memcpy(f->X + (size_t)i * D, w->embed + (size_t)tokens[i] * D, (size_t)D * sizeof(float));

    int moe_l = 0;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const RolloutLayer *L = &w->layers[l];
        rmsnorm_rows(f->Hn, D, f->X, D, L->attn_norm, n, D, eps);
        if (ql > 0) {
            linear(f->CQ, ql, f->Hn, D, L->wq_a, n, ql, D, 0);
            rmsnorm_rows(f->CQ, ql, f->CQ, ql, L->q_a_norm, n, ql, MODEL_LATENT_NORM_EPS);
            linear(f->Q, H * qk, f->CQ, ql, L->wq_b, n, H * qk, ql, 0);
        } else {
            linear(f->Q, H * qk, f->Hn, D, L->wq, n, H * qk, D, 0);
        }
        linear(f->CKV, rw, f->Hn, D, L->wkv_a, n, rw, D, 0);
        /* latent rows into the cache: [rmsnorm(c) | rope(k_pe)] */
        for (int i = 0; i < n; i++) {
            float *row = cache_row(cache, seqs[i], l, pos[i]);
            const float *ckv = f->CKV + (size_t)i * rw;
            rmsnorm_row(row, ckv, L->kv_a_norm, r, MODEL_LATENT_NORM_EPS);
            memcpy(row + r, ckv + r, (size_t)dr * sizeof(float));
            rope_vec(row + r, dr, f->CS + (size_t)i * dr);
        }
        /* absorbed queries: QA[i,h] = [W_UK[h]^T q_nope[i,h] | rope(q_pe[i,h])] */
        for (int h = 0; h < H; h++)
            rollout_linear_nn(f->QA + (size_t)h * rw, H * rw, f->Q + (size_t)h * qk, H * qk,
                              L->wkv_b + (size_t)h * (dn + dv) * r, r, n, r, dn, 0);
        for (int i = 0; i < n; i++)
            for (int h = 0; h < H; h++) {
                float *qa = f->QA + ((size_t)i * H + h) * rw + r;
                memcpy(qa, f->Q + (size_t)i * H * qk + (size_t)h * qk + dn, (size_t)dr * sizeof(float));
                rope_vec(qa, dr, f->CS + (size_t)i * dr);
            }
        /* MQA over the latent rows; threads over rows only when there is enough work */
        long att_work = 0;
        int max_ctx = 0;
        for (int i = 0; i < n; i++) {
            att_work += (long)(pos[i] + 1) * H * (rw + r);
            if (pos[i] + 1 > max_ctx) max_ctx = pos[i] + 1;
        }
        int nth = omp_get_max_threads();
        size_t need = (size_t)nth * H * max_ctx;
        if (need > f->scores_cap) {
            f->scores = cr_realloc(f->scores, need * sizeof *f->scores);
            f->scores_cap = need;
        }
#pragma omp parallel for schedule(dynamic, 1) if (att_work > (1L << 17))
        for (int i = 0; i < n; i++)
            attend_row(f->OL + (size_t)i * H * r, f->QA + (size_t)i * H * rw,
                       f->scores + (size_t)omp_get_thread_num() * H * max_ctx, cache, seqs[i], l, pos[i], H,
                       rw, r, scale);
        /* O[i,h] = W_UV[h] o_lat[i,h]; X += O Wo^T */
        for (int h = 0; h < H; h++)
            linear(f->O + (size_t)h * dv, H * dv, f->OL + (size_t)h * r, H * r,
                   L->wkv_b + ((size_t)h * (dn + dv) + dn) * r, n, dv, r, 0);
        linear(f->X, D, f->O, H * dv, L->wo, n, D, H * dv, 1);

        /* FFN */
        rmsnorm_rows(f->Hn, D, f->X, D, L->ffn_norm, n, D, eps);
        if (!L->moe) {
            mlp(f, f->Hn, n, L->w_gate, L->w_up, L->w_down, c->intermediate_size, f->X, 1);
            continue;
        }
        int E = c->n_routed_experts, Ie = c->moe_intermediate_size;
        linear(f->RL, E, f->Hn, D, L->router, n, E, D, 0);
        for (int i = 0; i < n; i++) route_row(c, f->RL + (size_t)i * E, f->idx + (size_t)i * K, f->wt + (size_t)i * K);
        if (experts)
            for (int i = 0; i < n; i++)
                memcpy(experts + ((size_t)i * w->n_moe_layers + moe_l) * K, f->idx + (size_t)i * K,
                       (size_t)K * sizeof(int32_t));
        moe_l++;
        if (L->s_gate) mlp(f, f->Hn, n, L->s_gate, L->s_up, L->s_down, Ie * c->n_shared_experts, f->X, 1);
        /* group the (row, k) slots by expert (ascending e, rows in order) */
        for (int e = 0; e < E; e++) {
            int m = 0;
            for (int s = 0; s < n * K; s++)
                if (f->idx[s] == e) f->rows[m++] = s;
            if (!m) continue;
            for (int j = 0; j < m; j++)
                memcpy(f->Xe + (size_t)j * D, f->Hn + (size_t)(f->rows[j] / K) * D, (size_t)D * sizeof(float));
            mlp(f, f->Xe, m, L->e_gate[e], L->e_up[e], L->e_down[e], Ie, f->Ye, 0);
            for (int j = 0; j < m; j++) {
                float a = f->wt[f->rows[j]];
                float *x = f->X + (size_t)(f->rows[j] / K) * D;
                const float *y = f->Ye + (size_t)j * D;
                for (int d = 0; d < D; d++) x[d] += a * y[d];
            }
        }
    }
    if (n_logits == 0) return;
    for (int j = 0; j < n_logits; j++)
        rmsnorm_row(f->Hn + (size_t)j * D, f->X + (size_t)logit_rows[j] * D, w->final_norm, D, eps);
    linear(logits, c->vocab_size, f->Hn, D, w->lm_head, n_logits, c->vocab_size, D, 0);
}
