/* model/ops.h — the compute backend interface: every op the model orchestration calls.
 * Defines: Ops (the vtable), OpsMoeRoute (router settings), OpsSampler, ops_cpu.
 *
 * CONTRACT
 *  - model/model.c is written once against this table; a backend (model/cpu/, later
 *    model/cuda/) fills it. Every float / int32 pointer argument is backend memory
 *    (host memory for the CPU backend, device memory for CUDA) unless the comment says
 *    "host". Layouts are row-major; "[N, D]" means N rows of D floats, rows contiguous
 *    unless an explicit leading dimension (ld*) is given.
 *  - Linear weights use the PyTorch convention W [out, in], y = x W^T.
 *  - Backward ops ACCUMULATE (+=) into parameter gradients (dw) and into the input
 *    gradient when the comment says "dx +="; otherwise they overwrite.
 *  - Determinism: for a given backend, results do not depend on the number of threads
 *    (partitions fixed by the shapes, every reduction summed in a fixed order, no
 *    atomics). On CPU, GEMMs are cut into shape-determined blocks, each one single-
 *    threaded OpenBLAS call, so they are bit-identical across OMP_NUM_THREADS too;
 *    results DO depend on the OpenBLAS kernel chosen for the CPU (OPENBLAS_CORETYPE).
 *  - Ops never fail on valid shapes; input validation happens in model.c. */
#ifndef CRUCIBLE_MODEL_OPS_H
#define CRUCIBLE_MODEL_OPS_H

#include <stddef.h>
#include <stdint.h>

/* Router settings (spec §6.1). */
typedef struct OpsMoeRoute {
    int E, K;                 /* routed experts, experts per token */
    int group_limited;        /* 0 = greedy top-K, 1 = group_limited_greedy */
    int n_group, topk_group;  /* groups of E/n_group contiguous experts; groups kept */
    int norm_topk_prob;       /* renormalise the K weights (then no routed scaling) */
    float routed_scale;       /* routed_scaling_factor */
} OpsMoeRoute;

/* Sampling settings of Ops.sample_rows (rollout/sampler.h SamplerCfg). */
typedef struct OpsSampler {
    float temperature;  /* 0 = greedy */
    int top_k;          /* <= 0: off */
    float top_p;        /* >= 1 or <= 0: off */
    float min_p;        /* <= 0: off */
} OpsSampler;

typedef struct Ops {
    const char *name;

    /* ---- memory (sizes in bytes) ---------------------------------------------- */
    void *(*alloc)(size_t bytes);                       /* zero-filled; aborts on OOM */
    void (*free)(void *p);                              /* NULL ok */
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*zero)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);

    /* ---- BLAS ------------------------------------------------------------------- */
    /* C[M,N] = alpha * op(A)[M,K] op(B)[K,N] + beta * C  (cblas_sgemm row-major). */
    void (*gemm)(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                 const float *B, int ldb, float beta, float *C, int ldc);

    /* For b < batch: C_b = alpha op(A_b) op(B_b) + beta C_b with X_b = X + b * strideX
     * (floats), each product as gemm() computes it (the per-head products of MLA). */
    void (*gemm_batched)(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                         long long strideA, const float *B, int ldb, long long strideB, float beta, float *C,
                         int ldc, long long strideC, int batch);

    /* ---- elementwise ------------------------------------------------------------ */
    /* dst[i*ldd + j] = src[i*lds + j], i < rows, j < cols (regions do not overlap). */
    void (*copy2d)(float *dst, int ldd, const float *src, int lds, int rows, int cols);
    void (*add)(float *y, const float *x, size_t n);            /* y += x */
    void (*scale)(float *y, float a, size_t n);                 /* y *= a */
    /* Number of non-finite values in x[0..n) written to *count (host). */
    void (*count_nonfinite)(const float *x, size_t n, size_t *count);

    /* ---- embedding -------------------------------------------------------------- */
    /* out[t,:] = table[tokens[t],:]; tokens already validated. */
    void (*embedding_forward)(float *out, const float *table, const int32_t *tokens, int N, int D);
    /* dtable[tokens[t],:] += dout[t,:] (tokens summed in order t = 0..N-1). */
    void (*embedding_backward)(float *dtable, const float *dout, const int32_t *tokens, int N, int D);

    /* ---- RMSNorm (spec §3.2, §7.3) ---------------------------------------------- */
    /* out[n,:] = w * x[n,:] * rstd[n], rstd[n] = (mean(x[n,:]^2) + eps)^-1/2 (saved). */
    void (*rmsnorm_forward)(float *out, int ldo, float *rstd, const float *x, int ldx, const float *w,
                            int N, int D, float eps);
    /* dx[n,:] += rstd (g - xh mean(g xh)), g = dout w, xh = x rstd; dw += sum_n dout xh. */
    void (*rmsnorm_backward)(float *dx, int lddx, float *dw, const float *dout, int lddo,
                             const float *x, int ldx, const float *w, const float *rstd, int N, int D);

    /* ---- RoPE, interleaved pairs (spec §5.3), in place -------------------------- */
    /* For token n and head h, the dr floats at x + n*ld + h*head_stride are rotated pairwise
     * (2i, 2i+1) by angle fp32(pos[n]) * inv_freq[i], with cos/sin times cs_factor.
     * inv_freq: [dr/2] backend memory. Backward rotates by -angle (the transpose). */
    void (*rope_forward)(float *x, int ld, int head_stride, int n_heads, int N, int dr,
                         const int32_t *pos, const float *inv_freq, float cs_factor);
    void (*rope_backward)(float *dx, int ld, int head_stride, int n_heads, int N, int dr,
                          const int32_t *pos, const float *inv_freq, float cs_factor);

    /* ---- SwiGLU (spec §3.3, §7.8) ------------------------------------------------ */
    /* h = silu(g) * u over n elements. */
    void (*swiglu_forward)(float *h, const float *g, const float *u, size_t n);
    /* dg = dh u silu'(g), du = dh silu(g) (overwrite). */
    void (*swiglu_backward)(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n);

    /* ---- causal varlen attention (spec §4.2 step 5, §7.6) ------------------------ */
    /* Q, K: [N, H, dqk]; V: [N, H, dv]; O: [N, H, dv]; lse: [N, H] (saved for backward).
     * Token n attends to tokens j of its own sequence (cu_seqlens[s] <= j <= n).
     * Never builds an [N x N] matrix. */
    void (*attention_forward)(float *O, float *lse, const float *Q, const float *K, const float *V,
                              const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv,
                              float scale);
    /* dQ, dK, dV overwritten. */
    void (*attention_backward)(float *dQ, float *dK, float *dV, const float *dO, const float *O,
                               const float *lse, const float *Q, const float *K, const float *V,
                               const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv,
                               float scale);

    /* ---- MLA key/value assembly (spec §4.2 step 4, §7.5) -------------------------- */
    /* kv: [N, H*(dn+dv)] (kv_b_proj output); kpe: rotated shared key, row n at kpe + n*ldkpe.
     * K[n,h,:] = [kv[n,h,0:dn] | kpe[n,:]] (dn+dr), V[n,h,:] = kv[n,h,dn:dn+dv]. */
    void (*mla_kv_assemble_forward)(float *K, float *V, const float *kv, const float *kpe, int ldkpe,
                                    int N, int H, int dn, int dr, int dv);
    /* dkv overwritten; dkpe[n,:] = sum_h dK[n,h,dn:] (overwritten, stride ldkpe). */
    void (*mla_kv_assemble_backward)(float *dkv, float *dkpe, int ldkpe, const float *dK,
                                     const float *dV, int N, int H, int dn, int dr, int dv);

    /* ---- MoE routing (spec §6.1, §6.4, §7.9) ------------------------------------ */
    /* logits [N, E] -> probs = softmax (saved), idx [N, K] (int32, selected experts in
     * descending score order), w [N, K] routing weights. */
    void (*moe_route_forward)(float *probs, int32_t *idx, float *w, const float *logits, int N,
                              const OpsMoeRoute *r);
    /* dlogits [N, E] (overwrite) from dw [N, K] and, when aux_coef != NULL, the aux-loss
     * gradient dL/dprobs[n,e] += aux_weight * aux_coef[seg(n), e] (see moe_aux_forward). */
    void (*moe_route_backward)(float *dlogits, const float *dw, const float *probs, const int32_t *idx,
                               const float *w, const float *aux_coef, float aux_weight,
                               const int32_t *seg_of_token, int N, const OpsMoeRoute *r);
    /* Sequence-level auxiliary loss. Segments: the n_seg sequences given by cu_seg
     * (seq_aux = true) or one segment of all N tokens. f[s,e] = E/(K T_s) count,
     * P[s,e] = mean_t probs; loss = alpha/n_seg sum_s sum_e f P written to *loss
     * (backend memory, 1 float). aux_coef[s,e] = alpha f[s,e] / (n_seg T_s) is saved
     * for the backward; seg_of_token [N] is written. */
    void (*moe_aux_forward)(float *loss, float *aux_coef, int32_t *seg_of_token, const float *probs,
                            const int32_t *idx, const int32_t *cu_seg, int n_seg, int N, int E, int K,
                            float alpha);

    /* ---- MoE dispatch (deterministic: stable counting sort by expert) ----------- */
    /* Slots s = n*K + k sorted by (idx[s], s): row_of_slot [N*K], slot_of_row [N*K],
     * offsets [E+1] (rows of expert e are [offsets[e], offsets[e+1])). Xp [N*K, D] gathers
     * x[s / K]. */
    void (*moe_permute)(float *Xp, int32_t *row_of_slot, int32_t *slot_of_row, int32_t *offsets,
                        const float *x, const int32_t *idx, int N, int D, int E, int K);
    /* dx[n,:] += sum_k dXp[row_of_slot[n*K+k],:] (k = 0..K-1 in order). */
    void (*moe_permute_backward)(float *dx, const float *dXp, const int32_t *row_of_slot, int N, int D,
                                 int K);
    /* Per expert e, on its rows: G = Xp Wg_e^T, U = Xp Wu_e^T, Hm = silu(G) U, Yp = Hm Wd_e^T.
     * Wg, Wu: stacked [E, I, D]; Wd: [E, D, I]. offsets_host: host copy of offsets [E+1].
     * G, U, Hm: [N*K, I] saved for backward. */
    void (*moe_experts_forward)(float *Yp, float *G, float *U, float *Hm, const float *Xp,
                                const float *Wg, const float *Wu, const float *Wd,
                                const int32_t *offsets_host, int E, int D, int I);
    /* dXp overwritten; dWg, dWu, dWd +=. dYp [N*K, D]; dG, dU, dHm: [N*K, I] scratch. */
    void (*moe_experts_backward)(float *dXp, float *dWg, float *dWu, float *dWd, const float *dYp,
                                 float *dG, float *dU, float *dHm, const float *Xp, const float *G,
                                 const float *U, const float *Hm, const float *Wg, const float *Wu,
                                 const float *Wd, const int32_t *offsets_host, int E, int D, int I);
    /* y[n,:] = sum_k w[n,k] Yp[row_of_slot[n*K+k],:] (k in order; overwrite). */
    void (*moe_unpermute)(float *y, const float *Yp, const float *w, const int32_t *row_of_slot, int N,
                          int D, int K);
    /* dYp[r,:] = w[s] dy[s/K,:] for s = slot_of_row[r]; dw[n,k] = <dy[n,:], Yp[row_of_slot[n*K+k],:]>. */
    void (*moe_unpermute_backward)(float *dYp, float *dw, const float *dy, const float *Yp,
                                   const float *w, const int32_t *row_of_slot, const int32_t *slot_of_row,
                                   int N, int D, int K);

    /* ---- LM head fused with log-softmax, chunked over the vocabulary ------------- */
    /* logp[n] = log softmax(y[n] W^T)[targets[n]] (0 when targets[n] < 0); lse[n] saved.
     * W: [V, D]. scratch: ops_lmhead_scratch_floats() floats of backend memory. */
    void (*lmhead_logprob_forward)(float *logp, float *lse, const float *y, const float *W,
                                   const int32_t *targets, int N, int V, int D, float *scratch);
    /* dlogits = dlogp (onehot(target) - softmax) (0 rows where target < 0);
     * dy += dlogits W (overwrite when beta_dy == 0), dW += dlogits^T y. */
    void (*lmhead_logprob_backward)(float *dy, float beta_dy, float *dW, const float *dlogp,
                                    const float *lse, const float *y, const float *W,
                                    const int32_t *targets, int N, int V, int D, float *scratch);

    /* ---- optimizer (model/adamw.h semantics) --------------------------------------- */
    /* One AdamW step number t (>= 1) on n elements: the per-element update of
     * adamw_update() (bias corrections computed in double on the host, applied in fp32). */
    void (*adamw_update)(float beta1, float beta2, float eps, float weight_decay, long t, float lr,
                         int decay, float *p, const float *g, float *m, float *v, size_t n);
    /* sum_i x[i]^2 accumulated in double in an order fixed by n; returned to the host. */
    double (*sumsq)(const float *x, size_t n);

    /* ---- rollout: the paged latent MLA cache (rollout/kv_cache.h, spec §9) --------- */
    /* cache: [n_blocks][n_layers][block_tokens][rw] floats, rw = kv_lora_rank + rope dim.
     * block_table: [n, max_blocks] int32, row i's block ids in position order.
     * Row i of src [n, rw] is written to layer `layer` of its sequence at position pos[i]:
     * block block_table[i*max_blocks + pos[i]/block_tokens], slot pos[i] % block_tokens.
     * Rows write distinct (block, slot) pairs (the caller guarantees it). */
    void (*mla_cache_scatter)(float *cache, const int32_t *block_table, int max_blocks, int n_layers,
                              int layer, int block_tokens, int rw, const float *src, const int32_t *pos,
                              int n);
    /* Absorbed-MLA attention of n query rows over their cached latent rows (spec §9.3):
     * for row i, head h, with rows c_j (j = 0..pos[i]) of layer `layer` of row i's
     * sequence (same addressing as mla_cache_scatter):
     *   s_j = scale * <qa[i,h,0:rw], c_j>,  out[i,h,0:r] = sum_j softmax(s)_j c_j[0:r].
     * qa [n, H, rw], out [n, H, r] (overwritten), rw = r + dr. */
    void (*mla_decode_attention)(float *out, const float *qa, const float *cache,
                                 const int32_t *block_table, int max_blocks, int n_layers, int layer,
                                 int block_tokens, const int32_t *pos, int n, int H, int r, int dr,
                                 float scale);

    /* ---- sampling (rollout/sampler.h is the specification) -------------------------- */
    /* One token per row of logits [n, V] under cfg (same rules, order and tie breaks as
     * sampler_sample); uniforms [n] (backend memory, doubles in [0,1)) are the rows'
     * draws (ignored when greedy). tokens [n], logp_sampled [n], logp_model [n] are
     * backend memory. NULL in a backend that samples on the host (the CPU one). */
    void (*sample_rows)(int32_t *tokens, float *logp_sampled, float *logp_model, const float *logits,
                        int n, int V, const struct OpsSampler *cfg, const double *uniforms);

    /* ---- rollout: the routed experts of a few rows (decode), no dispatch ------------ */
    /* For each slot s = n*K + k (n < N, k < K), expert e = idx[s]:
     *   h[s,:] = silu(Wg_e x[n,:]) * (Wu_e x[n,:])                        ([N*K, I], overwritten)
     *   y[n,:] = sum_k w[s] (Wd_e h[s,:])   summed k = 0..K-1 in order    ([N, D], overwritten)
     * Wg, Wu: stacked [E, I, D]; Wd: [E, D, I] (as moe_experts_forward); x [N, D]; idx, w
     * [N, K] as moe_route_forward writes them (0 <= idx < E; an expert may repeat across
     * rows). Equals moe_permute + moe_experts_forward + moe_unpermute up to rounding, with
     * no sort, no expert offsets on the host and so no host synchronisation; each slot
     * reads its expert's weights itself (an expert chosen by r rows is read r times), so it
     * is meant for small N*K (model.c picks it by a slot threshold). h is scratch the
     * caller owns. NULL in a backend without it (model.c then dispatches). */
    void (*moe_experts_small)(float *y, float *h, const float *x, const int32_t *idx, const float *w,
                              const float *Wg, const float *Wu, const float *Wd, int N, int D, int I, int K);
    /* The largest N*K for which this backend's moe_experts_small (as currently selected)
     * should be preferred over the dispatched path, or 0 for the caller's default (model.c:
     * 64). The CUDA backend answers 4096 unless CRUCIBLE_CUDA_MOE_SMALL=slots (above 64
     * slots its op reads each selected expert once per call), else 0. NULL: the default (the CPU backend). */
    long (*moe_experts_small_slots)(void);

    /* ---- recorded steps (optional; NULL in the CPU backend) --------------------------- */
    /* A backend that can record a sequence of calls once and replay it (the CUDA backend:
     * CUDA graphs, rollout/forward_ops.c's decode steps). step_enabled: 1 when recording
     * is switched on now (CUDA: CRUCIBLE_CUDA_GRAPHS=1). */
    int (*step_enabled)(void);
    /* Start recording: the calls that follow are recorded, NOT run, until
     * step_record_end. They must need no host synchronisation (no upload, download,
     * count_nonfinite, attention_forward, moe_permute's offsets) and no allocation. 0, or
     * -1 (not recording; nothing changed). */
    int (*step_record_begin)(void);
    /* The recorded step, or NULL when the recording is unusable (memory was allocated or
     * grown meanwhile, or the backend refused it): nothing ran, the caller makes the calls
     * directly. */
    void *(*step_record_end)(void);
    /* Run a recorded step: the same calls with the same pointers and sizes, on what the
     * buffers hold now. 0, or -1 when it is stale (memory allocated, freed or grown since
     * it was recorded, or a backend switch that picks kernels changed): nothing ran. */
    int (*step_launch)(void *step);
    void (*step_free)(void *step);

    /* ---- parameters (optional) ----------------------------------------------------- */
    /* p[0..n) (floats, one whole allocation of this table's alloc) holds model parameters:
     * the backend may keep a lower-precision copy of the range for its GEMMs. The caller
     * promises that every write to the range goes through this table's upload, copy,
     * copy2d, zero, add, scale, adamw_update or a GEMM's C (how the backend learns that its
     * copy is stale); free(p) forgets the range. Declaring the same p again is allowed.
     * NULL in a backend that keeps no copies (the CPU one); model.c calls it when set. */
    void (*declare_params)(const float *p, size_t n);
} Ops;

/* Chunk sizes of the LM head (rows x vocab columns of logits held at once). */
enum { OPS_LMHEAD_ROWS = 512, OPS_LMHEAD_COLS = 2048 };
static inline size_t ops_lmhead_scratch_floats(void) {
    return (size_t)OPS_LMHEAD_ROWS * OPS_LMHEAD_COLS + 4 * (size_t)OPS_LMHEAD_ROWS;
}

/* The CPU backend (fp32, OpenBLAS, OpenMP). Static table; never freed. The first call
 * sets OpenBLAS to one thread per call: GEMMs are split over OpenMP threads instead
 * (two thread pools spinning on the same cores are many times slower). */
const Ops *ops_cpu(void);

/* Optional, first thing in main(): when OpenBLAS chose a generic kernel on a CPU with
 * AVX2/AVX-512 (OpenBLAS 0.3.21 misdetects recent Xeons) or OMP_WAIT_POLICY is unset,
 * set OPENBLAS_CORETYPE / OMP_WAIT_POLICY=passive and re-execute the program once with
 * the same argv (both are read when the libraries load). Variables the user set are
 * kept; CRUCIBLE_ENV_INIT=1 disables it. Returns when nothing needed changing. */
void ops_cpu_env_init(int argc, char **argv);

#endif
