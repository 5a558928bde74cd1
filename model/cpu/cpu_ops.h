/* model/cpu/cpu_ops.h — the CPU backend's op functions (private to model/cpu/).
 * Defines: cpu_* (one per Ops entry; see model/ops.h for each contract).
 * Each op family lives in its own file: ops_cpu.c (memory, GEMM, elementwise, the
 * table), embedding.c, rmsnorm.c, rope.c, swiglu.c, attention.c, mla.c, mla_cache.c, moe_route.c,
 * moe_dispatch.c, moe_small.c, lmhead.c, optim.c. Parallel loops use OpenMP with static partitions over
 * output elements; cblas_sgemm is only called outside parallel regions. */
#ifndef CRUCIBLE_MODEL_CPU_CPU_OPS_H
#define CRUCIBLE_MODEL_CPU_CPU_OPS_H

#include "model/ops.h"

/* Loops with less work than this many element-operations run on the calling thread:
 * a parallel region costs more than it saves, and far more on a loaded machine. */
enum { OPS_CPU_PAR_MIN = 32768 };

void cpu_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc);
/* optim.c: the optimizer entries (also called by model/adamw.c and model/schedule.c). */
void cpu_adamw_update(float beta1, float beta2, float eps, float weight_decay, long t, float lr, int decay,
                      float *p, const float *g, float *m, float *v, size_t n);
double cpu_sumsq(const float *x, size_t n);

void cpu_swiglu_forward(float *h, const float *g, const float *u, size_t n);
void cpu_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);

void cpu_embedding_forward(float *out, const float *table, const int32_t *tokens, int N, int D);
void cpu_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int N, int D);

void cpu_rmsnorm_forward(float *out, int ldo, float *rstd, const float *x, int ldx, const float *w,
                         int N, int D, float eps);
void cpu_rmsnorm_backward(float *dx, int lddx, float *dw, const float *dout, int lddo, const float *x,
                          int ldx, const float *w, const float *rstd, int N, int D);

void cpu_rope_forward(float *x, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos,
                      const float *inv_freq, float cs_factor);
void cpu_rope_backward(float *dx, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos,
                       const float *inv_freq, float cs_factor);

void cpu_attention_forward(float *O, float *lse, const float *Q, const float *K, const float *V,
                           const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale);
void cpu_attention_backward(float *dQ, float *dK, float *dV, const float *dO, const float *O,
                            const float *lse, const float *Q, const float *K, const float *V,
                            const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale);

void cpu_mla_kv_assemble_forward(float *K, float *V, const float *kv, const float *kpe, int ldkpe, int N,
                                 int H, int dn, int dr, int dv);
void cpu_mla_kv_assemble_backward(float *dkv, float *dkpe, int ldkpe, const float *dK, const float *dV,
                                  int N, int H, int dn, int dr, int dv);

void cpu_moe_route_forward(float *probs, int32_t *idx, float *w, const float *logits, int N,
                           const OpsMoeRoute *r);
void cpu_moe_route_backward(float *dlogits, const float *dw, const float *probs, const int32_t *idx,
                            const float *w, const float *aux_coef, float aux_weight,
                            const int32_t *seg_of_token, int N, const OpsMoeRoute *r);
void cpu_moe_aux_forward(float *loss, float *aux_coef, int32_t *seg_of_token, const float *probs,
                         const int32_t *idx, const int32_t *cu_seg, int n_seg, int N, int E, int K, float alpha);

void cpu_moe_permute(float *Xp, int32_t *row_of_slot, int32_t *slot_of_row, int32_t *offsets, const float *x,
                     const int32_t *idx, int N, int D, int E, int K);
void cpu_moe_permute_backward(float *dx, const float *dXp, const int32_t *row_of_slot, int N, int D, int K);
void cpu_moe_experts_forward(float *Yp, float *G, float *U, float *Hm, const float *Xp, const float *Wg,
                             const float *Wu, const float *Wd, const int32_t *offsets_host, int E, int D, int I);
void cpu_moe_experts_backward(float *dXp, float *dWg, float *dWu, float *dWd, const float *dYp, float *dG,
                              float *dU, float *dHm, const float *Xp, const float *G, const float *U,
                              const float *Hm, const float *Wg, const float *Wu, const float *Wd,
                              const int32_t *offsets_host, int E, int D, int I);
void cpu_moe_unpermute(float *y, const float *Yp, const float *w, const int32_t *row_of_slot, int N, int D,
                       int K);
void cpu_moe_unpermute_backward(float *dYp, float *dw, const float *dy, const float *Yp, const float *w,
                                const int32_t *row_of_slot, const int32_t *slot_of_row, int N, int D, int K);

void cpu_lmhead_logprob_forward(float *logp, float *lse, const float *y, const float *W,
                                const int32_t *targets, int N, int V, int D, float *scratch);
void cpu_lmhead_logprob_backward(float *dy, float beta_dy, float *dW, const float *dlogp, const float *lse,
                                 const float *y, const float *W, const int32_t *targets, int N, int V, int D,
                                 float *scratch);

void cpu_mla_cache_scatter(float *cache, const int32_t *block_table, int max_blocks, int n_layers, int layer,
                           int block_tokens, int rw, const float *src, const int32_t *pos, int n);
void cpu_mla_decode_attention(float *out, const float *qa, const float *cache, const int32_t *block_table,
                              int max_blocks, int n_layers, int layer, int block_tokens, const int32_t *pos, int n,
                              int H, int r, int dr, float scale);
/* moe_small.c: the routed experts of a few rows, slot by slot. */
void cpu_moe_experts_small(float *y, float *h, const float *x, const int32_t *idx, const float *w,
                           const float *Wg, const float *Wu, const float *Wd, int N, int D, int I, int K);

#endif
