// model/cuda/mla.cu — MLA key/value assembly (spec §4.2 step 4) and its backward: the
// rotary key shared by all heads collects the heads' gradients, summed h = 0..H-1.
#include "model/cuda/cuda_ops.cuh"

__global__ void mla_kv_assemble_forward_kernel(float *K, float *V, const float *kv, const float *kpe, int ldkpe,
                                               int N, int H, int dn, int dr, int dv) {
    int dqk = dn + dr, dkv = dn + dv, w = dqk + dv;
    size_t total = (size_t)N * H * w;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t nh = t / w;
        int c = (int)(t % w), n = (int)(nh / H);
        const float *src = kv + nh * dkv;
        if (c < dn) K[nh * dqk + c] = src[c];
        else if (c < dqk) K[nh * dqk + c] = kpe[(size_t)n * ldkpe + (c - dn)];
        else V[nh * dv + (c - dqk)] = src[dn + (c - dqk)];
    }
}

__global__ void mla_kv_assemble_backward_kernel(float *dkv, const float *dK, const float *dV, int N, int H, int dn,
                                                int dr, int dv) {
    int dqk = dn + dr, dkv_w = dn + dv;
    size_t total = (size_t)N * H * dkv_w;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        size_t nh = t / dkv_w;
        int c = (int)(t % dkv_w);
        dkv[t] = c < dn ? dK[nh * dqk + c] : dV[nh * dv + (c - dn)];
    }
}
__global__ void mla_kpe_grad_kernel(float *dkpe, int ldkpe, const float *dK, int N, int H, int dn, int dr) {
    int dqk = dn + dr;
    size_t total = (size_t)N * dr;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        int n = (int)(t / dr), i = (int)(t % dr);
        float s = 0;
        for (int h = 0; h < H; h++) s += dK[((size_t)n * H + h) * dqk + dn + i];
        dkpe[(size_t)n * ldkpe + i] = s;
    }
}

void cuda_mla_kv_assemble_forward(float *K, float *V, const float *kv, const float *kpe, int ldkpe, int N, int H,
                                  int dn, int dr, int dv) {
    if (N <= 0 || H <= 0) return;
    mla_kv_assemble_forward_kernel<<<grid_for((size_t)N * H * (dn + dr + dv)), CUDA_THREADS, 0, cuda_stream()>>>(
        K, V, kv, kpe, ldkpe, N, H, dn, dr, dv);
    launchCheck();
}

void cuda_mla_kv_assemble_backward(float *dkv, float *dkpe, int ldkpe, const float *dK, const float *dV, int N,
                                   int H, int dn, int dr, int dv) {
    if (N <= 0 || H <= 0) return;
    mla_kv_assemble_backward_kernel<<<grid_for((size_t)N * H * (dn + dv)), CUDA_THREADS, 0, cuda_stream()>>>(
        dkv, dK, dV, N, H, dn, dr, dv);
    launchCheck();
    if (dr > 0) {
        mla_kpe_grad_kernel<<<grid_for((size_t)N * dr), CUDA_THREADS, 0, cuda_stream()>>>(dkpe, ldkpe, dK, N, H, dn,
                                                                                          dr);
        launchCheck();
    }
}
