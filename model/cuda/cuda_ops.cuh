// model/cuda/cuda_ops.cuh — the CUDA backend's op functions (private to model/cuda/).
// Defines: cuda_* (one per Ops entry, same names as model/cpu/cpu_ops.h with cuda_ for
// cpu_; see model/ops.h for each contract). The ops that call GEMMs take the table's
// GemmFn so the fp32 and bf16 tables share one implementation. Files: ops_cuda.cu
// (context, memory, GEMM, elementwise, AdamW, the tables), embedding.cu, rmsnorm.cu,
// rope.cu, attention.cu, attention_gemm.cu, attention_wmma.cu, mla.cu, mla_decode.cu, moe_route.cu,
// moe_dispatch.cu, moe_small.cu, lmhead.cu, sample.cu.
#ifndef CRUCIBLE_MODEL_CUDA_OPS_CUH
#define CRUCIBLE_MODEL_CUDA_OPS_CUH

#include "model/cuda/cuda_common.cuh"

void cuda_gemm_fp32(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc);
void cuda_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc);
void cuda_swiglu_forward(float *h, const float *g, const float *u, size_t n);
void cuda_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);

void cuda_embedding_forward(float *out, const float *table, const int32_t *tokens, int N, int D);
void cuda_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int N, int D);

void cuda_rmsnorm_forward(float *out, int ldo, float *rstd, const float *x, int ldx, const float *w, int N,
                          int D, float eps);
void cuda_rmsnorm_backward(float *dx, int lddx, float *dw, const float *dout, int lddo, const float *x,
                           int ldx, const float *w, const float *rstd, int N, int D);

void cuda_rope_forward(float *x, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos,
                       const float *inv_freq, float cs_factor);
void cuda_rope_backward(float *dx, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos,
                        const float *inv_freq, float cs_factor);

// attention.cu: fused flash kernels, fp32, no score scratch.
void cuda_attention_forward_flash(float *O, float *lse, const float *Q, const float *K, const float *V,
                                  const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale);
void cuda_attention_backward_flash(float *dQ, float *dK, float *dV, const float *dO, const float *O,
                                   const float *lse, const float *Q, const float *K, const float *V,
                                   const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale);
// attention_gemm.cu: chunked scores through cuBLAS with compute type ct.
void cuda_attention_forward_gemm(cublasComputeType_t ct, float *O, float *lse, const float *Q, const float *K,
                                 const float *V, const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv,
                                 float scale);
void cuda_attention_backward_gemm(cublasComputeType_t ct, float *dQ, float *dK, float *dV, const float *dO,
                                  const float *O, const float *lse, const float *Q, const float *K, const float *V,
                                  const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale);
// attention_wmma.cu: tensor-core (wmma bf16) flash kernels; shapes they do not take
// (dqk, dv not multiples of 16, dqk > 192, dv > 128) go to the gemm path (bf16 compute).
void cuda_attention_forward_wmma(float *O, float *lse, const float *Q, const float *K, const float *V,
                                 const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale);
void cuda_attention_backward_wmma(float *dQ, float *dK, float *dV, const float *dO, const float *O,
                                  const float *lse, const float *Q, const float *K, const float *V,
                                  const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale);
// What a table with GEMM compute type ct runs: the gemm path, except that the bf16 table
// (ct = CUBLAS_COMPUTE_32F_FAST_16BF) follows CRUCIBLE_CUDA_ATTENTION=gemm|wmma|flash.
void cuda_attention_forward_table(cublasComputeType_t ct, float *O, float *lse, const float *Q, const float *K,
                                  const float *V, const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk,
                                  int dv, float scale);
void cuda_attention_backward_table(cublasComputeType_t ct, float *dQ, float *dK, float *dV, const float *dO,
                                   const float *O, const float *lse, const float *Q, const float *K, const float *V,
                                   const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv,
                                   float scale);

void cuda_mla_kv_assemble_forward(float *K, float *V, const float *kv, const float *kpe, int ldkpe, int N,
                                  int H, int dn, int dr, int dv);
void cuda_mla_kv_assemble_backward(float *dkv, float *dkpe, int ldkpe, const float *dK, const float *dV,
                                   int N, int H, int dn, int dr, int dv);

// mla_decode.cu: the paged latent cache (rollout decode).
void cuda_mla_cache_scatter(float *cache, const int32_t *block_table, int max_blocks, int n_layers, int layer,
                            int block_tokens, int rw, const float *src, const int32_t *pos, int n);
void cuda_mla_decode_attention(float *out, const float *qa, const float *cache, const int32_t *block_table,
                               int max_blocks, int n_layers, int layer, int block_tokens, const int32_t *pos, int n,
                               int H, int r, int dr, float scale);

void cuda_moe_route_forward(float *probs, int32_t *idx, float *w, const float *logits, int N,
                            const OpsMoeRoute *r);
void cuda_moe_route_backward(float *dlogits, const float *dw, const float *probs, const int32_t *idx,
                             const float *w, const float *aux_coef, float aux_weight,
                             const int32_t *seg_of_token, int N, const OpsMoeRoute *r);
void cuda_moe_aux_forward(float *loss, float *aux_coef, int32_t *seg_of_token, const float *probs,
                          const int32_t *idx, const int32_t *cu_seg, int n_seg, int N, int E, int K, float alpha);

void cuda_moe_permute(float *Xp, int32_t *row_of_slot, int32_t *slot_of_row, int32_t *offsets, const float *x,
                      const int32_t *idx, int N, int D, int E, int K);
void cuda_moe_permute_backward(float *dx, const float *dXp, const int32_t *row_of_slot, int N, int D, int K);
void cuda_moe_experts_forward_g(GemmFn gemm, float *Yp, float *G, float *U, float *Hm, const float *Xp,
                                const float *Wg, const float *Wu, const float *Wd, const int32_t *offsets_host,
                                int E, int D, int I);
void cuda_moe_experts_backward_g(GemmFn gemm, float *dXp, float *dWg, float *dWu, float *dWd, const float *dYp,
                                 float *dG, float *dU, float *dHm, const float *Xp, const float *G,
                                 const float *U, const float *Hm, const float *Wg, const float *Wu,
                                 const float *Wd, const int32_t *offsets_host, int E, int D, int I);
void cuda_moe_unpermute(float *y, const float *Yp, const float *w, const int32_t *row_of_slot, int N, int D,
                        int K);
void cuda_moe_unpermute_backward(float *dYp, float *dw, const float *dy, const float *Yp, const float *w,
                                 const int32_t *row_of_slot, const int32_t *slot_of_row, int N, int D, int K);

void cuda_lmhead_logprob_forward_g(GemmFn gemm, float *logp, float *lse, const float *y, const float *W,
                                   const int32_t *targets, int N, int V, int D, float *scratch);
void cuda_lmhead_logprob_backward_g(GemmFn gemm, float *dy, float beta_dy, float *dW, const float *dlogp,
                                    const float *lse, const float *y, const float *W, const int32_t *targets,
                                    int N, int V, int D, float *scratch);

// moe_small.cu: the routed experts of a few rows, slot by slot (no host sync).
void cuda_moe_experts_small(float *y, float *h, const float *x, const int32_t *idx, const float *w, const float *Wg,
                            const float *Wu, const float *Wd, int N, int D, int I, int K);
// moe_indexed.cu: the same op with the slots grouped by expert on the device (each selected
// expert's weights read once per call; no host sync).
void cuda_moe_experts_indexed(float *y, float *h, const float *x, const int32_t *idx, const float *w,
                              const float *Wg, const float *Wu, const float *Wd, int N, int D, int I, int K);

// sample.cu: cfg is host memory. Scratch: the context's big buffer (RowStat per row, and
// with top-k/top-p up to 2 x 2^23 sort keys plus CUB's temporary storage).
// Recorded steps (model/cuda/graph.cu, Ops.step_*): CUDA graphs, CRUCIBLE_CUDA_GRAPHS=1.
int cuda_step_enabled(void);
int cuda_step_record_begin(void);
void *cuda_step_record_end(void);
int cuda_step_launch(void *step);
void cuda_step_free(void *step);
void cuda_sample_rows(int32_t *tokens, float *logp_sampled, float *logp_model, const float *logits, int n, int V,
                      const OpsSampler *cfg, const double *uniforms);

#endif
