/* tests/cuda/test_cuda_sim_host.c — runs tests/cuda/sim_selftest.cc, the tests of the CPU
 * simulator the *_host CUDA tests rely on (tests/cuda/sim/cuda_sim.h, cub_sim.h): shuffle
 * and reduction semantics, 3-D launches, shared memory refills, the CUB fakes' contracts,
 * and that divergent barriers, exited threads, partial shuffle masks, launch-limit
 * violations and shared-memory overruns are reported rather than hidden or hung.
 * AddressSanitizer + UBSan build; ThreadSanitizer under make check-all. SKIPs without g++
 * or the CUDA headers. */
#include "tests/test.h"

#include <stdlib.h>

#include "tests/cuda/sim_host.h"

TEST(cuda_sim_selftest_host) {
    if (!sim_host_cuda_include()) SKIP("no CUDA headers: the CPU simulator's self-test NOT run");
    if (!sim_host_have_gxx()) SKIP("no g++: the CPU simulator's self-test NOT run");
    char *dir = test_tmpdir();
    const char *runs[] = {"", NULL};
    int failed = sim_host_check(dir, "tests/cuda/sim_selftest.cc", NULL, NULL, NULL, runs, runs);
    CHECKF(failed == 0, "%d simulated build(s) or run(s) failed", failed);
    free(dir);
}
