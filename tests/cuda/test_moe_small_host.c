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

#include <stdio.h>
#include <stdlib.h>

#include "tests/cuda/sim_host.h"

TEST(cuda_moe_small_host) {
    if (!sim_host_cuda_include()) SKIP("no CUDA headers: the simulated moe_small kernels not run");
    if (!sim_host_have_gxx()) SKIP("no g++: the simulated moe_small kernels not run");
    char *dir = test_tmpdir(), cmd[1200];
    const char *cc = "tests/cuda/sim_moe_small.cc", *cu = "model/cuda/moe_small.cu";
    int built = sim_host_build(dir, "sim_asan", cc, cu, NULL, "address,undefined");
    CHECKF(built, "could not build %s with %s", cc, cu);
    if (built) {
        snprintf(cmd, sizeof cmd, "'%s/sim_asan' 2>&1", dir);
        CHECKF(sim_host_run(cmd, "all ok"), "simulated moe_small (small shapes) failed");
        snprintf(cmd, sizeof cmd, "'%s/sim_asan' big 2>&1", dir);
        CHECKF(sim_host_run(cmd, "all ok"), "simulated moe_small (D above the staging limit) failed");
    }
    if (test_check_all()) {
        int tb = sim_host_build(dir, "sim_tsan", cc, cu, NULL, "thread");
        CHECKF(tb, "could not build %s under ThreadSanitizer", cc);
        snprintf(cmd, sizeof cmd, "'%s/sim_tsan' 2>&1", dir);
        if (tb) CHECKF(sim_host_run(cmd, "all ok"), "simulated moe_small under ThreadSanitizer failed");
    } else {
        fprintf(stderr, "    (ThreadSanitizer run only under make check-all)\n");
    }
    free(dir);
}
