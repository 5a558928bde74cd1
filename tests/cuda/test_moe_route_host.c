/* tests/cuda/test_moe_route_host.c — runs tests/cuda/sim_moe_route.cc: the router kernels
 * of model/cuda/moe_route.cu (one warp per token under CRUCIBLE_CUDA_ROUTE=warp, one
 * thread per token by default) executed as written on the CPU simulator
 * tests/cuda/sim/cuda_sim.h, each bit for bit against model/moe_select.h on the host:
 * greedy and group-limited routers up to E 256 / 64 groups / K 8, ties, -inf and NaN
 * logits, N 1..37. AddressSanitizer + UBSan build; under `make check-all` also
 * ThreadSanitizer. SKIPs without g++ or the CUDA headers. Not seen here: GPU timing, and
 * the GPU's expf (the GPU test cuda_ops_moe_route compares the two kernels' bits there). */
#include "tests/test.h"

#include <stdlib.h>

#include "tests/cuda/sim_host.h"

TEST(cuda_moe_route_host) {
    if (!sim_host_cuda_include()) SKIP("no CUDA headers: the simulated router kernels NOT run");
    if (!sim_host_have_gxx()) SKIP("no g++: the simulated router kernels NOT run");
    char *dir = test_tmpdir();
    const char *runs[] = {"", NULL}, *tsan_runs[] = {"", NULL};
    int failed = sim_host_check(dir, "tests/cuda/sim_moe_route.cc", "model/cuda/moe_route.cu", NULL, NULL, runs,
                                tsan_runs);
    CHECKF(failed == 0, "%d simulated build(s) or run(s) failed", failed);
    free(dir);
}
