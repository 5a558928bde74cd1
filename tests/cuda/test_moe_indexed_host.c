/* tests/cuda/test_moe_indexed_host.c — runs tests/cuda/sim_moe_indexed.cc: the kernels of
 * model/cuda/moe_indexed.cu (cuda_moe_experts_indexed: the device-side grouping of slots
 * by expert, the gate/up and down kernels over (expert, row tile) and the combine)
 * executed as written on the CPU simulator tests/cuda/sim/cuda_sim.h, against a naive
 * double-precision reference: E 64, K 6, N 1, 7, 64, 200, unused experts (NaN weights),
 * an expert in every row, an expert twice in a row, float4 and scalar paths, misaligned
 * weights, and ("big") D and I over one staged tile; 8 blocks over groups (a
 * substitution), so blocks loop over several groups; then ("tiles") rebuilt with 64-float
 * tiles and 16-slot runs (substitutions): groups of 24..70 slots over several runs, inputs
 * over 2..3 tiles, float4 and scalar. Built with g++ and AddressSanitizer
 * + UBSan into the test's temporary folder; under `make check-all` also with
 * ThreadSanitizer. SKIPs without g++ or the CUDA headers. Not seen here: real GPU timing,
 * caching and memory model (the GPU test is cuda_moe_experts_indexed in
 * tests/cuda/test_moe_small_cuda.c). */
#include "tests/test.h"

#include <stdlib.h>

#include "core/error.h"
#include "core/file.h"
#include "tests/cuda/sim_host.h"

TEST(cuda_moe_indexed_host) {
    if (!sim_host_cuda_include()) SKIP("no CUDA headers: the simulated moe_indexed kernels NOT run");
    if (!sim_host_have_gxx()) SKIP("no g++: the simulated moe_indexed kernels NOT run");
    char *dir = test_tmpdir();
    const char *runs[] = {"", "big", NULL}, *tsan_runs[] = {"", NULL};
    /* 8 blocks over groups, not 64: fewer simulated blocks, each looping over groups */
    const char *subst[] = {"IDX_GROUP_BLOCKS = 64,", "IDX_GROUP_BLOCKS = 8,", NULL};
    int failed = sim_host_check(dir, "tests/cuda/sim_moe_indexed.cc", "model/cuda/moe_indexed.cu", subst, NULL, runs,
                                tsan_runs);
    /* the same kernels with 64-float tiles and 16-slot runs: many tiles and runs at small shapes */
    char *sub = cr_path_join(dir, "tiles");
    CrError e;
    CHECKF(cr_mkdir_p(sub, &e) == 0, "%s", e.msg);
    const char *runs_t[] = {"tiles", NULL};
    const char *subst_t[] = {"IDX_GROUP_BLOCKS = 64,", "IDX_GROUP_BLOCKS = 8,", "IDX_LT = 512,", "IDX_LT = 64,",
                             "IDX_RUN = 64,", "IDX_RUN = 16,", NULL};
    failed += sim_host_check(sub, "tests/cuda/sim_moe_indexed.cc", "model/cuda/moe_indexed.cu", subst_t, NULL, runs_t,
                             runs_t);
    CHECKF(failed == 0, "%d simulated build(s) or run(s) failed", failed);
    free(sub);
    free(dir);
}
