// model/cuda/attention_delta.cuh — the first kernel of an attention backward, shared by the
// cuBLAS path (attention_gemm.cu) and the wmma flash path (attention_wmma.cu):
// D[n, h] = <dO[n,h,:], O[n,h,:]>, one warp per (n, h), lanes over dv then a fixed
// shuffle tree (deterministic). Private to model/cuda/; static, so each includer has its own.
#ifndef CRUCIBLE_MODEL_CUDA_ATTENTION_DELTA_CUH
#define CRUCIBLE_MODEL_CUDA_ATTENTION_DELTA_CUH

#include "model/cuda/cuda_common.cuh"

static __global__ void attention_delta_kernel(float *Dd, const float *dO, const float *O, long long NH, int dv) {
    long long w = (long long)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
    int lane = threadIdx.x & 31;
    if (w >= NH) return;  // uniform over a warp: its shuffles below see all 32 lanes
    const float *x = dO + (size_t)w * dv, *y = O + (size_t)w * dv;
    float s = 0;
    for (int i = lane; i < dv; i += 32) s += x[i] * y[i];
    s = warp_sum(s);
    if (lane == 0) Dd[w] = s;
}

#endif
