// model/cuda/device.cu — CUDA runtime presence: how many devices this process sees.
// Compiled and linked whenever nvcc is found so that the CUDA build path is always
// exercised in CI, even on machines without a GPU.
#include <cuda_runtime.h>

extern "C" int crucible_cuda_device_count(void) {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) return 0;  // no driver / no GPU: CPU path
    return n;
}
