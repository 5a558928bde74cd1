// model/cuda/bf16_convert.cu — the fp32 -> bf16 conversion kernel of model/cuda/bf16_round.cuh
// (the parameter shadows and GEMM operands of model/cuda/param_shadow.cu). A grid-stride
// loop over the compact output: consecutive threads write consecutive bf16 values and read
// consecutive floats of a row, so both sides coalesce.
#include "model/cuda/bf16_round.cuh"
#include "model/cuda/cuda_common.cuh"

__global__ void to_bf16_2d_kernel(uint16_t *dst, const float *src, size_t n, size_t cols, size_t ld) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        bf16_convert_elem(dst, src, i, cols, ld);
}

void cuda_to_bf16_2d(uint16_t *dst, const float *src, size_t rows, size_t cols, size_t ld) {
    size_t n = rows * cols;
    if (!n) return;
    to_bf16_2d_kernel<<<grid_for(n), CUDA_THREADS, 0, cuda_stream()>>>(dst, src, n, cols, ld);
    launchCheck();
}
