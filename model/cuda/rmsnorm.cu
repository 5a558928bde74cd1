// model/cuda/rmsnorm.cu — RMSNorm forward/backward over strided rows (spec §3.2, §7.3).
// One block per row; the weight gradient is a two-stage column sum (fixed row chunks,
// then the chunks in order), so it is deterministic without atomics.
#include "model/cuda/cuda_ops.cuh"

__global__ void rmsnorm_forward_kernel(float *out, int ldo, float *rstd, const float *x, int ldx, const float *w,
                                       int D, float eps) {
    __shared__ float sh[32];
    int n = blockIdx.x;
    const float *xr = x + (size_t)n * ldx;
    float ss = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, sh);
    float r = 1.0f / sqrtf(ss / D + eps);
    if (threadIdx.x == 0) rstd[n] = r;
    float *o = out + (size_t)n * ldo;
    for (int i = threadIdx.x; i < D; i += blockDim.x) o[i] = w[i] * (xr[i] * r);
}

__global__ void rmsnorm_backward_dx_kernel(float *dx, int lddx, const float *dout, int lddo, const float *x,
                                           int ldx, const float *w, const float *rstd, int D) {
    __shared__ float sh[32];
    int n = blockIdx.x;
    const float *xr = x + (size_t)n * ldx, *g = dout + (size_t)n * lddo;
    float r = rstd[n], dot = 0;
    for (int i = threadIdx.x; i < D; i += blockDim.x) dot += g[i] * w[i] * xr[i];
    dot = block_sum(dot, sh) * (r / D);
    float *d = dx + (size_t)n * lddx;
    for (int i = threadIdx.x; i < D; i += blockDim.x) d[i] += r * (g[i] * w[i] - xr[i] * r * dot);
}

// part[chunk, c] = sum over the chunk's rows (in order) of dout * x * rstd.
__global__ void rmsnorm_dw_partial_kernel(float *part, const float *dout, int lddo, const float *x, int ldx,
                                          const float *rstd, int N, int D, int rows_per_chunk) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, ch = blockIdx.y;
    if (c >= D) return;
    int n0 = ch * rows_per_chunk, n1 = min(N, n0 + rows_per_chunk);
    float s = 0;
    for (int n = n0; n < n1; n++) s += dout[(size_t)n * lddo + c] * x[(size_t)n * ldx + c] * rstd[n];
    part[(size_t)ch * D + c] = s;
}
__global__ void column_chunks_add_kernel(float *dw, const float *part, int chunks, int D) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= D) return;
    float s = 0;
    for (int ch = 0; ch < chunks; ch++) s += part[(size_t)ch * D + c];
    dw[c] += s;
}

void cuda_rmsnorm_forward(float *out, int ldo, float *rstd, const float *x, int ldx, const float *w, int N,
                          int D, float eps) {
    if (N <= 0) return;
    rmsnorm_forward_kernel<<<N, CUDA_THREADS, 0, cuda_stream()>>>(out, ldo, rstd, x, ldx, w, D, eps);
    launchCheck();
}

void cuda_rmsnorm_backward(float *dx, int lddx, float *dw, const float *dout, int lddo, const float *x,
                           int ldx, const float *w, const float *rstd, int N, int D) {
    if (N <= 0 || D <= 0) return;
    // Chunk count depends only on (N, D): same shapes, same summation order.
    int max_chunks = (int)((CUDA_SCRATCH_BYTES / sizeof(float)) / (size_t)D);
    int chunks = N < 64 ? N : 64;
    if (chunks > max_chunks) chunks = max_chunks;
    if (chunks < 1) cuda_fail("rmsnorm_backward", "D too large for the scratch buffer", __FILE__, __LINE__);
    int rows = (N + chunks - 1) / chunks;
    chunks = (N + rows - 1) / rows;
    float *part = (float *)cuda_ctx()->scratch;
    dim3 g((D + 127) / 128, chunks);
    rmsnorm_dw_partial_kernel<<<g, 128, 0, cuda_stream()>>>(part, dout, lddo, x, ldx, rstd, N, D, rows);
    launchCheck();
    column_chunks_add_kernel<<<(D + 127) / 128, 128, 0, cuda_stream()>>>(dw, part, chunks, D);
    launchCheck();
    rmsnorm_backward_dx_kernel<<<N, CUDA_THREADS, 0, cuda_stream()>>>(dx, lddx, dout, lddo, x, ldx, w, rstd, D);
    launchCheck();
}
