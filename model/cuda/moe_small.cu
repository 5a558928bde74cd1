// model/cuda/moe_small.cu — Ops.moe_experts_small on the GPU: the routed experts of a few
// rows (rollout decode) in two kernels, with no sort by expert, no offsets on the host and
// so no host synchronisation. model/cpu/moe_small.c is the specification.
//
//  (1) up:   block (slot s, chunk of UP_ROWS rows of I). x[s/K] is staged in shared
//            memory; each warp takes rows i of the chunk and forms <Wg_e[i], x> and
//            <Wu_e[i], x> together, then h[s,i] = silu(g) u.
//  (2) down: block (row n, chunk of DOWN_ROWS outputs of D). Each warp takes outputs d and
//            sums, k = 0..K-1 in order, w[n,k] <Wd_ek[d], h[n*K+k]>.
// A dot product is one warp's: lane j reads elements (float4 groups where the rows are
// 16-byte aligned) j, j+32, ... in order — coalesced reads of each weight row, read once
// per slot —, and the 32 partial sums meet in a fixed xor-shuffle tree (warp_sum). No
// atomics: a result depends only on the shapes and inputs.
// With CRUCIBLE_CUDA_DECODE_BF16=1 the weights of a declared parameter range are read from
// its bf16 copy (param_shadow.cuh; weight_load.cuh: the same loops on the rounded values).
#include "model/cuda/cuda_ops.cuh"
#include "model/cuda/param_shadow.cuh"
#include "model/cuda/weight_load.cuh"

#include <stdint.h>

enum {
    SMALL_THREADS = 256,
    SMALL_WARPS = SMALL_THREADS / 32,
    UP_ROWS = 2 * SMALL_WARPS,  // two rows of Wg and Wu per warp: x is staged once per 16 rows
    DOWN_ROWS = SMALL_WARPS,    // one output per warp: for N = 1, D 2048 still 256 blocks
    SMALL_SMEM_MAX = 48 * 1024, // x larger than this (D > 12288) is read from global memory
    GRID_Y_MAX = 65535,
};

// Lane `lane`'s partial sums of <a, x> and <b, x> over n floats (VEC: n % 4 == 0, x 16-byte
// aligned, a and b as wload4_ok says; a, b are read once and bypass L1).
template <bool VEC, typename W>
__device__ __forceinline__ void dot2_part(const W *__restrict__ a, const W *__restrict__ b, const float *x, int n,
                                          int lane, float *pa, float *pb) {
    float sa = 0.0f, sb = 0.0f;
    if (VEC) {
        const float4 *x4 = (const float4 *)x;
#pragma unroll 4
        for (int j = lane; j < (n >> 2); j += 32) {
            float4 p = wload4(a, j), q = wload4(b, j), v = x4[j];
            sa = fmaf(p.x, v.x, sa), sb = fmaf(q.x, v.x, sb);
            sa = fmaf(p.y, v.y, sa), sb = fmaf(q.y, v.y, sb);
            sa = fmaf(p.z, v.z, sa), sb = fmaf(q.z, v.z, sb);
            sa = fmaf(p.w, v.w, sa), sb = fmaf(q.w, v.w, sb);
        }
    } else {
#pragma unroll 4
        for (int j = lane; j < n; j += 32) {
            float v = x[j];
            sa = fmaf(wload1(a, j), v, sa), sb = fmaf(wload1(b, j), v, sb);
        }
    }
    *pa = sa, *pb = sb;
}

template <bool VEC, typename W>
__device__ __forceinline__ float dot_part(const W *__restrict__ a, const float *x, int n, int lane) {
    float s = 0.0f;
    if (VEC) {
        const float4 *x4 = (const float4 *)x;
#pragma unroll 4
        for (int j = lane; j < (n >> 2); j += 32) {
            float4 p = wload4(a, j), v = x4[j];
            s = fmaf(p.x, v.x, s);
            s = fmaf(p.y, v.y, s);
            s = fmaf(p.z, v.z, s);
            s = fmaf(p.w, v.w, s);
        }
    } else {
#pragma unroll 4
        for (int j = lane; j < n; j += 32) s = fmaf(wload1(a, j), x[j], s);
    }
    return s;
}

// h[s, i] = silu(<Wg_e[i], x[s/K]>) <Wu_e[i], x[s/K]>, e = idx[s]; grid (S, ceil(I / UP_ROWS)).
template <bool VEC, typename W>
__global__ void __launch_bounds__(SMALL_THREADS)
    moe_small_up_kernel(float *h, const float *x, const int32_t *idx, const W *Wg, const W *Wu, int D, int I, int K,
                        int stage_x) {
    extern __shared__ float4 smem4[];  // float4: the staged row is 16-byte aligned
    int s = blockIdx.x, i0 = blockIdx.y * UP_ROWS, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const float *xn = x + (size_t)(s / K) * D;
    if (stage_x) {  // uniform over the block
        float *xs = (float *)smem4;
        for (int j = threadIdx.x; j < D; j += SMALL_THREADS) xs[j] = xn[j];
        __syncthreads();
        xn = xs;
    }
    size_t e = (size_t)idx[s];
    int i1 = min(I, i0 + UP_ROWS);
    for (int i = i0 + warp; i < i1; i += SMALL_WARPS) {
        size_t row = (e * I + i) * (size_t)D;
        float g, u;
        dot2_part<VEC>(Wg + row, Wu + row, xn, D, lane, &g, &u);
        g = warp_sum(g);
        u = warp_sum(u);
        if (lane == 0) h[(size_t)s * I + i] = g / (1.0f + expf(-g)) * u;  // as cpu_swiglu_forward
    }
}

// y[n, d] = sum_k w[n*K+k] <Wd_e[d], h[n*K+k]>, k in order; grid (N, ceil(D / DOWN_ROWS)).
// h rows are re-read by the block's warps: they stay in L1/L2 (K x I floats per row n).
template <bool VEC, typename W>
__global__ void __launch_bounds__(SMALL_THREADS)
    moe_small_down_kernel(float *y, const float *h, const int32_t *idx, const float *w, const W *Wd, int D, int I,
                          int K) {
    int n = blockIdx.x, d0 = blockIdx.y * DOWN_ROWS, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int d1 = min(D, d0 + DOWN_ROWS);
    for (int d = d0 + warp; d < d1; d += SMALL_WARPS) {
        float acc = 0.0f;
        for (int k = 0; k < K; k++) {
            size_t s = (size_t)n * K + k, e = (size_t)idx[s];
            float p = warp_sum(dot_part<VEC>(Wd + (e * D + d) * (size_t)I, h + s * I, I, lane));
            acc += w[s] * p;
        }
        if (lane == 0) y[(size_t)n * D + d] = acc;
    }
}

static int aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

template <typename W>
static void launch_small(float *y, float *h, const float *x, const int32_t *idx, const float *w, const W *Wg,
                         const W *Wu, const W *Wd, int N, int D, int I, int K, int up_chunks, int down_chunks) {
    long long S = (long long)N * K;
    size_t xbytes = sizeof(float) * (size_t)D;
    int stage_x = xbytes <= SMALL_SMEM_MAX;
    // x's rows are 16-byte aligned when x is and D % 4 == 0; staged, the copy is.
    int vec_up = wload4_ok(Wg, D) && wload4_ok(Wu, D) && (stage_x || aligned16(x));
    dim3 gu((unsigned)S, (unsigned)up_chunks);
    size_t smem = stage_x ? xbytes : 0;
    if (vec_up)
        moe_small_up_kernel<true, W><<<gu, SMALL_THREADS, smem, cuda_stream()>>>(h, x, idx, Wg, Wu, D, I, K, stage_x);
    else
        moe_small_up_kernel<false, W><<<gu, SMALL_THREADS, smem, cuda_stream()>>>(h, x, idx, Wg, Wu, D, I, K, stage_x);
    launchCheck();
    int vec_down = wload4_ok(Wd, I) && aligned16(h);
    dim3 gd((unsigned)N, (unsigned)down_chunks);
    if (vec_down)
        moe_small_down_kernel<true, W><<<gd, SMALL_THREADS, 0, cuda_stream()>>>(y, h, idx, w, Wd, D, I, K);
    else
        moe_small_down_kernel<false, W><<<gd, SMALL_THREADS, 0, cuda_stream()>>>(y, h, idx, w, Wd, D, I, K);
    launchCheck();
}

void cuda_moe_experts_small(float *y, float *h, const float *x, const int32_t *idx, const float *w, const float *Wg,
                            const float *Wu, const float *Wd, int N, int D, int I, int K) {
    if (N <= 0 || D <= 0) return;
    if (K <= 0 || I <= 0) {  // an empty sum
        cudaCheck(cudaMemsetAsync(y, 0, sizeof(float) * (size_t)N * D, cuda_stream()));
        return;
    }
    long long S = (long long)N * K;
    int up_chunks = (I + UP_ROWS - 1) / UP_ROWS, down_chunks = (D + DOWN_ROWS - 1) / DOWN_ROWS;
    if (S > INT32_MAX || up_chunks > GRID_Y_MAX || down_chunks > GRID_Y_MAX)
        cuda_fail("moe_experts_small", "too many slots, or I or D too large for the grid", __FILE__, __LINE__);
    const WeightBits *g16, *u16, *d16;  // bf16 copies (CRUCIBLE_CUDA_DECODE_BF16)
    if (cuda_decode_shadow_experts(Wg, Wu, Wd, I, D, &g16, &u16, &d16))
        launch_small(y, h, x, idx, w, g16, u16, d16, N, D, I, K, up_chunks, down_chunks);
    else
        launch_small(y, h, x, idx, w, Wg, Wu, Wd, N, D, I, K, up_chunks, down_chunks);
}
