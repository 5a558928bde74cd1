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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *find_nvcc(void) {
    static char path[512];
    const char *home = getenv("CUDA_HOME");
    if (home && *home) {
        snprintf(path, sizeof path, "%s/bin/nvcc", home);
        if (access(path, X_OK) == 0) return path;
    }
    if (access("/usr/local/cuda/bin/nvcc", X_OK) == 0) return "/usr/local/cuda/bin/nvcc";
    return NULL;
}

/* Runs cmd; 1 when it exited 0 and (want != NULL) its output contains want. */
static int run_expect(const char *cmd, const char *want) {
    FILE *f = popen(cmd, "r");
    if (!f) return 0;
    char line[512];
    int seen = want == NULL;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "FAIL") || strstr(line, "error")) fprintf(stderr, "    %s", line);
        if (want && strstr(line, want)) seen = 1;
    }
    int st = pclose(f);
    return st == 0 && seen;
}

TEST(cuda_experts_grouped_host) {
    const char *nvcc = find_nvcc();
    if (!nvcc) SKIP("no nvcc: the mocked host-side check of model/cuda/moe_grouped.cu not run");
    if (access("tests/cuda/mock_moe_grouped.cu", R_OK) != 0 || access("model/cuda/moe_grouped.cu", R_OK) != 0)
        SKIP("sources not found from the working directory: mocked host-side check not run");
    char *dir = test_tmpdir(), cmd[1400];
    snprintf(cmd, sizeof cmd, "'%s' -std=c++17 -I. -o '%s/mock_moe_grouped' tests/cuda/mock_moe_grouped.cu 2>&1", nvcc,
             dir);
    int built = run_expect(cmd, NULL);
    CHECKF(built, "nvcc could not build tests/cuda/mock_moe_grouped.cu");
    if (built) {
        snprintf(cmd, sizeof cmd, "'%s/mock_moe_grouped' 2>&1", dir);
        CHECKF(run_expect(cmd, "all ok"), "mocked moe_grouped (cuBLAS without grouped FAST_16BF) failed");
        snprintf(cmd, sizeof cmd, "MOCK_16BF_OK=1 '%s/mock_moe_grouped' 2>&1", dir);
        CHECKF(run_expect(cmd, "all ok"), "mocked moe_grouped (grouped FAST_16BF accepted) failed");
        snprintf(cmd, sizeof cmd, "CRUCIBLE_CUDA_EXPERT_STREAMS=7 '%s/mock_moe_grouped' 2>&1", dir);
        CHECKF(run_expect(cmd, "all ok"), "mocked moe_grouped on 7 side streams failed");
    }
    free(dir);
}
