/* rollout/forward_ops.c — see forward_ops.h. Each step mirrors forward_run (forward.c). */
#include "rollout/forward_ops.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "model/layers.h"
#include "model/ops.h"

struct ForwardOps {
    Model *m;
    const Ops *o;
    int n_moe;
    ForwardOpsAttention mode;
    ForwardOpsStats stats;
    int cap, cap_logits;      /* rows / logit rows the buffers hold */
    size_t cap_in;            /* int32 of per-call input (h_in, d_in) held */
    int cap_keys;             /* key rows the MHA-form buffers hold */
    /* backend memory */
    float *X, *Hn, *rstd, *CQ, *CQn, *Q, *CKV, *LAT, *QA, *OL, *O, *F, *G;
    /* The call's int32 input, one upload (each upload from the host is a synchronisation
     * on CUDA): d_in = [tokens n | pos n | logit rows n_logits | block table n x maxb];
     * d_tokens .. d_bt point into it (set per call, not owned). */
    int32_t *d_in, *h_in;
    int32_t *d_tokens, *d_pos, *d_rows, *d_bt, *d_experts, *d_cu;
    /* MHA form, [n_keys, ...]: kv_b_proj output, K, V, padded Q and O, lse, gathered
     * latent rows, their cache row indices */
    float *KV, *Kh, *Vh, *Qp, *Op, *lse, *LATK;
    int32_t *d_kidx;
    /* host */
    int32_t *h_experts, *h_cu, *h_kidx;
    int *run_a, *run_len, *run_p0;  /* runs of the MHA form: first row, rows, first position */
    /* The recorded decode step (Ops.step_*) and what it was recorded for; key_runs: calls
     * made directly with this key since it changed or a recording last failed (recording
     * waits for the second, whose scratch sizes the first already grew); key_failed: how
     * many recordings of this key the backend refused or made unusable (retried after
     * STEP_RETRY_GAP << (failures - 1) direct calls, given up after STEP_MAX_FAILS). */
    void *step;
    struct { int n, maxb, n_logits, experts; const float *logits; const LatentCache *cache; } key;
    int key_runs, key_failed;
};

ForwardOps *forward_ops_new(Model *m) {
    const ModelConfig *c = &m->cfg;
    ForwardOps *f = cr_calloc(1, sizeof *f);
    f->m = m;
    f->o = m->ops;
    for (int l = 0; l < c->num_hidden_layers; l++) f->n_moe += model_layer_is_moe(c, l);
    return f;
}

static void free_rows(ForwardOps *f) {
    float *bufs[] = {f->X, f->Hn, f->rstd, f->CQ, f->CQn, f->Q, f->CKV, f->LAT, f->QA, f->OL, f->O, f->F};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) f->o->free(bufs[i]);
    f->o->free(f->d_experts);
    f->o->free(f->d_cu);
    free(f->h_experts);
    free(f->h_cu);
    free(f->run_a);
    free(f->run_len);
    free(f->run_p0);
}

static void free_keys(ForwardOps *f) {
    float *bufs[] = {f->KV, f->Kh, f->Vh, f->Qp, f->Op, f->lse, f->LATK};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) f->o->free(bufs[i]);
    f->o->free(f->d_kidx);
    free(f->h_kidx);
}

static void free_logit_rows(ForwardOps *f) { f->o->free(f->G); }

void forward_ops_free(ForwardOps *f) {
    if (!f) return;
    if (f->step) f->o->step_free(f->step);
    free_rows(f);
    free_logit_rows(f);
    free_keys(f);
    f->o->free(f->d_in);
    free(f->h_in);
    free(f);
}

/* Buffers for n rows and n_logits logit rows (grown, never shrunk). */
static void ensure(ForwardOps *f, int n, int n_logits) {
    const ModelConfig *c = &f->m->cfg;
    const Ops *o = f->o;
    size_t H = c->num_attention_heads, r = c->kv_lora_rank, dr = c->qk_rope_head_dim, D = c->hidden_size;
    size_t qk = c->qk_nope_head_dim + dr, ql = c->q_lora_rank > 0 ? c->q_lora_rank : 1;
    size_t K = c->num_experts_per_tok > 0 ? c->num_experts_per_tok : 1;
    int rows = n > n_logits ? n : n_logits;  /* Hn and rstd also hold the logit rows */
    if (rows > f->cap) {
        free_rows(f);
        size_t N = (size_t)rows;
        f->X = o->alloc(sizeof(float) * N * D);
        f->Hn = o->alloc(sizeof(float) * N * D);
        f->rstd = o->alloc(sizeof(float) * N);
        f->CQ = o->alloc(sizeof(float) * N * ql);
        f->CQn = o->alloc(sizeof(float) * N * ql);
        f->Q = o->alloc(sizeof(float) * N * H * qk);
        f->CKV = o->alloc(sizeof(float) * N * (r + dr));
        f->LAT = o->alloc(sizeof(float) * N * (r + dr));
        f->QA = o->alloc(sizeof(float) * N * H * (r + dr));
        f->OL = o->alloc(sizeof(float) * N * H * r);
        f->O = o->alloc(sizeof(float) * N * H * c->v_head_dim);
        f->F = o->alloc(sizeof(float) * N * D);
        size_t ne = (size_t)(f->n_moe > 0 ? f->n_moe : 1) * N * K;
        f->d_experts = o->alloc(sizeof(int32_t) * ne);
        f->h_experts = cr_malloc(sizeof(int32_t) * ne);
        f->d_cu = o->alloc(sizeof(int32_t) * (N + 1));
        f->h_cu = cr_malloc(sizeof(int32_t) * (N + 1));
        f->run_a = cr_malloc(sizeof(int) * N);
        f->run_len = cr_malloc(sizeof(int) * N);
        f->run_p0 = cr_malloc(sizeof(int) * N);
        f->cap = rows;
    }
    if (n_logits > f->cap_logits) {
        free_logit_rows(f);
        f->G = o->alloc(sizeof(float) * (size_t)n_logits * D);
        f->cap_logits = n_logits;
    }
}

/* MHA-form buffers for nk key rows (grown, never shrunk). */
static void ensure_keys(ForwardOps *f, int nk) {
    if (nk <= f->cap_keys) return;
    const ModelConfig *c = &f->m->cfg;
    const Ops *o = f->o;
    size_t N = (size_t)nk, H = c->num_attention_heads, dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim;
    size_t dv = c->v_head_dim, rw = c->kv_lora_rank + dr;
    free_keys(f);
    f->KV = o->alloc(sizeof(float) * N * H * (dn + dv));
    f->Kh = o->alloc(sizeof(float) * N * H * (dn + dr));
    f->Vh = o->alloc(sizeof(float) * N * H * dv);
    f->Qp = o->alloc(sizeof(float) * N * H * (dn + dr));
    f->Op = o->alloc(sizeof(float) * N * H * dv);
    f->lse = o->alloc(sizeof(float) * N * H);
    f->LATK = o->alloc(sizeof(float) * N * rw);
    f->d_kidx = o->alloc(sizeof(int32_t) * N);
    f->h_kidx = cr_malloc(sizeof(int32_t) * N);
    f->cap_keys = nk;
}

void forward_ops_set_attention(ForwardOps *f, ForwardOpsAttention mode) { f->mode = mode; }
ForwardOpsStats forward_ops_stats(const ForwardOps *f) { return f->stats; }

/* Cut the rows into runs (f->run_*) and decide the form (forward_ops.h): the number of
 * key rows of the MHA form, or 0 for the absorbed form. *n_runs gets the run count. */
static long plan_mha(ForwardOps *f, const LatentCache *c, int n, const int32_t *pos, CacheSeq *const *seqs,
                     int *n_runs) {
    if (f->mode == FORWARD_OPS_ATTN_ABSORBED) return 0;
    /* the gather addresses cache rows by an int32 index (Ops.embedding_forward) */
    if ((long long)c->n_blocks * c->n_layers * c->block_tokens > INT32_MAX) return 0;
    long keys = 0;
    int R = 0, longest = 0;
    for (int i = 0; i < n;) {
        int j = i + 1;
        while (j < n && seqs[j] == seqs[i] && pos[j] == pos[j - 1] + 1) j++;
        f->run_a[R] = i;
        f->run_len[R] = j - i;
        f->run_p0[R] = pos[i];
        keys += (long)pos[i] + (j - i);
        if (j - i > longest) longest = j - i;
        R++;
        i = j;
    }
    *n_runs = R;
    if (keys > INT32_MAX) return 0;
    if (f->mode == FORWARD_OPS_ATTN_MHA) return keys;
    if (longest < FORWARD_OPS_MHA_MIN_RUN || keys > (long)FORWARD_OPS_MHA_KEYS_PER_ROW * n ||
        keys > FORWARD_OPS_MHA_MAX_KEYS)
        return 0;
    return keys;
}

/* Upload the MHA form's segments (one per run, its context and rows) and, when some run
 * has context (nk > n), the cache row index of every key row: within layer 0, row
 * (block * n_layers) * block_tokens + slot; layer l adds l * block_tokens rows. */
static void upload_runs(ForwardOps *f, const LatentCache *c, int R, int nk, int n, CacheSeq *const *seqs) {
    const Ops *o = f->o;
    int bt = c->block_tokens, k = 0;
    f->h_cu[0] = 0;
    for (int q = 0; q < R; q++) {
        int S = f->run_p0[q] + f->run_len[q];
        f->h_cu[q + 1] = f->h_cu[q] + S;
        if (nk == n) continue;
        const CacheSeq *s = seqs[f->run_a[q]];
        for (int p = 0; p < S; p++) f->h_kidx[k++] = (s->blocks[p / bt] * c->n_layers) * bt + p % bt;
    }
    o->upload(f->d_cu, f->h_cu, sizeof(int32_t) * (size_t)(R + 1));
    if (nk > n) o->upload(f->d_kidx, f->h_kidx, sizeof(int32_t) * (size_t)nk);
}

/* The call's int32 input in one upload (d_in above): tokens, positions, logit rows and
 * the rows' block tables as one [n, max_blocks] array; sets d_tokens .. d_bt and returns
 * max_blocks. */
static int upload_inputs(ForwardOps *f, const LatentCache *c, int n, const int32_t *tokens, const int32_t *pos,
                         CacheSeq *const *seqs, const int *logit_rows, int n_logits, int pad) {
    int maxb = 1;
    for (int i = 0; i < n; i++) {
        CR_CHECK(pos[i] >= 0 && pos[i] < seqs[i]->n_blocks * c->block_tokens);
        if (seqs[i]->n_blocks > maxb) maxb = seqs[i]->n_blocks;
    }
    if (pad) {  /* table rows zero-filled past a row's blocks, which no op reads */
        int q = FORWARD_OPS_STEP_CTX / c->block_tokens > 1 ? FORWARD_OPS_STEP_CTX / c->block_tokens : 1;
        maxb = (maxb + q - 1) / q * q;
    }
    for (int j = 0; j < n_logits; j++) CR_CHECK(logit_rows[j] >= 0 && logit_rows[j] < n);
    size_t nl = n_logits > 0 ? (size_t)n_logits : 0, o_rows = 2 * (size_t)n, o_bt = o_rows + nl;
    size_t need = o_bt + (size_t)n * maxb;
    if (need > f->cap_in) {
        f->o->free(f->d_in);
        free(f->h_in);
        f->d_in = f->o->alloc(sizeof(int32_t) * need);
        f->h_in = cr_malloc(sizeof(int32_t) * need);
        f->cap_in = need;
    }
    memcpy(f->h_in, tokens, sizeof(int32_t) * (size_t)n);
    memcpy(f->h_in + n, pos, sizeof(int32_t) * (size_t)n);
    for (size_t j = 0; j < nl; j++) f->h_in[o_rows + j] = logit_rows[j];
    for (int i = 0; i < n; i++) {
        int32_t *row = f->h_in + o_bt + (size_t)i * maxb;
        for (int b = 0; b < maxb; b++) row[b] = b < seqs[i]->n_blocks ? seqs[i]->blocks[b] : 0;
    }
    f->o->upload(f->d_in, f->h_in, sizeof(int32_t) * need);
    f->d_tokens = f->d_in;
    f->d_pos = f->d_in + n;
    f->d_rows = f->d_in + o_rows;
    f->d_bt = f->d_in + o_bt;
    return maxb;
}

/* Absorbed form (spec §9.3) of layer l for the n rows: Q [n, H*qk] (q_pe not yet rotated)
 * -> O [n, H*dv], attending over the cached latent rows. */
static void absorbed_attention(ForwardOps *f, const LayerWeights *lw, const LatentCache *cache, int l, int maxb,
                               int n) {
    const Ops *o = f->o;
    const ModelConfig *c = &f->m->cfg;
    int H = c->num_attention_heads, r = c->kv_lora_rank, dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim;
    int dv = c->v_head_dim, qk = dn + dr, rw = r + dr;
    /* QA[i,h] = [W_UK[h]^T q_nope[i,h] | rope(q_pe[i,h])]; W_UK[h] is rows h*(dn+dv) .. +dn
     * of kv_b_proj, [dn, r] row-major. */
    o->gemm_batched(0, 0, n, r, dn, 1.0f, f->Q, H * qk, qk, lw->wkv_b, r, (long long)(dn + dv) * r, 0.0f, f->QA,
                    H * rw, rw, H);
    /* q_pe of all (row, head) pairs at once: Q as [n*H, qk], QA as [n*H, rw] */
    o->copy2d(f->QA + r, rw, f->Q + dn, qk, n * H, dr);
    model_rope_apply(f->m, f->QA + r, H * rw, rw, H, n, f->d_pos);
    o->mla_decode_attention(f->OL, f->QA, cache->data, f->d_bt, maxb, cache->n_layers, l, cache->block_tokens,
                            f->d_pos, n, H, r, dr, (float)model_softmax_scale(c));
    /* O[i,h] = W_UV[h] o_lat[i,h] (W_UV[h]: the next dv rows of kv_b_proj) */
    o->gemm_batched(0, 1, n, dv, r, 1.0f, f->OL, H * r, r, lw->wkv_b + (size_t)dn * r, r, (long long)(dn + dv) * r,
                    0.0f, f->O, H * dv, dv, H);
}

/* MHA form (spec §4.2 steps 3-5, as model.c's training attention) of layer l for the n
 * rows in R runs over nk key rows (plan_mha, upload_runs): Q [n, H*qk] (q_pe not yet
 * rotated) -> O [n, H*dv]. Run q's key rows are cu[q] .. cu[q+1]-1 = positions
 * 0 .. p0+len-1 of its sequence, its queries at key rows cu[q]+p0 .. */
static void mha_attention(ForwardOps *f, const LayerWeights *lw, const LatentCache *cache, int l, int R, int nk,
                          int n) {
    const Ops *o = f->o;
    const ModelConfig *c = &f->m->cfg;
    int H = c->num_attention_heads, r = c->kv_lora_rank, dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim;
    int dv = c->v_head_dim, qk = dn + dr, rw = r + dr;
    model_rope_apply(f->m, f->Q + dn, H * qk, qk, H, n, f->d_pos);
    const float *lat = f->LAT;  /* key rows = the call's own latent rows when no run has context */
    float *Q = f->Q, *O = f->O;
    if (nk > n) {
        /* this layer's latent rows of every run's context and rows, from the cache (the
         * rows of this call were scattered just before) */
        const float *table = cache->data + (size_t)l * cache->block_tokens * rw;
        o->embedding_forward(f->LATK, table, f->d_kidx, nk, rw);
        lat = f->LATK;
        for (int q = 0, k0 = 0; q < R; k0 += f->run_p0[q] + f->run_len[q], q++)
            o->copy2d(f->Qp + (size_t)(k0 + f->run_p0[q]) * H * qk, H * qk, f->Q + (size_t)f->run_a[q] * H * qk,
                      H * qk, f->run_len[q], H * qk);
        Q = f->Qp;
        O = f->Op;
    }
    /* k_nope | v per head from the normalised latent, K = [k_nope | k_pe], V */
    o->gemm(0, 1, nk, H * (dn + dv), r, 1.0f, lat, rw, lw->wkv_b, r, 0.0f, f->KV, H * (dn + dv));
    o->mla_kv_assemble_forward(f->Kh, f->Vh, f->KV, lat + r, rw, nk, H, dn, dr, dv);
    o->attention_forward(O, f->lse, Q, f->Kh, f->Vh, f->d_cu, R, nk, H, qk, dv, (float)model_softmax_scale(c));
    if (nk > n)
        for (int q = 0, k0 = 0; q < R; k0 += f->run_p0[q] + f->run_len[q], q++)
            o->copy2d(f->O + (size_t)f->run_a[q] * H * dv, H * dv, f->Op + (size_t)(k0 + f->run_p0[q]) * H * dv,
                      H * dv, f->run_len[q], H * dv);
}

/* The calls of one forward (forward_ops_run after its uploads): embedding, layers, head. */
static void step_body(ForwardOps *f, LatentCache *cache, int n, int maxb, int R, int nk, int n_logits, float *logits,
                      int32_t *experts) {
    Model *m = f->m;
    const Ops *o = f->o;
    const ModelConfig *c = &m->cfg;
    const ModelWeights *w = model_weights(m);
    int D = c->hidden_size, H = c->num_attention_heads, r = c->kv_lora_rank, L = c->num_hidden_layers;
    int dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim, dv = c->v_head_dim, qk = dn + dr;
    int ql = c->q_lora_rank, rw = r + dr, K = c->num_experts_per_tok;
    float eps = c->rms_norm_eps;
    o->embedding_forward(f->X, w->embed, f->d_tokens, n, D);

    int moe_l = 0;
    for (int l = 0; l < L; l++) {
        const LayerWeights *lw = &w->layers[l];
        o->rmsnorm_forward(f->Hn, D, f->rstd, f->X, D, lw->attn_norm, n, D, eps);
        if (ql > 0) {
            o->gemm(0, 1, n, ql, D, 1.0f, f->Hn, D, lw->wq_a, D, 0.0f, f->CQ, ql);
            o->rmsnorm_forward(f->CQn, ql, f->rstd, f->CQ, ql, lw->q_a_norm, n, ql, MODEL_LATENT_NORM_EPS);
            o->gemm(0, 1, n, H * qk, ql, 1.0f, f->CQn, ql, lw->wq_b, ql, 0.0f, f->Q, H * qk);
        } else {
            o->gemm(0, 1, n, H * qk, D, 1.0f, f->Hn, D, lw->wq, D, 0.0f, f->Q, H * qk);
        }
        o->gemm(0, 1, n, rw, D, 1.0f, f->Hn, D, lw->wkv_a, D, 0.0f, f->CKV, rw);

        /* latent rows [rmsnorm(c) | rope(k_pe)] into the cache */
        o->rmsnorm_forward(f->LAT, rw, f->rstd, f->CKV, rw, lw->kv_a_norm, n, r, MODEL_LATENT_NORM_EPS);
        o->copy2d(f->LAT + r, rw, f->CKV + r, rw, n, dr);
        model_rope_apply(m, f->LAT + r, rw, dr, 1, n, f->d_pos);
        o->mla_cache_scatter(cache->data, f->d_bt, maxb, L, l, cache->block_tokens, rw, f->LAT, f->d_pos, n);

        /* attention (forward_ops.h: the form is the call's), X += O Wo^T */
        if (nk > 0)
            mha_attention(f, lw, cache, l, R, nk, n);
        else
            absorbed_attention(f, lw, cache, l, maxb, n);
        o->gemm(0, 1, n, D, H * dv, 1.0f, f->O, H * dv, lw->wo, H * dv, 1.0f, f->X, D);

        /* FFN */
        o->rmsnorm_forward(f->Hn, D, f->rstd, f->X, D, lw->ffn_norm, n, D, eps);
        int32_t *ex = NULL;
        if (model_layer_is_moe(c, l)) ex = f->d_experts + (size_t)moe_l++ * n * K;
        model_ffn_forward_infer_ex(m, l, f->Hn, n, f->F, experts ? ex : NULL);
        o->add(f->X, f->F, (size_t)n * D);
    }
    if (n_logits > 0) {
        /* gather the logit rows (the embedding gather with X as the table), final norm, head */
        o->embedding_forward(f->G, f->X, f->d_rows, n_logits, D);
        o->rmsnorm_forward(f->Hn, D, f->rstd, f->G, D, w->final_norm, n_logits, D, eps);
        o->gemm(0, 1, n_logits, c->vocab_size, D, 1.0f, f->Hn, D, w->lm_head, D, 0.0f, logits, c->vocab_size);
    }
}

/* Retries of a shape whose recording failed (e.g. memory grew during it: a one-off): after
 * 8, then 16 direct calls; after 3 failures that shape stays direct. */
enum { STEP_RETRY_GAP = 8, STEP_MAX_FAILS = 3 };

/* An absorbed-form call through the backend's recorded step (Ops.step_*): replayed when
 * one was recorded for this call's shape, else recorded on the second call of a shape
 * (the first grew the scratch it needs). 1 when the call ran that way, 0 when the caller
 * must make the calls directly (the first call of a shape, a stale step, a refusal). */
static int recorded_step(ForwardOps *f, LatentCache *cache, int n, int maxb, int n_logits, float *logits,
                         int32_t *experts) {
    const Ops *o = f->o;
    int same = f->key.n == n && f->key.maxb == maxb && f->key.n_logits == n_logits &&
               f->key.experts == (experts != NULL) && f->key.logits == logits && f->key.cache == cache;
    if (!same) {
        if (f->step) o->step_free(f->step);
        f->step = NULL;
        f->key.n = n, f->key.maxb = maxb, f->key.n_logits = n_logits, f->key.experts = experts != NULL;
        f->key.logits = logits, f->key.cache = cache;
        f->key_runs = 0, f->key_failed = 0;
        f->stats.step_shapes++;
    }
    if (f->step) {
        if (o->step_launch(f->step) == 0) {
            f->stats.step_replays++;
            return 1;
        }
        o->step_free(f->step);  /* stale: memory moved since; record again after a direct call */
        f->step = NULL;
        f->key_runs = 0;
    }
    int wait = f->key_failed ? STEP_RETRY_GAP << (f->key_failed - 1) : 1;
    if (f->key_failed >= STEP_MAX_FAILS || f->key_runs++ < wait) return 0;
    if (o->step_record_begin() != 0) {
        f->key_failed++, f->key_runs = 0;
        return 0;
    }
    step_body(f, cache, n, maxb, 0, 0, n_logits, logits, experts);
    f->step = o->step_record_end();
    if (!f->step || o->step_launch(f->step) != 0) {
        if (f->step) o->step_free(f->step);
        f->step = NULL;
        f->key_failed++, f->key_runs = 0;
        return 0;
    }
    f->stats.step_records++;
    f->stats.step_replays++;
    return 1;
}

void forward_ops_run(ForwardOps *f, LatentCache *cache, int n, const int32_t *tokens, const int32_t *pos,
                     CacheSeq *const *seqs, const int *logit_rows, int n_logits, float *logits,
                     int32_t *experts) {
    Model *m = f->m;
    const Ops *o = f->o;
    const ModelConfig *c = &m->cfg;
    CR_CHECK(cache->ops == o && cache->row == c->kv_lora_rank + c->qk_rope_head_dim &&
             cache->n_layers == c->num_hidden_layers);
    if (n <= 0) return;
    ensure(f, n, n_logits);
    int H = c->num_attention_heads, qk = c->qk_nope_head_dim + c->qk_rope_head_dim, K = c->num_experts_per_tok;

    /* with recorded steps on, the block tables are padded (FORWARD_OPS_STEP_CTX) so that
     * a step stays the same shape for many tokens */
    int steps = o->step_enabled && o->step_enabled();
    int maxb = upload_inputs(f, cache, n, tokens, pos, seqs, logit_rows, n_logits, steps);
    int R = 0;
    int nk = (int)plan_mha(f, cache, n, pos, seqs, &R);
    if (nk > 0) {
        ensure_keys(f, nk);
        upload_runs(f, cache, R, nk, n, seqs);
        /* context rows' queries stay zero: finite scores, outputs dropped */
        if (nk > n) o->zero(f->Qp, sizeof(float) * (size_t)nk * H * qk);
        f->stats.mha_calls++;
        f->stats.mha_rows += n;
        f->stats.mha_keys += nk;
    } else {
        f->stats.absorbed_calls++;
        f->stats.absorbed_rows += n;
    }
    int rec = steps && nk == 0 && model_ffn_infer_is_async(m, n);
    if (!rec || !recorded_step(f, cache, n, maxb, n_logits, logits, experts))
        step_body(f, cache, n, maxb, R, nk, n_logits, logits, experts);
    /* after the head is queued: the download waits for the GPU once, at the end */
    if (experts && f->n_moe > 0) {
        /* [n_moe][n][K] on the backend -> [n][n_moe][K] */
        o->download(f->h_experts, f->d_experts, sizeof(int32_t) * (size_t)f->n_moe * n * K);
        for (int j = 0; j < f->n_moe; j++)
            for (int i = 0; i < n; i++)
                memcpy(experts + ((size_t)i * f->n_moe + j) * K, f->h_experts + ((size_t)j * n + i) * K,
                       sizeof(int32_t) * K);
    }
}
