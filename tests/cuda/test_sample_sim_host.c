/* tests/cuda/test_sample_sim_host.c — runs tests/cuda/sim_sample.cc: the kernels of
 * model/cuda/sample.cu (cuda_sample_rows: row statistics, sort keys, the segmented sort,
 * the top-k/top-p cut and the draw) executed as written on the CPU simulator
 * tests/cuda/sim/cuda_sim.h, CUB replaced by the fakes of tests/cuda/sim/cub_sim.h,
 * against rollout/sampler.c's sampler_sample (compiled in): V 7, 1000 and 2100 with ties,
 * repeated maxima and -inf, greedy and each of temperature / top-k / top-p / min-p alone
 * and combined (all 54 combinations under `make check-all`), the sort chunk forced down to
 * 2048 logits so rows are sorted in several chunks. Tokens equal, log-probs within 1e-5.
 * AddressSanitizer + UBSan build; ThreadSanitizer under make check-all. SKIPs without g++
 * or the CUDA headers. Not seen here: CUB's real algorithms and summation order, GPU
 * timing and memory model (GPU: tests/cuda/test_sample_cuda.c). */
#include "tests/test.h"

#include <stdlib.h>

#include "tests/cuda/sim_host.h"

TEST(cuda_sample_sim_host) {
    if (!sim_host_cuda_include()) SKIP("no CUDA headers: the simulated sample kernels NOT run");
    if (!sim_host_have_gxx()) SKIP("no g++: the simulated sample kernels NOT run");
    char *dir = test_tmpdir();
    /* rows sorted a few at a time: sample.cu's chunk of 2^23 logits made 2048 */
    const char *subst[] = {"SORT_ELEMS = 1 << 23,", "SORT_ELEMS = 2048,", NULL};
    const char *refs[] = {"rollout/sampler.c", "core/rng.c", "core/alloc.c", "core/error.c", NULL};
    const char *runs_fast[] = {"small", "wide", NULL}, *runs_all[] = {"small", "wide", "every", NULL};
    const char *tsan_runs[] = {"small", NULL};
    int failed = sim_host_check(dir, "tests/cuda/sim_sample.cc", "model/cuda/sample.cu", subst, refs,
                                test_check_all() ? runs_all : runs_fast, tsan_runs);
    CHECKF(failed == 0, "%d simulated build(s) or run(s) failed", failed);
    free(dir);
}
