// model/cuda/gemv_small.cu — C = alpha A B^T + beta C for a few rows of A (M <= 8): the
// shape of every linear layer in a decode step of a handful of sequences (A: M activation
// rows, B: the [N, K] weight). One warp per output column reads its weight row once,
// coalesced (float4 when aligned), for all M rows at a time; the M x K activations stay
// in L1/L2. Why not cuBLAS: at M = 1..8 cublasGemmEx took 0.4-0.5 ms of host time per call
// on the H100 (bench/RESULTS.md, "latency" rows; a decode step makes ~190 such calls),
// while the bytes of a Lite projection take ~10 us to read.
// Deterministic: each output is one lane-strided fp32 sum followed by a fixed butterfly
// of warp shuffles; fp32 accumulation in both tables (bf16 rounding is not needed for a
// bandwidth-bound product).
// With CRUCIBLE_CUDA_DECODE_BF16=1 a weight B inside a declared parameter range is read from
// its bf16 copy (param_shadow.cuh: half the bytes); the same loop over the rounded values.

#include "model/cuda/cuda_common.cuh"
#include "model/cuda/param_shadow.cuh"
#include "model/cuda/weight_load.cuh"

#define GEMV_MAX_M 8
#define GEMV_WARPS 4  // warps (output columns) per block

template <int MM, bool VEC, typename W>
__global__ void gemv_small_kernel(float *C, int ldc, const float *A, int lda, const W *B, int ldb, int M, int N,
                                  int K, float alpha, float beta) {
    int col = blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5), lane = threadIdx.x & 31;
    if (col >= N) return;  // the whole warp leaves together
    const W *b = B + (size_t)col * ldb;
    float acc[MM];
#pragma unroll
    for (int m = 0; m < MM; m++) acc[m] = 0.0f;
    if (VEC) {
        int K4 = K >> 2;
#pragma unroll 4
        for (int k = lane; k < K4; k += 32) {
            float4 w = wload4(b, k);
#pragma unroll
            for (int m = 0; m < MM; m++)
                if (m < M) {
                    float4 a = __ldg(reinterpret_cast<const float4 *>(A + (size_t)m * lda) + k);
                    acc[m] += w.x * a.x + w.y * a.y + w.z * a.z + w.w * a.w;
                }
        }
    } else {
#pragma unroll 4
        for (int k = lane; k < K; k += 32) {
            float w = wload1(b, k);
#pragma unroll
            for (int m = 0; m < MM; m++)
                if (m < M) acc[m] += w * __ldg(A + (size_t)m * lda + k);
        }
    }
#pragma unroll
    for (int m = 0; m < MM; m++) {
        float v = acc[m];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        acc[m] = v;
    }
    if (lane == 0) {
#pragma unroll
        for (int m = 0; m < MM; m++)
            if (m < M) {
                float *c = C + (size_t)m * ldc + col;
                // beta == 0 overwrites (a NaN in C is not read), as the CPU gemm
                *c = beta == 0.0f ? alpha * acc[m] : alpha * acc[m] + beta * *c;
            }
    }
}

template <int MM, typename W>
static void launch(float *C, int ldc, const float *A, int lda, const W *B, int ldb, int M, int N, int K,
                   float alpha, float beta) {
    unsigned grid = (unsigned)((N + GEMV_WARPS - 1) / GEMV_WARPS);
    bool vec = K % 4 == 0 && lda % 4 == 0 && ((uintptr_t)A & 15) == 0 && wload4_ok(B, ldb);
    if (vec)
        gemv_small_kernel<MM, true, W>
            <<<grid, 32 * GEMV_WARPS, 0, cuda_stream()>>>(C, ldc, A, lda, B, ldb, M, N, K, alpha, beta);
    else
        gemv_small_kernel<MM, false, W>
            <<<grid, 32 * GEMV_WARPS, 0, cuda_stream()>>>(C, ldc, A, lda, B, ldb, M, N, K, alpha, beta);
    launchCheck();
}

template <typename W>
static void launch_rows(float *C, int ldc, const float *A, int lda, const W *B, int ldb, int M, int N, int K,
                        float alpha, float beta) {
    if (M == 1)
        launch<1>(C, ldc, A, lda, B, ldb, M, N, K, alpha, beta);
    else if (M == 2)
        launch<2>(C, ldc, A, lda, B, ldb, M, N, K, alpha, beta);
    else if (M <= 4)
        launch<4>(C, ldc, A, lda, B, ldb, M, N, K, alpha, beta);
    else
        launch<8>(C, ldc, A, lda, B, ldb, M, N, K, alpha, beta);
}

// CRUCIBLE_CUDA_GEMV=0 sends every GEMM to cuBLAS (the previous behaviour), read per call.
static int gemv_enabled(void) {
    static const char *const v[2] = {"1", "0"};
    return cuda_env_pick("CRUCIBLE_CUDA_GEMV", v, 2) == 0;
}

int cuda_gemv_small(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc) {
    // alpha 0: BLAS does not read A and B (an Inf there must not make NaN): left to cuBLAS
    if (transA || !transB || M < 1 || M > GEMV_MAX_M || N < 1 || K < 1 || alpha == 0.0f || !gemv_enabled()) return 0;
    const WeightBits *B16 = cuda_decode_shadow(B, (size_t)(N - 1) * (size_t)ldb + (size_t)K);
    if (B16)
        launch_rows(C, ldc, A, lda, B16, ldb, M, N, K, alpha, beta);
    else
        launch_rows(C, ldc, A, lda, B, ldb, M, N, K, alpha, beta);
    return 1;
}
