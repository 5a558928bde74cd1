// model/cuda/cuda_common.cuh — what every CUDA op file shares (private to model/cuda/).
// Defines: cudaCheck, cublasCheck, launchCheck, cuda_ctx (the backend's one cuBLAS
// handle and small scratch), grid_for, block_reduce_sum/max, seq_of_token, CUDA_THREADS.
#ifndef CRUCIBLE_MODEL_CUDA_COMMON_CUH
#define CRUCIBLE_MODEL_CUDA_COMMON_CUH

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/cuda/ops_cuda.h"

void cuda_fail(const char *what, const char *msg, const char *file, int line);
#define cudaCheck(call)                                                               \
    do {                                                                              \
        cudaError_t err_ = (call);                                                    \
        if (err_ != cudaSuccess) cuda_fail(#call, cudaGetErrorString(err_), __FILE__, __LINE__); \
    } while (0)
#define cublasCheck(call)                                                             \
    do {                                                                              \
        cublasStatus_t st_ = (call);                                                  \
        if (st_ != CUBLAS_STATUS_SUCCESS) cuda_fail(#call, cublasGetStatusString(st_), __FILE__, __LINE__); \
    } while (0)
// After every kernel launch: configuration errors surface here, not later.
#define launchCheck() cudaCheck(cudaGetLastError())

enum { CUDA_THREADS = 256, CUDA_SCRATCH_BYTES = 1 << 20 };

// The backend's state, created on first use and kept for the process lifetime.
typedef struct CudaCtx {
    cublasHandle_t blas;
    void *scratch;  // CUDA_SCRATCH_BYTES of device memory for small partial results
    int n_sm;
    void *big;        // grown on demand (attention score chunks); never shrinks
    size_t big_bytes;
    // The stream every op of the backend issues its work to: the legacy default stream
    // (0), except while a step is being recorded (model/cuda/graph.cu), when it is the
    // recording stream and cuBLAS is set to it too.
    cudaStream_t stream;
    // Incremented by every device allocation, free or scratch growth: a recorded step
    // (its pointers baked in) is only replayed at the epoch it was recorded in.
    unsigned long epoch;
    cudaStream_t rec;         // the recording stream (created on first use) and the epoch
    unsigned long rec_epoch;  // when the current recording began (model/cuda/graph.cu)
    // Work an allocation or free asked for while a step was being recorded, which may not
    // run inside a capture (a legacy-stream memset, a synchronising cudaFree): done when
    // the recording ends (the recording is dropped: the epoch moved).
    struct { void *p; size_t bytes; int is_free; } rec_defer[16];
    int n_rec_defer;
    // cuBLAS workspace of the context's handle (cuda_blas_workspace), and the size every
    // handle of the backend gets (CRUCIBLE_CUDA_CUBLAS_WORKSPACE_MIB, read at creation).
    void *blas_ws;
    size_t blas_ws_bytes;
} CudaCtx;
// 1 while a step is being recorded (the backend's work goes to the capture stream).
static inline int cuda_recording(const CudaCtx *c) { return c->rec && c->stream == c->rec; }
// While recording: queue a zero-fill (is_free 0) or a free (1) for the end of the recording.
void cuda_defer(CudaCtx *c, void *p, size_t bytes, int is_free);
CudaCtx *cuda_ctx(void);
// Gives cuBLAS handle h a workspace of its own: ctx->blas_ws_bytes of device memory,
// allocated into *ws on the first call (0 bytes: h keeps cuBLAS's own pool). Call again
// after every cublasSetStream on h, which resets the workspace to that pool. Why: with a
// set workspace cuBLAS allocates nothing per call or per captured graph, and handles whose
// GEMMs may run at once (the side streams) must not share one.
void cuda_blas_workspace(cublasHandle_t h, void **ws);
// The stream of the backend's work (CudaCtx.stream).
cudaStream_t cuda_stream(void);
// At least `bytes` of device scratch owned by the context (valid until the next call).
void *cuda_big_scratch(size_t bytes);
// Strided-batched row-major gemm: for b < batch, C_b = alpha op(A_b) op(B_b) + beta C_b
// with X_b = X + b * strideX (cblas row-major semantics per batch entry).
void cuda_gemm_batched(cublasComputeType_t ct, int transA, int transB, int M, int N, int K, float alpha,
                       const float *A, int lda, long long strideA, const float *B, int ldb, long long strideB,
                       float beta, float *C, int ldc, long long strideC, int batch);

// Row-major gemm (cblas semantics) with a chosen cuBLAS compute type.
void cuda_gemm_ex(cublasComputeType_t ct, int transA, int transB, int M, int N, int K, float alpha,
                  const float *A, int lda, const float *B, int ldb, float beta, float *C, int ldc);
// C = alpha A B^T + beta C on the GPU's own kernel when A has 1..8 rows (model/cuda/
// gemv_small.cu; transA = 0, transB = 1, K > 0, CRUCIBLE_CUDA_GEMV not 0): returns 1 when
// it ran, 0 to leave the product to cuBLAS.
int cuda_gemv_small(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc);
// The fp32 gemm used by composite ops of the fp32 table and the bf16 table alike is
// selected through this pointer-free helper: composite ops take the table's gemm.
typedef void (*GemmFn)(int, int, int, int, int, float, const float *, int, const float *, int, float,
                       float *, int);

// A backend switch read from the environment on every call: the index of its value in
// names[0..n) (unset or empty: 0, the default); another value is a fatal error that names
// the variable and its values ("must be a, b or c").
static inline int cuda_env_pick(const char *var, const char *const *names, int n) {
    const char *v = getenv(var);
    if (!v || !*v) return 0;
    for (int i = 0; i < n; i++)
        if (!strcmp(v, names[i])) return i;
    char msg[160];
    int k = snprintf(msg, sizeof msg, "must be");
    for (int i = 0; i < n && k > 0 && (size_t)k < sizeof msg; i++)
        k += snprintf(msg + k, sizeof msg - (size_t)k, "%s%s", i == 0 ? " " : i == n - 1 ? " or " : ", ", names[i]);
    cuda_fail(var, msg, __FILE__, __LINE__);
    return 0;
}

static inline unsigned grid_for(size_t n, unsigned threads = CUDA_THREADS) {
    size_t g = (n + threads - 1) / threads;
    if (g > 65535u * 16u) g = 65535u * 16u;  // grid-stride loops cover the rest
    return g ? (unsigned)g : 1u;
}

// Block-wide sum / max (blockDim.x a multiple of 32, <= 1024); every thread gets the
// result. Fixed shuffle tree: deterministic.
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
__device__ __forceinline__ float block_sum(float v, float *sh /* [32] */) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : 0.0f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float *sh /* [32] */) {
    int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[w] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : -INFINITY;
    return warp_max(v);
}

// Sequence s with cu[s] <= n < cu[s+1] (binary search over n_seqs+1 boundaries).
__device__ __forceinline__ int seq_of_token(const int32_t *cu, int n_seqs, int n) {
    int lo = 0, hi = n_seqs - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) >> 1;
        if (cu[mid] <= n) lo = mid; else hi = mid - 1;
    }
    return lo;
}

#endif
