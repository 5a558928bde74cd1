// model/cuda/embedding.cu — token embedding gather and its deterministic scatter-add.
#include "model/cuda/cuda_ops.cuh"

__global__ void embedding_forward_kernel(float *out, const float *table, const int32_t *tokens, int N, int D) {
    size_t total = (size_t)N * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t t = i / D, c = i % D;
        out[i] = table[(size_t)tokens[t] * D + c];
    }
}

// One thread per column walks the tokens in order t = 0..N-1, as the CPU does: a token
// repeated in the batch is summed in the same order, with no atomics.
__global__ void embedding_backward_kernel(float *dtable, const float *dout, const int32_t *tokens, int N, int D) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= D) return;
    for (int t = 0; t < N; t++) dtable[(size_t)tokens[t] * D + c] += dout[(size_t)t * D + c];
}

void cuda_embedding_forward(float *out, const float *table, const int32_t *tokens, int N, int D) {
    if (N <= 0 || D <= 0) return;
    embedding_forward_kernel<<<grid_for((size_t)N * D), CUDA_THREADS, 0, cuda_stream()>>>(out, table, tokens, N, D);
    launchCheck();
}

void cuda_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int N, int D) {
    if (N <= 0 || D <= 0) return;
    embedding_backward_kernel<<<(D + 127) / 128, 128, 0, cuda_stream()>>>(dtable, dout, tokens, N, D);
    launchCheck();
}
