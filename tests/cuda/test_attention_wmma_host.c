/* tests/cuda/test_attention_wmma_host.c — runs tests/cuda/sim_attention_wmma.cc: the
 * kernels of model/cuda/attention_wmma.cu executed on the CPU by a simulator (one OS
 * thread per CUDA thread, barriers for __syncthreads / __syncwarp, a wmma whose fragment
 * layout is deliberately scrambled), against a naive double-precision attention, so the
 * kernels' indexing, masks, tile lists, synchronisation and numerics are checked without
 * a GPU. Built with g++ and AddressSanitizer + UBSan into the test's temporary folder;
 * runs the small shapes (H 2, q/k 32, v 16, with a bit-identical repeat and the fallback
 * of q/k 24) and MLA's (q/k 192, v 128). Under `make check-all` also a ThreadSanitizer
 * build (about a minute): a missing barrier between threads that share a tile is a
 * reported data race. SKIPs when g++, the CUDA headers or the sources are not there
 * (e.g. on the lent GPU machines, which run the real kernels in
 * test_attention_wmma_cuda.c). What this cannot see: the real wmma/tensor-core
 * behaviour, the real shared-memory limits and timing — those need the GPU test. */
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *aw_cuda_include(void) {
    static char path[512];
    const char *home = getenv("CUDA_HOME");
    snprintf(path, sizeof path, "%s/include", home && *home ? home : "/usr/local/cuda");
    char probe[600];
    snprintf(probe, sizeof probe, "%s/cuda_bf16.h", path);
    return access(probe, R_OK) == 0 ? path : NULL;
}

/* Runs cmd; 1 when it exited 0 and (want != NULL) its output contains want. Failure
 * lines are echoed. */
static int aw_run_expect(const char *cmd, const char *want) {
    FILE *f = popen(cmd, "r");
    if (!f) return 0;
    char line[512];
    int seen = want == NULL;
    while (fgets(line, sizeof line, f)) {
        if (strstr(line, "FAIL") || strstr(line, "error") || strstr(line, "ERROR") || strstr(line, "WARNING"))
            fprintf(stderr, "    %s", line);
        if (want && strstr(line, want)) seen = 1;
    }
    int st = pclose(f);
    return st == 0 && seen;
}

TEST(cuda_attention_wmma_host) {
    const char *inc = aw_cuda_include();
    if (!inc) SKIP("no CUDA headers (cuda_bf16.h): the simulated wmma attention kernels not run");
    if (system("command -v g++ >/dev/null 2>&1") != 0) SKIP("no g++: the simulated wmma attention kernels not run");
    if (access("tests/cuda/sim_attention_wmma.cc", R_OK) != 0 || access("model/cuda/attention_wmma.cu", R_OK) != 0)
        SKIP("sources not found from the working directory: simulated wmma attention not run");
    char *dir = test_tmpdir(), cmd[1600];
    snprintf(cmd, sizeof cmd,
             "g++ -std=c++17 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=undefined -I. -I'%s' "
             "-o '%s/sim_asan' tests/cuda/sim_attention_wmma.cc -lpthread 2>&1",
             inc, dir);
    int built = aw_run_expect(cmd, NULL);
    CHECKF(built, "g++ could not build tests/cuda/sim_attention_wmma.cc");
    if (built) {
        snprintf(cmd, sizeof cmd, "'%s/sim_asan' 2>&1", dir);
        CHECKF(aw_run_expect(cmd, "all ok"), "simulated wmma attention (H 2, 32/16) failed");
        snprintf(cmd, sizeof cmd, "'%s/sim_asan' mla 2>&1", dir);
        CHECKF(aw_run_expect(cmd, "all ok"), "simulated wmma attention (MLA 192/128) failed");
    }
    if (test_check_all()) {
        snprintf(cmd, sizeof cmd,
                 "g++ -std=c++17 -O1 -g -fsanitize=thread -I. -I'%s' -o '%s/sim_tsan' "
                 "tests/cuda/sim_attention_wmma.cc -lpthread 2>&1 && '%s/sim_tsan' 2>&1",
                 inc, dir, dir);
        CHECKF(aw_run_expect(cmd, "all ok"), "simulated wmma attention under ThreadSanitizer failed");
    } else {
        fprintf(stderr, "    (ThreadSanitizer run only under make check-all)\n");
    }
    free(dir);
}
