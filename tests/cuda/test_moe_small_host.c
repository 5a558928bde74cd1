/* tests/cuda/test_moe_small_host.c — runs tests/cuda/sim_moe_small.cc: the kernels of
 * model/cuda/moe_small.cu (cuda_moe_experts_small) executed as written on the CPU
 * simulator tests/cuda/sim/cuda_sim.h (one OS thread per CUDA thread, barriers for
 * __syncthreads and the warp shuffles, launch limits checked), against a naive
 * double-precision reference: N 1 and 5, K 2..6, E 8, the float4 and scalar paths of both
 * kernels, misaligned weights, and D above the 48 KiB staging limit. Built with g++ and
 * AddressSanitizer + UBSan into the test's temporary folder; under `make check-all` also
 * with ThreadSanitizer (a missing barrier is a reported race). SKIPs without g++ or the
 * CUDA headers. Not seen here: real GPU timing, caching and memory model (the GPU test is
 * tests/cuda/test_moe_small_cuda.c). */
#include "tests/test.h"

#include <stdlib.h>

#include "tests/cuda/sim_host.h"

TEST(cuda_moe_small_host) {
    if (!sim_host_cuda_include()) SKIP("no CUDA headers: the simulated moe_small kernels NOT run");
    if (!sim_host_have_gxx()) SKIP("no g++: the simulated moe_small kernels NOT run");
    char *dir = test_tmpdir();
    const char *runs[] = {"", "big", NULL}, *tsan_runs[] = {"", NULL};
    int failed = sim_host_check(dir, "tests/cuda/sim_moe_small.cc", "model/cuda/moe_small.cu", NULL, NULL, runs,
                                tsan_runs);
    CHECKF(failed == 0, "%d simulated build(s) or run(s) failed", failed);
    free(dir);
}
