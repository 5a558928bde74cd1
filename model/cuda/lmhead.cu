// model/cuda/lmhead.cu — LM head fused with log-softmax, chunked over rows and vocabulary
// as the CPU path, but with larger chunks (LM_ROWS x LM_COLS logits, 128 MiB, in the
// context's scratch instead of the caller's OPS_LMHEAD_ROWS x OPS_LMHEAD_COLS one, which
// is left unused): bigger GEMMs keep the tensor cores busy. GEMM per chunk, then one
// block per row updates an online logsumexp. The backward recomputes each chunk's
// logits and forms dlogits = dlogp (onehot - p) in place before the two gradient GEMMs.
// Chunk sizes are constants, so the summation order depends only on the shapes.
// In the bf16 table (gemm == cuda_gemm_bf16) the GEMM operands are rounded to bf16
// (nearest even) once per chunk into the scratch, where FAST_16BF would round them inside
// every GEMM, and the GEMMs read bf16 with fp32 output and accumulation: cuBLAS
// ran bf16-stored operands at 727 TFLOP/s against 407 for fp32-stored ones with
// FAST_16BF (8192^3, bench/RESULTS.md), and the LM head is most of the model's FLOPs.
// Unset or CRUCIBLE_CUDA_LMHEAD=bf16: the bf16 copies; =fast16bf keeps the bf16 table on
// fp32 operands through its gemm. Both ran on the H100 on 2026-11-23
// (tests/cuda/test_lmhead_bf16_cuda.c, also under memcheck); V 102400, D 2048, 4096 rows,
// fwd / bwd ms: bf16 4.55 / 9.55, fast16bf 6.46 / 18.8 (bench/cuda_ops_bench).
#include "model/cuda/cuda_ops.cuh"

#include <cuda_bf16.h>
#include <string.h>

// 1 when the table's GEMMs should read bf16 copies (bf16 table, not switched off).
static int lm_bf16_operands(GemmFn gemm, int D) {
    if (gemm != cuda_gemm_bf16 || D <= 0) return 0;
    static const char *const v[2] = {"bf16", "fast16bf"};
    return cuda_env_pick("CRUCIBLE_CUDA_LMHEAD", v, 2) == 0;
}

enum { LM_ROWS = 4096, LM_COLS = 8192 };

// [LM_ROWS x LM_COLS] logits, 3 x LM_ROWS row statistics, then (bf16 path only) the
// bf16 copies: y rows [LM_ROWS, D], W rows [LM_COLS, D], dlogits [LM_ROWS, LM_COLS].
// Every part starts 16-byte aligned (LM_ROWS and LM_COLS are multiples of 8).
static size_t lm_float_count(void) { return (size_t)LM_ROWS * LM_COLS + 3 * (size_t)LM_ROWS; }
static float *lm_scratch(int bf16, int D) {
    size_t bytes = sizeof(float) * lm_float_count();
    if (bf16) bytes += sizeof(__nv_bfloat16) * ((size_t)(LM_ROWS + LM_COLS) * D + (size_t)LM_ROWS * LM_COLS);
    return (float *)cuda_big_scratch(bytes);
}
typedef struct LmBf16 {
    __nv_bfloat16 *y, *w, *dl;
} LmBf16;
static LmBf16 lm_bf16_parts(float *lg, int D) {
    LmBf16 b;
    b.y = (__nv_bfloat16 *)(lg + lm_float_count());
    b.w = b.y + (size_t)LM_ROWS * D;
    b.dl = b.w + (size_t)LM_COLS * D;
    return b;
}

// dst [rows, cols] (compact) = bf16(src rows with stride ld).
__global__ void lm_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, int rows, int cols, int ld) {
    size_t n = (size_t)rows * cols;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16_rn(src[(i / cols) * ld + i % cols]);
}
static void lm_to_bf16(__nv_bfloat16 *dst, const float *src, int rows, int cols, int ld) {
    lm_to_bf16_kernel<<<grid_for((size_t)rows * cols), CUDA_THREADS, 0, cuda_stream()>>>(dst, src, rows, cols, ld);
    launchCheck();
}
// Row-major C[M,N] (fp32) = op(A) op(B) + beta C with bf16 A, B (cuda_gemm_ex's mapping).
static void lm_gemm_bf16(int ta, int tb, int M, int N, int K, const __nv_bfloat16 *A, int lda,
                         const __nv_bfloat16 *B, int ldb, float beta, float *C, int ldc) {
    const float one = 1.0f;
    cublasCheck(cublasGemmEx(cuda_ctx()->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, N, M,
                             K, &one, B, CUDA_R_16BF, ldb, A, CUDA_R_16BF, lda, &beta, C, CUDA_R_32F, ldc,
                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

__global__ void lmhead_init_kernel(float *mx, float *sm, float *tl, int nr) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < nr) {
        mx[i] = -INFINITY;
        sm[i] = 0;
        tl[i] = 0;
    }
}
__global__ void lmhead_chunk_kernel(const float *lg, int nc, int c0, const int32_t *targets, float *mx, float *sm,
                                    float *tl) {
    __shared__ float sh[32];
    int i = blockIdx.x;
    const float *l = lg + (size_t)i * nc;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < nc; j += blockDim.x) m = fmaxf(m, l[j]);
    m = block_max(m, sh);
    float nm = fmaxf(m, mx[i]);
    float s = 0;
    for (int j = threadIdx.x; j < nc; j += blockDim.x) s += expf(l[j] - nm);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) {
        sm[i] = sm[i] * expf(mx[i] - nm) + s;
        mx[i] = nm;
        int t = targets[i];
        if (t >= c0 && t < c0 + nc) tl[i] = l[t - c0];
    }
}
__global__ void lmhead_finish_kernel(float *logp, float *lse, const int32_t *targets, const float *mx,
                                     const float *sm, const float *tl, int nr) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nr) return;
    float L = mx[i] + logf(sm[i]);
    lse[i] = L;
    logp[i] = targets[i] >= 0 ? tl[i] - L : 0.0f;
}

void cuda_lmhead_logprob_forward_g(GemmFn gemm, float *logp, float *lse, const float *y, const float *W,
                                   const int32_t *targets, int N, int V, int D, float *scratch) {
    (void)scratch;
    int bf16 = lm_bf16_operands(gemm, D);
    float *lg = lm_scratch(bf16, D);
    float *mx = lg + (size_t)LM_ROWS * LM_COLS, *sm = mx + LM_ROWS, *tl = sm + LM_ROWS;
    LmBf16 b = bf16 ? lm_bf16_parts(lg, D) : LmBf16{NULL, NULL, NULL};
    for (int r0 = 0; r0 < N; r0 += LM_ROWS) {
        int nr = N - r0 < LM_ROWS ? N - r0 : LM_ROWS;
        lmhead_init_kernel<<<(nr + 255) / 256, 256, 0, cuda_stream()>>>(mx, sm, tl, nr);
        launchCheck();
        if (bf16) lm_to_bf16(b.y, y + (size_t)r0 * D, nr, D, D);
        for (int c0 = 0; c0 < V; c0 += LM_COLS) {
            int nc = V - c0 < LM_COLS ? V - c0 : LM_COLS;
            if (bf16) {
                lm_to_bf16(b.w, W + (size_t)c0 * D, nc, D, D);
                lm_gemm_bf16(0, 1, nr, nc, D, b.y, D, b.w, D, 0.0f, lg, nc);
            } else {
                gemm(0, 1, nr, nc, D, 1.0f, y + (size_t)r0 * D, D, W + (size_t)c0 * D, D, 0.0f, lg, nc);
            }
            lmhead_chunk_kernel<<<nr, 256, 0, cuda_stream()>>>(lg, nc, c0, targets + r0, mx, sm, tl);
            launchCheck();
        }
        lmhead_finish_kernel<<<(nr + 255) / 256, 256, 0, cuda_stream()>>>(logp + r0, lse + r0, targets + r0, mx, sm, tl,
                                                                          nr);
        launchCheck();
    }
}

// dlogits in place in lg, or (dlb != NULL) rounded to bf16 into dlb [nr, nc].
__global__ void lmhead_dlogits_kernel(float *lg, __nv_bfloat16 *dlb, int nc, int c0, const int32_t *targets,
                                      const float *dlogp, const float *lse) {
    int i = blockIdx.x;
    float *l = lg + (size_t)i * nc;
    int t = targets[i];
    float g = t >= 0 ? dlogp[i] : 0.0f, L = lse[i];
    for (int j = threadIdx.x; j < nc; j += blockDim.x) {
        float v = -g * expf(l[j] - L);
        if (c0 + j == t) v += g;
        if (dlb) dlb[(size_t)i * nc + j] = __float2bfloat16_rn(v);
        else l[j] = v;
    }
}

void cuda_lmhead_logprob_backward_g(GemmFn gemm, float *dy, float beta_dy, float *dW, const float *dlogp,
                                    const float *lse, const float *y, const float *W, const int32_t *targets,
                                    int N, int V, int D, float *scratch) {
    (void)scratch;
    int bf16 = lm_bf16_operands(gemm, D);
    float *lg = lm_scratch(bf16, D);
    LmBf16 b = bf16 ? lm_bf16_parts(lg, D) : LmBf16{NULL, NULL, NULL};
    for (int r0 = 0; r0 < N; r0 += LM_ROWS) {
        int nr = N - r0 < LM_ROWS ? N - r0 : LM_ROWS;
        if (bf16) lm_to_bf16(b.y, y + (size_t)r0 * D, nr, D, D);
        for (int c0 = 0; c0 < V; c0 += LM_COLS) {
            int nc = V - c0 < LM_COLS ? V - c0 : LM_COLS;
            float bdy = c0 == 0 ? beta_dy : 1.0f;
            if (bf16) {
                lm_to_bf16(b.w, W + (size_t)c0 * D, nc, D, D);
                lm_gemm_bf16(0, 1, nr, nc, D, b.y, D, b.w, D, 0.0f, lg, nc);
                lmhead_dlogits_kernel<<<nr, 256, 0, cuda_stream()>>>(lg, b.dl, nc, c0, targets + r0, dlogp + r0,
                                                                     lse + r0);
                launchCheck();
                lm_gemm_bf16(0, 0, nr, D, nc, b.dl, nc, b.w, D, bdy, dy + (size_t)r0 * D, D);
                lm_gemm_bf16(1, 0, nc, D, nr, b.dl, nc, b.y, D, 1.0f, dW + (size_t)c0 * D, D);
                continue;
            }
            gemm(0, 1, nr, nc, D, 1.0f, y + (size_t)r0 * D, D, W + (size_t)c0 * D, D, 0.0f, lg, nc);
            lmhead_dlogits_kernel<<<nr, 256, 0, cuda_stream()>>>(lg, NULL, nc, c0, targets + r0, dlogp + r0, lse + r0);
            launchCheck();
            gemm(0, 0, nr, D, nc, 1.0f, lg, nc, W + (size_t)c0 * D, D, bdy, dy + (size_t)r0 * D, D);
            gemm(1, 0, nc, D, nr, 1.0f, lg, nc, y + (size_t)r0 * D, D, 1.0f, dW + (size_t)c0 * D, D);
        }
    }
}
