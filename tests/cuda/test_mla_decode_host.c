/* tests/cuda/test_mla_decode_host.c — runs tests/cuda/sim_mla_decode.cc: the kernels of
 * model/cuda/mla_decode.cu (the paged latent cache's scatter, and the split + combine
 * kernels of decode attention) executed as written on the CPU simulator
 * tests/cuda/sim/cuda_sim.h, against naive references of model/cpu/mla_cache.c's
 * contract: random block tables, contexts 1, 37 and 300 (two splits), H 3, 11 and 16
 * (full and partial head groups), r/dr 16/8, Lite's 512/64 and a row wide enough that the
 * head groups halve to fit 48 KiB of shared memory; then splits of 64 and of 32 positions
 * (CRUCIBLE_CUDA_MLA_SPLIT) on such rows and on a block table padded 70 blocks past the
 * contexts (recorded steps' tables: empty splits). AddressSanitizer + UBSan build; under
 * `make check-all` also ThreadSanitizer. SKIPs without g++ or the CUDA headers. Not seen
 * here: real GPU timing, caching and memory model (GPU: tests/cuda/test_rollout_cuda.c). */
#include "tests/test.h"

#include <stdlib.h>

#include "tests/cuda/sim_host.h"

TEST(cuda_mla_decode_host) {
    if (!sim_host_cuda_include()) SKIP("no CUDA headers: the simulated mla_decode kernels NOT run");
    if (!sim_host_have_gxx()) SKIP("no g++: the simulated mla_decode kernels NOT run");
    char *dir = test_tmpdir();
    const char *runs[] = {"small", "wide", "split64", "split32", NULL}, *tsan_runs[] = {"small", "split64", NULL};
    int failed = sim_host_check(dir, "tests/cuda/sim_mla_decode.cc", "model/cuda/mla_decode.cu", NULL, NULL, runs,
                                tsan_runs);
    CHECKF(failed == 0, "%d simulated build(s) or run(s) failed", failed);
    free(dir);
}
