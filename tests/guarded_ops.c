/* tests/guarded_ops.c — see guarded_ops.h. */
#include "tests/guarded_ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/alloc.h"

/* Every live allocation of the backend (the test process is single-threaded outside
 * the ops, and one test runs per process). */
typedef struct Block {
    void *p;
    size_t bytes;
} Block;
static Block *g_blocks;
static int g_n, g_cap;
static const Ops *cpu;

static void protect_all(int prot) {
    for (int i = 0; i < g_n; i++)
        if (mprotect(g_blocks[i].p, g_blocks[i].bytes, prot) != 0) {
            perror("guarded_ops: mprotect");
            abort();
        }
}
static void guard_open(void) { protect_all(PROT_READ | PROT_WRITE); }
static void guard_close(void) { protect_all(PROT_NONE); }

static size_t page_round(size_t bytes) {
    size_t pg = 4096;
    return bytes ? (bytes + pg - 1) / pg * pg : pg;
}

static void *g_alloc(size_t bytes) {
    size_t n = page_round(bytes);
    void *p = mmap(NULL, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("guarded_ops: mmap");
        abort();
    }
    if (g_n == g_cap) {
        g_cap = g_cap ? 2 * g_cap : 64;
        g_blocks = cr_realloc(g_blocks, (size_t)g_cap * sizeof *g_blocks);
    }
    g_blocks[g_n++] = (Block){p, n};
    return p;  /* zero-filled by mmap */
}

static void g_free(void *p) {
    if (!p) return;
    for (int i = 0; i < g_n; i++)
        if (g_blocks[i].p == p) {
            munmap(p, g_blocks[i].bytes);
            g_blocks[i] = g_blocks[--g_n];
            return;
        }
    fprintf(stderr, "guarded_ops: free of a pointer this backend did not allocate\n");
    abort();
}

static void g_upload(void *dst, const void *host_src, size_t bytes) {
    guard_open();
    cpu->upload(dst, host_src, bytes);
    guard_close();
}
static void g_download(void *host_dst, const void *src, size_t bytes) {
    guard_open();
    cpu->download(host_dst, src, bytes);
    guard_close();
}
static void g_zero(void *p, size_t bytes) {
    guard_open();
    cpu->zero(p, bytes);
    guard_close();
}
static void g_copy(void *dst, const void *src, size_t bytes) {
    guard_open();
    cpu->copy(dst, src, bytes);
    guard_close();
}
static void g_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    guard_open();
    cpu->gemm(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    guard_close();
}
static void g_gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                           long long strideA, const float *B, int ldb, long long strideB, float beta, float *C,
                           int ldc, long long strideC, int batch) {
    guard_open();
    cpu->gemm_batched(transA, transB, M, N, K, alpha, A, lda, strideA, B, ldb, strideB, beta, C, ldc, strideC, batch);
    guard_close();
}
static void g_copy2d(float *dst, int ldd, const float *src, int lds, int rows, int cols) {
    guard_open();
    cpu->copy2d(dst, ldd, src, lds, rows, cols);
    guard_close();
}
static void g_add(float *y, const float *x, size_t n) {
    guard_open();
    cpu->add(y, x, n);
    guard_close();
}
static void g_scale(float *y, float a, size_t n) {
    guard_open();
    cpu->scale(y, a, n);
    guard_close();
}
static void g_count_nonfinite(const float *x, size_t n, size_t *count) {
    guard_open();
    cpu->count_nonfinite(x, n, count);
    guard_close();
}
static void g_embedding_forward(float *out, const float *table, const int32_t *tokens, int N, int D) {
    guard_open();
    cpu->embedding_forward(out, table, tokens, N, D);
    guard_close();
}
static void g_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int N, int D) {
    guard_open();
    cpu->embedding_backward(dtable, dout, tokens, N, D);
    guard_close();
}
static void g_rmsnorm_forward(float *out, int ldo, float *rstd, const float *x, int ldx, const float *w, int N, int D, float eps) {
    guard_open();
    cpu->rmsnorm_forward(out, ldo, rstd, x, ldx, w, N, D, eps);
    guard_close();
}
static void g_rmsnorm_backward(float *dx, int lddx, float *dw, const float *dout, int lddo, const float *x, int ldx, const float *w, const float *rstd, int N, int D) {
    guard_open();
    cpu->rmsnorm_backward(dx, lddx, dw, dout, lddo, x, ldx, w, rstd, N, D);
    guard_close();
}
static void g_rope_forward(float *x, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos, const float *inv_freq, float cs_factor) {
    guard_open();
    cpu->rope_forward(x, ld, head_stride, n_heads, N, dr, pos, inv_freq, cs_factor);
    guard_close();
}
static void g_rope_backward(float *dx, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos, const float *inv_freq, float cs_factor) {
    guard_open();
    cpu->rope_backward(dx, ld, head_stride, n_heads, N, dr, pos, inv_freq, cs_factor);
    guard_close();
}
static void g_swiglu_forward(float *h, const float *g, const float *u, size_t n) {
    guard_open();
    cpu->swiglu_forward(h, g, u, n);
    guard_close();
}
static void g_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
    guard_open();
    cpu->swiglu_backward(dg, du, dh, g, u, n);
    guard_close();
}
static void g_attention_forward(float *O, float *lse, const float *Q, const float *K, const float *V, const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale) {
    guard_open();
    cpu->attention_forward(O, lse, Q, K, V, cu_seqlens, n_seqs, N, H, dqk, dv, scale);
    guard_close();
}
static void g_attention_backward(float *dQ, float *dK, float *dV, const float *dO, const float *O, const float *lse, const float *Q, const float *K, const float *V, const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale) {
    guard_open();
    cpu->attention_backward(dQ, dK, dV, dO, O, lse, Q, K, V, cu_seqlens, n_seqs, N, H, dqk, dv, scale);
    guard_close();
}
static void g_mla_kv_assemble_forward(float *K, float *V, const float *kv, const float *kpe, int ldkpe, int N, int H, int dn, int dr, int dv) {
    guard_open();
    cpu->mla_kv_assemble_forward(K, V, kv, kpe, ldkpe, N, H, dn, dr, dv);
    guard_close();
}
static void g_mla_kv_assemble_backward(float *dkv, float *dkpe, int ldkpe, const float *dK, const float *dV, int N, int H, int dn, int dr, int dv) {
    guard_open();
    cpu->mla_kv_assemble_backward(dkv, dkpe, ldkpe, dK, dV, N, H, dn, dr, dv);
    guard_close();
}
static void g_moe_route_forward(float *probs, int32_t *idx, float *w, const float *logits, int N, const OpsMoeRoute *r) {
    guard_open();
    cpu->moe_route_forward(probs, idx, w, logits, N, r);
    guard_close();
}
static void g_moe_route_backward(float *dlogits, const float *dw, const float *probs, const int32_t *idx, const float *w, const float *aux_coef, float aux_weight, const int32_t *seg_of_token, int N, const OpsMoeRoute *r) {
    guard_open();
    cpu->moe_route_backward(dlogits, dw, probs, idx, w, aux_coef, aux_weight, seg_of_token, N, r);
    guard_close();
}
static void g_moe_aux_forward(float *loss, float *aux_coef, int32_t *seg_of_token, const float *probs, const int32_t *idx, const int32_t *cu_seg, int n_seg, int N, int E, int K, float alpha) {
    guard_open();
    cpu->moe_aux_forward(loss, aux_coef, seg_of_token, probs, idx, cu_seg, n_seg, N, E, K, alpha);
    guard_close();
}
static void g_moe_permute(float *Xp, int32_t *row_of_slot, int32_t *slot_of_row, int32_t *offsets, const float *x, const int32_t *idx, int N, int D, int E, int K) {
    guard_open();
    cpu->moe_permute(Xp, row_of_slot, slot_of_row, offsets, x, idx, N, D, E, K);
    guard_close();
}
static void g_moe_permute_backward(float *dx, const float *dXp, const int32_t *row_of_slot, int N, int D, int K) {
    guard_open();
    cpu->moe_permute_backward(dx, dXp, row_of_slot, N, D, K);
    guard_close();
}
static void g_moe_experts_forward(float *Yp, float *G, float *U, float *Hm, const float *Xp, const float *Wg, const float *Wu, const float *Wd, const int32_t *offsets_host, int E, int D, int I) {
    guard_open();
    cpu->moe_experts_forward(Yp, G, U, Hm, Xp, Wg, Wu, Wd, offsets_host, E, D, I);
    guard_close();
}
static void g_moe_experts_backward(float *dXp, float *dWg, float *dWu, float *dWd, const float *dYp, float *dG, float *dU, float *dHm, const float *Xp, const float *G, const float *U, const float *Hm, const float *Wg, const float *Wu, const float *Wd, const int32_t *offsets_host, int E, int D, int I) {
    guard_open();
    cpu->moe_experts_backward(dXp, dWg, dWu, dWd, dYp, dG, dU, dHm, Xp, G, U, Hm, Wg, Wu, Wd, offsets_host, E, D, I);
    guard_close();
}
static void g_moe_unpermute(float *y, const float *Yp, const float *w, const int32_t *row_of_slot, int N, int D, int K) {
    guard_open();
    cpu->moe_unpermute(y, Yp, w, row_of_slot, N, D, K);
    guard_close();
}
static void g_moe_unpermute_backward(float *dYp, float *dw, const float *dy, const float *Yp, const float *w, const int32_t *row_of_slot, const int32_t *slot_of_row, int N, int D, int K) {
    guard_open();
    cpu->moe_unpermute_backward(dYp, dw, dy, Yp, w, row_of_slot, slot_of_row, N, D, K);
    guard_close();
}
static void g_lmhead_logprob_forward(float *logp, float *lse, const float *y, const float *W, const int32_t *targets, int N, int V, int D, float *scratch) {
    guard_open();
    cpu->lmhead_logprob_forward(logp, lse, y, W, targets, N, V, D, scratch);
    guard_close();
}
static void g_lmhead_logprob_backward(float *dy, float beta_dy, float *dW, const float *dlogp, const float *lse, const float *y, const float *W, const int32_t *targets, int N, int V, int D, float *scratch) {
    guard_open();
    cpu->lmhead_logprob_backward(dy, beta_dy, dW, dlogp, lse, y, W, targets, N, V, D, scratch);
    guard_close();
}
static void g_adamw_update(float beta1, float beta2, float eps, float weight_decay, long t, float lr, int decay, float *p, const float *g, float *m, float *v, size_t n) {
    guard_open();
    cpu->adamw_update(beta1, beta2, eps, weight_decay, t, lr, decay, p, g, m, v, n);
    guard_close();
}
static double g_sumsq(const float *x, size_t n) {
    guard_open();
    double r = cpu->sumsq(x, n);
    guard_close();
    return r;
}
static void g_mla_cache_scatter(float *cache, const int32_t *block_table, int max_blocks, int n_layers, int layer, int block_tokens, int rw, const float *src, const int32_t *pos, int n) {
    guard_open();
    cpu->mla_cache_scatter(cache, block_table, max_blocks, n_layers, layer, block_tokens, rw, src, pos, n);
    guard_close();
}
static void g_mla_decode_attention(float *out, const float *qa, const float *cache, const int32_t *block_table, int max_blocks, int n_layers, int layer, int block_tokens, const int32_t *pos, int n, int H, int r, int dr, float scale) {
    guard_open();
    cpu->mla_decode_attention(out, qa, cache, block_table, max_blocks, n_layers, layer, block_tokens, pos, n, H, r, dr, scale);
    guard_close();
}
static void g_moe_experts_small(float *y, float *h, const float *x, const int32_t *idx, const float *w, const float *Wg, const float *Wu, const float *Wd, int N, int D, int I, int K) {
    guard_open();
    cpu->moe_experts_small(y, h, x, idx, w, Wg, Wu, Wd, N, D, I, K);
    guard_close();
}

static const Ops k_guarded = {
    .name = "guarded-cpu",
    .alloc = g_alloc,
    .free = g_free,
    .upload = g_upload,
    .download = g_download,
    .zero = g_zero,
    .copy = g_copy,
    .gemm = g_gemm,
    .gemm_batched = g_gemm_batched,
    .copy2d = g_copy2d,
    .add = g_add,
    .scale = g_scale,
    .count_nonfinite = g_count_nonfinite,
    .embedding_forward = g_embedding_forward,
    .embedding_backward = g_embedding_backward,
    .rmsnorm_forward = g_rmsnorm_forward,
    .rmsnorm_backward = g_rmsnorm_backward,
    .rope_forward = g_rope_forward,
    .rope_backward = g_rope_backward,
    .swiglu_forward = g_swiglu_forward,
    .swiglu_backward = g_swiglu_backward,
    .attention_forward = g_attention_forward,
    .attention_backward = g_attention_backward,
    .mla_kv_assemble_forward = g_mla_kv_assemble_forward,
    .mla_kv_assemble_backward = g_mla_kv_assemble_backward,
    .moe_route_forward = g_moe_route_forward,
    .moe_route_backward = g_moe_route_backward,
    .moe_aux_forward = g_moe_aux_forward,
    .moe_permute = g_moe_permute,
    .moe_permute_backward = g_moe_permute_backward,
    .moe_experts_forward = g_moe_experts_forward,
    .moe_experts_backward = g_moe_experts_backward,
    .moe_unpermute = g_moe_unpermute,
    .moe_unpermute_backward = g_moe_unpermute_backward,
    .lmhead_logprob_forward = g_lmhead_logprob_forward,
    .lmhead_logprob_backward = g_lmhead_logprob_backward,
    .adamw_update = g_adamw_update,
    .sumsq = g_sumsq,
    .mla_cache_scatter = g_mla_cache_scatter,
    .mla_decode_attention = g_mla_decode_attention,
    .moe_experts_small = g_moe_experts_small,
};

const Ops *guarded_ops(void) {
    cpu = ops_cpu();
    return &k_guarded;
}

int guarded_ops_live_allocations(void) { return g_n; }
