// model/cuda/ops_cuda.cu — the CUDA backend's context (cuBLAS handle, scratch), memory,
// GEMM (cuBLAS, fp32 or bf16 tensor-core compute), elementwise ops, SwiGLU, fused AdamW,
// the sum of squares for the global grad norm, and the two Ops tables.
#include "model/cuda/cuda_ops.cuh"
#include "model/cuda/param_shadow.cuh"

#include <math.h>
#include <string.h>

void cuda_fail(const char *what, const char *msg, const char *file, int line) {
    fprintf(stderr, "CUDA error at %s:%d: %s: %s\n", file, line, what, msg);
    exit(1);
}

// CRUCIBLE_CUDA_CUBLAS_WORKSPACE_MIB: 0..1024, default 32 (cuBLAS's recommendation for
// Hopper); 0 leaves every handle on cuBLAS's own workspace pool.
static size_t blas_workspace_bytes(void) {
    const char *s = getenv("CRUCIBLE_CUDA_CUBLAS_WORKSPACE_MIB");
    if (!s || !*s) return (size_t)32 << 20;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end || v < 0 || v > 1024)
        cuda_fail("CRUCIBLE_CUDA_CUBLAS_WORKSPACE_MIB", "must be an integer in 0..1024", __FILE__, __LINE__);
    return (size_t)v << 20;
}

static void set_blas_workspace(CudaCtx *c, cublasHandle_t h, void **ws) {
    if (!c->blas_ws_bytes) return;
    if (!*ws) cudaCheck(cudaMalloc(ws, c->blas_ws_bytes));
    cublasCheck(cublasSetWorkspace(h, *ws, c->blas_ws_bytes));
}

void cuda_blas_workspace(cublasHandle_t h, void **ws) { set_blas_workspace(cuda_ctx(), h, ws); }

CudaCtx *cuda_ctx(void) {
    // Created once (C++ guarantees a thread-safe one-time init of a local static).
    static CudaCtx *ctx = [] {
        CudaCtx *c = (CudaCtx *)calloc(1, sizeof(CudaCtx));
        if (!c) cuda_fail("calloc", "out of memory", __FILE__, __LINE__);
        cublasCheck(cublasCreate(&c->blas));
        // No TF32 substitution in the fp32 path: CUBLAS_COMPUTE_32F is asked explicitly,
        // and pedantic-free default math otherwise.
        cublasCheck(cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH));
        cudaCheck(cudaMalloc(&c->scratch, CUDA_SCRATCH_BYTES));
        c->blas_ws_bytes = blas_workspace_bytes();
        set_blas_workspace(c, c->blas, &c->blas_ws);
        int dev = 0;
        cudaCheck(cudaGetDevice(&dev));
        cudaCheck(cudaDeviceGetAttribute(&c->n_sm, cudaDevAttrMultiProcessorCount, dev));
        return c;
    }();
    return ctx;
}

cudaStream_t cuda_stream(void) { return cuda_ctx()->stream; }

void *cuda_big_scratch(size_t bytes) {
    CudaCtx *c = cuda_ctx();
    if (bytes > c->big_bytes) {
        if (c->big && cuda_recording(c)) cuda_defer(c, c->big, 0, 1);
        else if (c->big) cudaCheck(cudaFree(c->big));  // synchronises: no kernel still reads it
        c->big = NULL;
        cudaCheck(cudaMalloc(&c->big, bytes));
        c->epoch++;
        c->big_bytes = bytes;
    }
    return c->big;
}

// ---- memory ------------------------------------------------------------------------

void cuda_defer(CudaCtx *c, void *p, size_t bytes, int is_free) {
    if (c->n_rec_defer == (int)(sizeof c->rec_defer / sizeof *c->rec_defer))
        cuda_fail("cuda_defer", "too many allocations while recording a step", __FILE__, __LINE__);
    c->rec_defer[c->n_rec_defer].p = p;
    c->rec_defer[c->n_rec_defer].bytes = bytes;
    c->rec_defer[c->n_rec_defer++].is_free = is_free;
}

static void *cuda_alloc(size_t bytes) {
    CudaCtx *c = cuda_ctx();
    void *p = NULL;
    size_t b = bytes ? bytes : 1;
    cudaCheck(cudaMalloc(&p, b));  // allowed in a relaxed-mode capture
    c->epoch++;
    if (cuda_recording(c)) cuda_defer(c, p, b, 0);
    else cudaCheck(cudaMemset(p, 0, b));
    return p;
}
static void cuda_free(void *p) {
    cuda_params_freed(p);
    if (!p) return;
    CudaCtx *c = cuda_ctx();
    if (cuda_recording(c)) cuda_defer(c, p, 0, 1);
    else cudaCheck(cudaFree(p));
    c->epoch++;
}
static void cuda_upload(void *dst, const void *src, size_t bytes) {
    cuda_params_written(dst, bytes);
    if (bytes) cudaCheck(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
static void cuda_download(void *dst, const void *src, size_t bytes) {
    if (bytes) cudaCheck(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
static void cuda_zero(void *p, size_t bytes) {
    cuda_params_written(p, bytes);
    if (bytes) cudaCheck(cudaMemsetAsync(p, 0, bytes, cuda_stream()));
}
static void cuda_copy(void *dst, const void *src, size_t bytes) {
    cuda_params_written(dst, bytes);
    if (bytes) cudaCheck(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
}

// dst[i*ldd + j] = src[i*lds + j]: one 2-D device-to-device copy, in stream order.
static void cuda_copy2d(float *dst, int ldd, const float *src, int lds, int rows, int cols) {
    if (rows <= 0 || cols <= 0) return;
    cuda_params_written_matrix(dst, rows, cols, ldd);
    cudaCheck(cudaMemcpy2DAsync(dst, sizeof(float) * (size_t)ldd, src, sizeof(float) * (size_t)lds,
                                sizeof(float) * (size_t)cols, (size_t)rows, cudaMemcpyDeviceToDevice,
                                cuda_stream()));
}

// ---- GEMM --------------------------------------------------------------------------

__global__ void scale_matrix_kernel(float *C, int M, int N, int ldc, float beta) {
    size_t total = (size_t)M * N;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / N, c = i % N;
        float *p = C + r * ldc + c;
        *p = beta == 0.0f ? 0.0f : beta * *p;
    }
}

// Row-major C = op(A) op(B): cuBLAS is column-major, and a row-major matrix read as
// column-major is its transpose, so compute C^T = op(B)^T op(A)^T with B first.
void cuda_gemm_ex(cublasComputeType_t ct, int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    cuda_params_written_matrix(C, M, N, ldc);
    if (K <= 0) {  // as the CPU path: C = beta C (beta == 0 clears, even NaN)
        scale_matrix_kernel<<<grid_for((size_t)M * N), CUDA_THREADS, 0, cuda_stream()>>>(C, M, N, ldc, beta);
        launchCheck();
        return;
    }
    if (cuda_gemv_small(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    CudaCtx *c = cuda_ctx();
    cublasCheck(cublasGemmEx(c->blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                             N, M, K, &alpha, B, CUDA_R_32F, ldb, A, CUDA_R_32F, lda, &beta, C, CUDA_R_32F,
                             ldc, ct, CUBLAS_GEMM_DEFAULT));
}

void cuda_gemm_batched(cublasComputeType_t ct, int transA, int transB, int M, int N, int K, float alpha,
                       const float *A, int lda, long long strideA, const float *B, int ldb, long long strideB,
                       float beta, float *C, int ldc, long long strideC, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    if (K <= 0) cuda_fail("cuda_gemm_batched", "K must be positive", __FILE__, __LINE__);
    if (strideC >= 0)  // (attention's chunks; none writes parameters with a negative stride)
        cuda_params_written(C, sizeof(float) * ((size_t)(batch - 1) * (size_t)strideC + (size_t)(M - 1) * ldc + N));
    CudaCtx *c = cuda_ctx();
    cublasCheck(cublasGemmStridedBatchedEx(c->blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N,
                                           transA ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, &alpha, B, CUDA_R_32F, ldb,
                                           strideB, A, CUDA_R_32F, lda, strideA, &beta, C, CUDA_R_32F, ldc, strideC,
                                           batch, ct, CUBLAS_GEMM_DEFAULT));
}

void cuda_gemm_fp32(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc) {
    cuda_gemm_ex(CUBLAS_COMPUTE_32F, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void cuda_gemm_bf16(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc) {
    // CRUCIBLE_CUDA_BF16_WEIGHTS=1: large GEMMs on declared parameters read their bf16 copy.
    if (cuda_gemm_bf16_shadow(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)) return;
    cuda_gemm_ex(CUBLAS_COMPUTE_32F_FAST_16BF, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// ---- elementwise -------------------------------------------------------------------

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

__global__ void add_kernel(float *y, const float *x, size_t n) {
    GRID_STRIDE(i, n) y[i] += x[i];
}
__global__ void scale_kernel(float *y, float a, size_t n) {
    GRID_STRIDE(i, n) y[i] *= a;
}
static void cuda_add(float *y, const float *x, size_t n) {
    if (!n) return;
    cuda_params_written(y, sizeof(float) * n);
    add_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream()>>>(y, x, n);
    launchCheck();
}
static void cuda_scale(float *y, float a, size_t n) {
    if (!n) return;
    cuda_params_written(y, sizeof(float) * n);
    scale_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream()>>>(y, a, n);
    launchCheck();
}

enum { REDUCE_BLOCKS = 1024 };

// Per-block partial counts; the host adds the REDUCE_BLOCKS partials in order.
__global__ void count_nonfinite_kernel(const float *x, size_t n, unsigned long long *part) {
    __shared__ unsigned long long sh[CUDA_THREADS];
    unsigned long long c = 0;
    GRID_STRIDE(i, n) c += !isfinite(x[i]);
    sh[threadIdx.x] = c;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] += sh[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}
static void cuda_count_nonfinite(const float *x, size_t n, size_t *count) {
    *count = 0;
    if (!n) return;
    unsigned long long part[REDUCE_BLOCKS];
    unsigned long long *dpart = (unsigned long long *)cuda_ctx()->scratch;
    count_nonfinite_kernel<<<REDUCE_BLOCKS, CUDA_THREADS, 0, cuda_stream()>>>(x, n, dpart);
    launchCheck();
    cudaCheck(cudaMemcpy(part, dpart, sizeof part, cudaMemcpyDeviceToHost));
    for (int b = 0; b < REDUCE_BLOCKS; b++) *count += (size_t)part[b];
}

__global__ void sumsq_kernel(const float *x, size_t n, double *part) {
    __shared__ double sh[CUDA_THREADS];
    double s = 0;
    GRID_STRIDE(i, n) s += (double)x[i] * x[i];
    sh[threadIdx.x] = s;
    __syncthreads();
    for (int k = blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    if (threadIdx.x == 0) part[blockIdx.x] = sh[0];
}
extern "C" double ops_cuda_sumsq(const float *x, size_t n) {
    if (!n) return 0.0;
    double part[REDUCE_BLOCKS], s = 0;
    double *dpart = (double *)cuda_ctx()->scratch;
    sumsq_kernel<<<REDUCE_BLOCKS, CUDA_THREADS, 0, cuda_stream()>>>(x, n, dpart);
    launchCheck();
    cudaCheck(cudaMemcpy(part, dpart, sizeof part, cudaMemcpyDeviceToHost));
    for (int b = 0; b < REDUCE_BLOCKS; b++) s += part[b];
    return s;
}

// ---- SwiGLU ------------------------------------------------------------------------

__global__ void swiglu_forward_kernel(float *h, const float *g, const float *u, size_t n) {
    GRID_STRIDE(i, n) {
        float x = g[i];
        h[i] = x / (1.0f + expf(-x)) * u[i];
    }
}
__global__ void swiglu_backward_kernel(float *dg, float *du, const float *dh, const float *g, const float *u,
                                       size_t n) {
    GRID_STRIDE(i, n) {
        float x = g[i], sg = 1.0f / (1.0f + expf(-x)), si = x * sg, d = dh[i];
        du[i] = d * si;
        dg[i] = d * u[i] * sg * (1.0f + x * (1.0f - sg));
    }
}
void cuda_swiglu_forward(float *h, const float *g, const float *u, size_t n) {
    if (!n) return;
    swiglu_forward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream()>>>(h, g, u, n);
    launchCheck();
}
void cuda_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
    if (!n) return;
    swiglu_backward_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream()>>>(dg, du, dh, g, u, n);
    launchCheck();
}

// ---- AdamW (one pass: read p, g, m, v; write p, m, v) --------------------------------

__global__ void adamw_kernel(float *p, const float *g, float *m, float *v, size_t n, float beta1, float beta2,
                             float eps, float keep, float step_size, float bc2_sqrt) {
    // Same expression order as adamw_update (model/adamw.c): m by lerp, as torch does.
    GRID_STRIDE(i, n) {
        float gi = g[i];
        float pi = p[i] * keep;
        float mi = m[i] + (1.0f - beta1) * (gi - m[i]);
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}
extern "C" void ops_cuda_adamw_update(float beta1, float beta2, float eps, float weight_decay, long t, float lr,
                                      int decay, float *p, const float *g, float *m, float *v, size_t n) {
    if (!n) return;
    cuda_params_written(p, sizeof(float) * n);
    double bc1 = 1.0 - pow((double)beta1, (double)t), bc2 = 1.0 - pow((double)beta2, (double)t);
    float keep = decay ? 1.0f - lr * weight_decay : 1.0f;
    adamw_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream()>>>(p, g, m, v, n, beta1, beta2, eps, keep,
                                               (float)(lr / bc1), (float)sqrt(bc2));
    launchCheck();
}

// ---- the tables --------------------------------------------------------------------

#define DEFINE_GEMM_OPS(suffix, gemmfn, ct)                                                                  \
    static void gemm_batched_##suffix(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, \
                                      long long sA, const float *B, int ldb, long long sB, float beta, float *C,  \
                                      int ldc, long long sC, int batch) {                                      \
        if (K <= 0) /* C = beta C per entry, as gemm() does */                                            \
            for (int b = 0; b < batch; b++) gemmfn(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C + b * sC, ldc); \
        else if (batch > 0)                                                                                  \
            cuda_gemm_batched(ct, tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);  \
    }                                                                                                        \
    static void att_fwd_##suffix(float *O, float *lse, const float *Q, const float *K, const float *V,         \
                                 const int32_t *cu, int S, int N, int H, int dqk, int dv, float scale) {       \
        cuda_attention_forward_table(ct, O, lse, Q, K, V, cu, S, N, H, dqk, dv, scale);                      \
    }                                                                                                        \
    static void att_bwd_##suffix(float *dQ, float *dK, float *dV, const float *dO, const float *O,             \
                                 const float *lse, const float *Q, const float *K, const float *V,             \
                                 const int32_t *cu, int S, int N, int H, int dqk, int dv, float scale) {       \
        cuda_attention_backward_table(ct, dQ, dK, dV, dO, O, lse, Q, K, V, cu, S, N, H, dqk, dv, scale);     \
    }                                                                                                        \
    static void experts_fwd_##suffix(float *Yp, float *G, float *U, float *Hm, const float *Xp, const float *Wg, \
                                     const float *Wu, const float *Wd, const int32_t *off, int E, int D, int I) { \
        cuda_moe_experts_forward_g(gemmfn, Yp, G, U, Hm, Xp, Wg, Wu, Wd, off, E, D, I);                      \
    }                                                                                                        \
    static void experts_bwd_##suffix(float *dXp, float *dWg, float *dWu, float *dWd, const float *dYp,         \
                                     float *dG, float *dU, float *dHm, const float *Xp, const float *G,        \
                                     const float *U, const float *Hm, const float *Wg, const float *Wu,        \
                                     const float *Wd, const int32_t *off, int E, int D, int I) {               \
        cuda_moe_experts_backward_g(gemmfn, dXp, dWg, dWu, dWd, dYp, dG, dU, dHm, Xp, G, U, Hm, Wg, Wu, Wd,  \
                                    off, E, D, I);                                                           \
    }                                                                                                        \
    static void lmhead_fwd_##suffix(float *logp, float *lse, const float *y, const float *W,                  \
                                    const int32_t *targets, int N, int V, int D, float *scratch) {            \
        cuda_lmhead_logprob_forward_g(gemmfn, logp, lse, y, W, targets, N, V, D, scratch);                   \
    }                                                                                                        \
    static void lmhead_bwd_##suffix(float *dy, float beta_dy, float *dW, const float *dlogp, const float *lse, \
                                    const float *y, const float *W, const int32_t *targets, int N, int V,     \
                                    int D, float *scratch) {                                                 \
        cuda_lmhead_logprob_backward_g(gemmfn, dy, beta_dy, dW, dlogp, lse, y, W, targets, N, V, D, scratch);\
    }

DEFINE_GEMM_OPS(fp32, cuda_gemm_fp32, CUBLAS_COMPUTE_32F)
DEFINE_GEMM_OPS(bf16, cuda_gemm_bf16, CUBLAS_COMPUTE_32F_FAST_16BF)

#define OPS_TABLE(tname, suffix, gemmfn, attf, attb)                          \
    {                                                             \
        .name = tname,                                            \
        .alloc = cuda_alloc,                                      \
        .free = cuda_free,                                        \
        .upload = cuda_upload,                                    \
        .download = cuda_download,                                \
        .zero = cuda_zero,                                        \
        .copy = cuda_copy,                                        \
        .gemm = gemmfn,                                           \
        .gemm_batched = gemm_batched_##suffix,                    \
        .copy2d = cuda_copy2d,                                    \
        .add = cuda_add,                                          \
        .scale = cuda_scale,                                      \
        .count_nonfinite = cuda_count_nonfinite,                  \
        .embedding_forward = cuda_embedding_forward,              \
        .embedding_backward = cuda_embedding_backward,            \
        .rmsnorm_forward = cuda_rmsnorm_forward,                  \
        .rmsnorm_backward = cuda_rmsnorm_backward,                \
        .rope_forward = cuda_rope_forward,                        \
        .rope_backward = cuda_rope_backward,                      \
        .swiglu_forward = cuda_swiglu_forward,                    \
        .swiglu_backward = cuda_swiglu_backward,                  \
        .attention_forward = attf,                                \
        .attention_backward = attb,                               \
        .mla_kv_assemble_forward = cuda_mla_kv_assemble_forward,  \
        .mla_kv_assemble_backward = cuda_mla_kv_assemble_backward,\
        .moe_route_forward = cuda_moe_route_forward,              \
        .moe_route_backward = cuda_moe_route_backward,            \
        .moe_aux_forward = cuda_moe_aux_forward,                  \
        .moe_permute = cuda_moe_permute,                          \
        .moe_permute_backward = cuda_moe_permute_backward,        \
        .moe_experts_forward = experts_fwd_##suffix,              \
        .moe_experts_backward = experts_bwd_##suffix,             \
        .moe_unpermute = cuda_moe_unpermute,                      \
        .moe_unpermute_backward = cuda_moe_unpermute_backward,    \
        .lmhead_logprob_forward = lmhead_fwd_##suffix,            \
        .lmhead_logprob_backward = lmhead_bwd_##suffix,           \
        .adamw_update = ops_cuda_adamw_update,                    \
        .sumsq = ops_cuda_sumsq,                                  \
        .mla_cache_scatter = cuda_mla_cache_scatter,              \
        .mla_decode_attention = cuda_mla_decode_attention,        \
        .sample_rows = cuda_sample_rows,                          \
        .moe_experts_small = cuda_moe_small_selected,             \
        .moe_experts_small_slots = cuda_moe_small_slots,          \
        .step_enabled = cuda_step_enabled,                        \
        .step_record_begin = cuda_step_record_begin,              \
        .step_record_end = cuda_step_record_end,                  \
        .step_launch = cuda_step_launch,                          \
        .step_free = cuda_step_free,                              \
        .declare_params = cuda_declare_params,                    \
    }

// ---- routed experts of a few rows: which kernels (CRUCIBLE_CUDA_MOE_SMALL, per call) ----

enum {
    CUDA_MOE_INDEXED_SLOTS = 4096,  // indexed / auto: model.c's slot threshold
    CUDA_MOE_SLOTS_MAX = 64,        // auto: the slots kernels up to this many slots
};

// slots (moe_small.cu: each slot reads its expert), indexed (moe_indexed.cu: each selected
// expert read once) or auto (the default: slots up to CUDA_MOE_SLOTS_MAX slots, where they
// are faster — one decode row: 0.087 vs 0.117 ms on the H100 —, indexed above: 64 rows
// 1.45 ms vs 1.73 slots vs 3.86 dispatched, bench/RESULTS.md).
typedef enum { MOE_SMALL_AUTO, MOE_SMALL_SLOTS, MOE_SMALL_INDEXED } MoeSmallMode;
static MoeSmallMode moe_small_mode(void) {
    static const char *const v[3] = {"auto", "slots", "indexed"};  // in MoeSmallMode's order
    return (MoeSmallMode)cuda_env_pick("CRUCIBLE_CUDA_MOE_SMALL", v, 3);
}
static void cuda_moe_small_selected(float *y, float *h, const float *x, const int32_t *idx, const float *w,
                                    const float *Wg, const float *Wu, const float *Wd, int N, int D, int I, int K) {
    MoeSmallMode m = moe_small_mode();
    if (m == MOE_SMALL_INDEXED || (m == MOE_SMALL_AUTO && (long)N * K > CUDA_MOE_SLOTS_MAX))
        cuda_moe_experts_indexed(y, h, x, idx, w, Wg, Wu, Wd, N, D, I, K);
    else
        cuda_moe_experts_small(y, h, x, idx, w, Wg, Wu, Wd, N, D, I, K);
}
// The slots kernels alone read an expert once per slot: the caller's default threshold
// (0); with the indexed ones, good far past it.
static long cuda_moe_small_slots(void) { return moe_small_mode() == MOE_SMALL_SLOTS ? 0 : CUDA_MOE_INDEXED_SLOTS; }

static const Ops k_cuda_fp32 = OPS_TABLE("cuda", fp32, cuda_gemm_fp32, att_fwd_fp32, att_bwd_fp32);
static const Ops k_cuda_bf16 = OPS_TABLE("cuda-bf16", bf16, cuda_gemm_bf16, att_fwd_bf16, att_bwd_bf16);
static const Ops k_cuda_flash = OPS_TABLE("cuda-flash", fp32, cuda_gemm_fp32, cuda_attention_forward_flash,
                                          cuda_attention_backward_flash);
static const Ops k_cuda_bf16_wmma = OPS_TABLE("cuda-bf16-wmma", bf16, cuda_gemm_bf16, cuda_attention_forward_wmma,
                                              cuda_attention_backward_wmma);

static int cuda_usable(void) {
    if (crucible_cuda_device_count() <= 0) return 0;
    (void)cuda_ctx();  // fail early (handle, scratch) rather than inside the first op
    return 1;
}
extern "C" const Ops *ops_cuda(void) { return cuda_usable() ? &k_cuda_fp32 : NULL; }
extern "C" const Ops *ops_cuda_bf16(void) { return cuda_usable() ? &k_cuda_bf16 : NULL; }
extern "C" const Ops *ops_cuda_flash(void) { return cuda_usable() ? &k_cuda_flash : NULL; }
extern "C" const Ops *ops_cuda_bf16_wmma(void) { return cuda_usable() ? &k_cuda_bf16_wmma : NULL; }
