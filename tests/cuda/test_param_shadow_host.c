/* tests/cuda/test_param_shadow_host.c — runs tests/cuda/mock_param_shadow.cu: the bf16
 * parameter shadows of model/cuda/param_shadow.cu (registry, dirty tracking over adjacent
 * ranges and GEMM outputs, one refresh per AdamW step, freed ranges forgotten, the size
 * rule, the CRUCIBLE_CUDA_BF16_WEIGHTS switch) and their GEMM route (which operand reads
 * the shadow, the compact stride of the converted activation, the column-major mapping,
 * bf16 x bf16 -> fp32 types) against a naive row-major GEMM on bf16-rounded inputs for
 * all four transpose cases, and the fp32 -> bf16 rounding of model/cuda/bf16_round.cuh
 * against hand-derived bit patterns and cuda_bf16.h's __float2bfloat16_rn, with cuBLAS
 * and the CUDA runtime mocked on the CPU. Built here with nvcc into the test's temporary
 * folder; SKIPs when nvcc or the sources are not there (the GPU run is
 * tests/cuda/test_param_shadow_cuda.c). */
#include "tests/test.h"
#include "tests/cuda/sim_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TEST(cuda_param_shadow_host) {
    const char *nvcc = sim_host_nvcc();
    if (!nvcc) SKIP("no nvcc: the mocked host-side check of model/cuda/param_shadow.cu not run");
    if (access("tests/cuda/mock_param_shadow.cu", R_OK) != 0 || access("model/cuda/param_shadow.cu", R_OK) != 0)
        SKIP("sources not found from the working directory: mocked host-side check not run");
    char *dir = test_tmpdir(), cmd[1400];
    snprintf(cmd, sizeof cmd, "'%s' -std=c++17 -I. -o '%s/mock_param_shadow' tests/cuda/mock_param_shadow.cu 2>&1",
             nvcc, dir);
    int built = sim_host_run(cmd, NULL);
    CHECKF(built, "nvcc could not build tests/cuda/mock_param_shadow.cu");
    if (built) {
        snprintf(cmd, sizeof cmd, "'%s/mock_param_shadow' 2>&1", dir);
        CHECKF(sim_host_run(cmd, "all ok"), "mocked param_shadow checks failed");
    }
    free(dir);
}
