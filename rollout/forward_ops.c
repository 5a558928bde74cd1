/* rollout/forward_ops.c — see forward_ops.h. Each step mirrors forward_run (forward.c). */
#include "rollout/forward_ops.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "model/layers.h"
#include "model/ops.h"

struct ForwardOps {
    Model *m;
    const Ops *o;
    int n_moe;
    int cap, cap_logits;      /* rows / logit rows the buffers hold */
    size_t cap_bt;            /* int32 of block table held */
    /* backend memory */
    float *X, *Hn, *rstd, *CQ, *CQn, *Q, *CKV, *LAT, *QA, *OL, *O, *F, *G;
    float *ident;             /* [dr, dr] identity: strided column copies as exact GEMMs */
    int32_t *d_tokens, *d_pos, *d_rows, *d_bt, *d_experts;
    /* host */
    int32_t *h_rows, *h_bt, *h_experts;
};

ForwardOps *forward_ops_new(Model *m) {
    const ModelConfig *c = &m->cfg;
    ForwardOps *f = cr_calloc(1, sizeof *f);
    f->m = m;
    f->o = m->ops;
    for (int l = 0; l < c->num_hidden_layers; l++) f->n_moe += model_layer_is_moe(c, l);
    int dr = c->qk_rope_head_dim;
    float *id = cr_calloc((size_t)dr * dr, sizeof *id);
    for (int i = 0; i < dr; i++) id[(size_t)i * dr + i] = 1.0f;
    f->ident = f->o->alloc(sizeof(float) * (size_t)dr * dr);
    f->o->upload(f->ident, id, sizeof(float) * (size_t)dr * dr);
    free(id);
    return f;
}

static void free_rows(ForwardOps *f) {
    float *bufs[] = {f->X, f->Hn, f->rstd, f->CQ, f->CQn, f->Q, f->CKV, f->LAT, f->QA, f->OL, f->O, f->F};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) f->o->free(bufs[i]);
    f->o->free(f->d_tokens);
    f->o->free(f->d_pos);
    f->o->free(f->d_experts);
    free(f->h_experts);
}

static void free_logit_rows(ForwardOps *f) {
    f->o->free(f->G);
    f->o->free(f->d_rows);
    free(f->h_rows);
}

void forward_ops_free(ForwardOps *f) {
    if (!f) return;
    free_rows(f);
    free_logit_rows(f);
    f->o->free(f->d_bt);
    f->o->free(f->ident);
    free(f->h_bt);
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
        f->d_tokens = o->alloc(sizeof(int32_t) * N);
        f->d_pos = o->alloc(sizeof(int32_t) * N);
        size_t ne = (size_t)(f->n_moe > 0 ? f->n_moe : 1) * N * K;
        f->d_experts = o->alloc(sizeof(int32_t) * ne);
        f->h_experts = cr_malloc(sizeof(int32_t) * ne);
        f->cap = rows;
    }
    if (n_logits > f->cap_logits) {
        free_logit_rows(f);
        f->G = o->alloc(sizeof(float) * (size_t)n_logits * D);
        f->d_rows = o->alloc(sizeof(int32_t) * (size_t)n_logits);
        f->h_rows = cr_malloc(sizeof(int32_t) * (size_t)n_logits);
        f->cap_logits = n_logits;
    }
}

/* The rows' block tables as one [n, max_blocks] int32 array in backend memory. */
static int upload_block_table(ForwardOps *f, const LatentCache *c, int n, const int32_t *pos,
                              CacheSeq *const *seqs) {
    int maxb = 1;
    for (int i = 0; i < n; i++) {
        CR_CHECK(pos[i] >= 0 && pos[i] < seqs[i]->n_blocks * c->block_tokens);
        if (seqs[i]->n_blocks > maxb) maxb = seqs[i]->n_blocks;
    }
    size_t need = (size_t)n * maxb;
    if (need > f->cap_bt) {
        f->o->free(f->d_bt);
        free(f->h_bt);
        f->d_bt = f->o->alloc(sizeof(int32_t) * need);
        f->h_bt = cr_malloc(sizeof(int32_t) * need);
        f->cap_bt = need;
    }
    for (int i = 0; i < n; i++) {
        int32_t *row = f->h_bt + (size_t)i * maxb;
        for (int b = 0; b < maxb; b++) row[b] = b < seqs[i]->n_blocks ? seqs[i]->blocks[b] : 0;
    }
    f->o->upload(f->d_bt, f->h_bt, sizeof(int32_t) * need);
    return maxb;
}

void forward_ops_run(ForwardOps *f, LatentCache *cache, int n, const int32_t *tokens, const int32_t *pos,
                     CacheSeq *const *seqs, const int *logit_rows, int n_logits, float *logits,
                     int32_t *experts) {
    Model *m = f->m;
    const Ops *o = f->o;
    const ModelConfig *c = &m->cfg;
    const ModelWeights *w = model_weights(m);
    CR_CHECK(cache->ops == o && cache->row == c->kv_lora_rank + c->qk_rope_head_dim &&
             cache->n_layers == c->num_hidden_layers);
    if (n <= 0) return;
    ensure(f, n, n_logits);
    int D = c->hidden_size, H = c->num_attention_heads, r = c->kv_lora_rank, L = c->num_hidden_layers;
    int dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim, dv = c->v_head_dim, qk = dn + dr;
    int ql = c->q_lora_rank, rw = r + dr, K = c->num_experts_per_tok;
    float eps = c->rms_norm_eps, scale = (float)model_softmax_scale(c);

    o->upload(f->d_tokens, tokens, sizeof(int32_t) * (size_t)n);
    o->upload(f->d_pos, pos, sizeof(int32_t) * (size_t)n);
    int maxb = upload_block_table(f, cache, n, pos, seqs);
    o->embedding_forward(f->X, w->embed, f->d_tokens, n, D);

    int moe_l = 0;
    for (int l = 0; l < L; l++) {
        const LayerWeights *lw = &w->layers[l];
        o->rmsnorm_forward(f->Hn, D, f->rstd, f->X, D, lw->attn_norm, n, D, eps);
        if (ql > 0) {
            o->gemm(0, 1, n, ql, D, 1.0f, f->Hn, D, lw->wq_a, D, 0.0f, f->CQ, ql);
            o->rmsnorm_forward(f->CQn, ql, f->rstd, f->CQ, ql, lw->q_a_norm, n, ql, eps);
            o->gemm(0, 1, n, H * qk, ql, 1.0f, f->CQn, ql, lw->wq_b, ql, 0.0f, f->Q, H * qk);
        } else {
            o->gemm(0, 1, n, H * qk, D, 1.0f, f->Hn, D, lw->wq, D, 0.0f, f->Q, H * qk);
        }
        o->gemm(0, 1, n, rw, D, 1.0f, f->Hn, D, lw->wkv_a, D, 0.0f, f->CKV, rw);

        /* latent rows [rmsnorm(c) | rope(k_pe)] into the cache. The k_pe columns move with
         * a GEMM by the identity (exact in fp32: one product by 1, the rest by 0; on a
         * bf16 GEMM table rounded like every GEMM input there), the only strided copy the
         * Ops table offers. */
        o->rmsnorm_forward(f->LAT, rw, f->rstd, f->CKV, rw, lw->kv_a_norm, n, r, eps);
        o->gemm(0, 0, n, dr, dr, 1.0f, f->CKV + r, rw, f->ident, dr, 0.0f, f->LAT + r, rw);
        model_rope_apply(m, f->LAT + r, rw, dr, 1, n, f->d_pos);
        o->mla_cache_scatter(cache->data, f->d_bt, maxb, L, l, cache->block_tokens, rw, f->LAT, f->d_pos, n);

        /* absorbed queries QA[i,h] = [W_UK[h]^T q_nope[i,h] | rope(q_pe[i,h])]; W_UK[h] is
         * rows h*(dn+dv) .. +dn of kv_b_proj, [dn, r] row-major. */
        for (int h = 0; h < H; h++)
            o->gemm(0, 0, n, r, dn, 1.0f, f->Q + (size_t)h * qk, H * qk, lw->wkv_b + (size_t)h * (dn + dv) * r, r,
                    0.0f, f->QA + (size_t)h * rw, H * rw);
        /* q_pe of all (row, head) pairs at once: Q as [n*H, qk], QA as [n*H, rw] */
        o->gemm(0, 0, n * H, dr, dr, 1.0f, f->Q + dn, qk, f->ident, dr, 0.0f, f->QA + r, rw);
        model_rope_apply(m, f->QA + r, H * rw, rw, H, n, f->d_pos);

        o->mla_decode_attention(f->OL, f->QA, cache->data, f->d_bt, maxb, L, l, cache->block_tokens, f->d_pos, n,
                                H, r, dr, scale);
        /* O[i,h] = W_UV[h] o_lat[i,h] (W_UV[h]: the next dv rows of kv_b_proj); X += O Wo^T */
        for (int h = 0; h < H; h++)
            o->gemm(0, 1, n, dv, r, 1.0f, f->OL + (size_t)h * r, H * r,
                    lw->wkv_b + ((size_t)h * (dn + dv) + dn) * r, r, 0.0f, f->O + (size_t)h * dv, H * dv);
        o->gemm(0, 1, n, D, H * dv, 1.0f, f->O, H * dv, lw->wo, H * dv, 1.0f, f->X, D);

        /* FFN */
        o->rmsnorm_forward(f->Hn, D, f->rstd, f->X, D, lw->ffn_norm, n, D, eps);
        int32_t *ex = NULL;
        if (model_layer_is_moe(c, l)) ex = f->d_experts + (size_t)moe_l++ * n * K;
        model_ffn_forward_infer_ex(m, l, f->Hn, n, f->F, experts ? ex : NULL);
        o->add(f->X, f->F, (size_t)n * D);
    }
    if (experts && f->n_moe > 0) {
        /* [n_moe][n][K] on the backend -> [n][n_moe][K] */
        o->download(f->h_experts, f->d_experts, sizeof(int32_t) * (size_t)f->n_moe * n * K);
        for (int j = 0; j < f->n_moe; j++)
            for (int i = 0; i < n; i++)
                memcpy(experts + ((size_t)i * f->n_moe + j) * K, f->h_experts + ((size_t)j * n + i) * K,
                       sizeof(int32_t) * K);
    }
    if (n_logits <= 0) return;
    /* gather the logit rows (the embedding gather with X as the table), final norm, head */
    for (int j = 0; j < n_logits; j++) {
        CR_CHECK(logit_rows[j] >= 0 && logit_rows[j] < n);
        f->h_rows[j] = logit_rows[j];
    }
    o->upload(f->d_rows, f->h_rows, sizeof(int32_t) * (size_t)n_logits);
    o->embedding_forward(f->G, f->X, f->d_rows, n_logits, D);
    o->rmsnorm_forward(f->Hn, D, f->rstd, f->G, D, w->final_norm, n_logits, D, eps);
    o->gemm(0, 1, n_logits, c->vocab_size, D, 1.0f, f->Hn, D, w->lm_head, D, 0.0f, logits, c->vocab_size);
}
