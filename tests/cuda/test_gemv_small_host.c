/* tests/cuda/test_gemv_small_host.c — runs tests/cuda/sim_gemv_small.cc: the kernel of
 * model/cuda/gemv_small.cu (the CUDA backend's GEMM for 1..8 rows, a decode step's
 * linear layers) executed as written on the CPU simulator tests/cuda/sim/cuda_sim.h,
 * against a double-precision reference: every M 1..8, float4 and scalar paths, strides,
 * misaligned B, beta 0 over a NaN C, C's padding untouched, and the shapes it leaves to
 * cuBLAS. Built with g++ and AddressSanitizer + UBSan; under `make check-all` also with
 * ThreadSanitizer. SKIPs without g++ or the CUDA headers. Not seen here: GPU timing and
 * memory model (the GPU test is cuda_ops_gemv_small in tests/cuda/test_ops_cuda.c). */
#include "tests/test.h"

#include <stdlib.h>

#include "tests/cuda/sim_host.h"

TEST(cuda_gemv_small_host) {
    if (!sim_host_cuda_include()) SKIP("no CUDA headers: the simulated gemv_small kernel NOT run");
    if (!sim_host_have_gxx()) SKIP("no g++: the simulated gemv_small kernel NOT run");
    char *dir = test_tmpdir();
    const char *runs[] = {"", NULL}, *tsan_runs[] = {"", NULL};
    int failed = sim_host_check(dir, "tests/cuda/sim_gemv_small.cc", "model/cuda/gemv_small.cu", NULL, NULL, runs,
                                tsan_runs);
    CHECKF(failed == 0, "%d simulated build(s) or run(s) failed", failed);
    free(dir);
}
