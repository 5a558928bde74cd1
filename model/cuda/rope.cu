// model/cuda/rope.cu — rotary embedding on interleaved pairs (2i, 2i+1) (spec §5.3), in
// place on strided heads; the angle fp32(pos) * inv_freq[i] is rounded to fp32 before
// cos/sin, as on the CPU. Backward rotates by -angle (the transpose).
#include "model/cuda/cuda_ops.cuh"

__global__ void rope_kernel(float *x, int ld, int head_stride, int n_heads, int N, int half, const int32_t *pos,
                            const float *inv_freq, float cs_factor, float sign) {
    size_t total = (size_t)N * half;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total; t += (size_t)gridDim.x * blockDim.x) {
        int n = (int)(t / half), i = (int)(t % half);
        float ang = (float)pos[n] * inv_freq[i];
        float c = cosf(ang) * cs_factor, s = sign * sinf(ang) * cs_factor;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (size_t)n * ld + (size_t)h * head_stride + 2 * i;
            float a = v[0], b = v[1];
            v[0] = a * c - b * s;
            v[1] = a * s + b * c;
        }
    }
}

static void rope(float *x, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos,
                 const float *inv_freq, float cs_factor, float sign) {
    if (N <= 0 || dr < 2) return;
    rope_kernel<<<grid_for((size_t)N * (dr / 2)), CUDA_THREADS, 0, cuda_stream()>>>(
        x, ld, head_stride, n_heads, N, dr / 2, pos, inv_freq, cs_factor, sign);
    launchCheck();
}

void cuda_rope_forward(float *x, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos,
                       const float *inv_freq, float cs_factor) {
    rope(x, ld, head_stride, n_heads, N, dr, pos, inv_freq, cs_factor, 1.0f);
}
void cuda_rope_backward(float *dx, int ld, int head_stride, int n_heads, int N, int dr, const int32_t *pos,
                        const float *inv_freq, float cs_factor) {
    rope(dx, ld, head_stride, n_heads, N, dr, pos, inv_freq, cs_factor, -1.0f);
}
