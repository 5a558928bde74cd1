/* tests/cuda/test_experts_grouped_host.c — runs tests/cuda/mock_moe_grouped.cu: the host
 * side of model/cuda/moe_grouped.cu (GEMM lists, grouped-call groups and pointer arrays,
 * column-major mapping, stream assignment, fallbacks) against the per-expert spec with
 * cuBLAS and the CUDA runtime mocked on the CPU, so it runs without a GPU. Built here with
 * nvcc into the test's temporary folder (a few seconds); SKIPs when nvcc or the sources
 * are not there (e.g. on the lent GPU machines, which run the real thing in
 * test_experts_grouped_cuda.c). Three runs: cuBLAS's documented behaviour (no grouped
 * GEMM for FAST_16BF), a cuBLAS that would accept it (MOCK_16BF_OK=1), and 7 side streams
 * instead of 4 (CRUCIBLE_CUDA_EXPERT_STREAMS=7). */
#include "tests/test.h"
#include "tests/cuda/sim_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

TEST(cuda_experts_grouped_host) {
    const char *nvcc = sim_host_nvcc();
    if (!nvcc) SKIP("no nvcc: the mocked host-side check of model/cuda/moe_grouped.cu not run");
    if (access("tests/cuda/mock_moe_grouped.cu", R_OK) != 0 || access("model/cuda/moe_grouped.cu", R_OK) != 0)
        SKIP("sources not found from the working directory: mocked host-side check not run");
    char *dir = test_tmpdir(), cmd[1400];
    snprintf(cmd, sizeof cmd, "'%s' -std=c++17 -I. -o '%s/mock_moe_grouped' tests/cuda/mock_moe_grouped.cu 2>&1", nvcc,
             dir);
    int built = sim_host_run(cmd, NULL);
    CHECKF(built, "nvcc could not build tests/cuda/mock_moe_grouped.cu");
    if (built) {
        snprintf(cmd, sizeof cmd, "'%s/mock_moe_grouped' 2>&1", dir);
        CHECKF(sim_host_run(cmd, "all ok"), "mocked moe_grouped (cuBLAS without grouped FAST_16BF) failed");
        snprintf(cmd, sizeof cmd, "MOCK_16BF_OK=1 '%s/mock_moe_grouped' 2>&1", dir);
        CHECKF(sim_host_run(cmd, "all ok"), "mocked moe_grouped (grouped FAST_16BF accepted) failed");
        snprintf(cmd, sizeof cmd, "CRUCIBLE_CUDA_EXPERT_STREAMS=7 '%s/mock_moe_grouped' 2>&1", dir);
        CHECKF(sim_host_run(cmd, "all ok"), "mocked moe_grouped on 7 side streams failed");
    }
    free(dir);
}
