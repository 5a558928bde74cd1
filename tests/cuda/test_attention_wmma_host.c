/* tests/cuda/test_attention_wmma_host.c — runs tests/cuda/sim_attention_wmma.cc: the
 * kernels of model/cuda/attention_wmma.cu executed on the CPU by a simulator (one OS
 * thread per CUDA thread, barriers for __syncthreads / __syncwarp, a wmma whose fragment
 * layout is deliberately scrambled), against a naive double-precision attention, so the
 * kernels' indexing, masks, tile lists, synchronisation and numerics are checked without
 * a GPU. The simulator is tests/cuda/sim/cuda_sim.h (shared with the other *_host CUDA
 * tests; sim_host_check builds and runs it). Built with g++ and AddressSanitizer + UBSan
 * into the test's temporary folder;
 * runs the small shapes (H 2, q/k 32, v 16, with a bit-identical repeat and the fallback
 * of q/k 24) and MLA's (q/k 192, v 128). Under `make check-all` also a ThreadSanitizer
 * build (about a minute): a missing barrier between threads that share a tile is a
 * reported data race. SKIPs when g++, the CUDA headers or the sources are not there
 * (e.g. on the lent GPU machines, which run the real kernels in
 * test_attention_wmma_cuda.c). What this cannot see: the real wmma/tensor-core
 * behaviour, the real shared-memory limits and timing — those need the GPU test. */
#include "tests/test.h"

#include <stdlib.h>
#include <unistd.h>

#include "tests/cuda/sim_host.h"

TEST(cuda_attention_wmma_host) {
    if (!sim_host_cuda_include()) SKIP("no CUDA headers: the simulated wmma attention kernels not run");
    if (!sim_host_have_gxx()) SKIP("no g++: the simulated wmma attention kernels not run");
    if (access("tests/cuda/sim_attention_wmma.cc", R_OK) != 0 || access("model/cuda/attention_wmma.cu", R_OK) != 0)
        SKIP("sources not found from the working directory: simulated wmma attention not run");
    char *dir = test_tmpdir();
    /* "": H 2, 32/16 (with the repeat, the fallback and the selection); "mla": 192/128 */
    const char *runs[] = {"", "mla", NULL}, *tsan_runs[] = {"", NULL};
    int failed = sim_host_check(dir, "tests/cuda/sim_attention_wmma.cc", "model/cuda/attention_wmma.cu", NULL, NULL,
                                runs, tsan_runs);
    CHECKF(failed == 0, "%d simulated wmma attention build(s) or run(s) failed", failed);
    free(dir);
}
