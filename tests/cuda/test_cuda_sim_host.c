/* tests/cuda/test_cuda_sim_host.c — runs tests/cuda/sim_selftest.cc, the tests of the CPU
 * simulator the *_host CUDA tests rely on (tests/cuda/sim/cuda_sim.h, cub_sim.h): shuffle
 * and reduction semantics, 3-D launches, shared memory refills, the CUB fakes' contracts,
 * and that divergent barriers, exited threads, partial shuffle masks, launch-limit
 * violations and shared-memory overruns are reported rather than hidden or hung.
 * AddressSanitizer + UBSan build; ThreadSanitizer under make check-all. SKIPs without g++
 * or the CUDA headers. */
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* sim_host_rewrite on the launch and shared-memory forms, against hand-written output:
 * template arguments, three and two launch arguments, an empty argument list, a launch in
 * a comment and in a string left alone, an aligned extern __shared__ array, a substitution;
 * a substitution that does not occur exactly once is an error. */
TEST(cuda_sim_rewrite) {
    char *dir = test_tmpdir(), src[600], dst[600];
    snprintf(src, sizeof src, "%s/k.cu", dir);
    snprintf(dst, sizeof dst, "%s/k.sim.cu", dir);
    const char *in =
        "enum { N = 4 };\n"
        "__global__ void k(float *x) { extern __shared__ __align__(16) float4 sm[]; }\n"
        "void f(float *x) {\n"
        "    kern<true, N><<<dim3(2, 3), 64, 128>>>(x, 1);\n"
        "    z<<<1, 32>>>( );\n"
        "    // a<<<1, 1>>>(x);\n"
        "    puts(\"b<<<1, 1>>>(x)\");\n"
        "}\n";
    const char *want =
        "enum { N = 2 };\n"
        "__global__ void k(float *x) { float4 *const sm = (float4 *)sim_dynamic_smem(); }\n"
        "void f(float *x) {\n"
        "    sim_launch(SimCfg(dim3(2, 3), 64, 128), kern<true, N>, x, 1);\n"
        "    sim_launch(SimCfg(1, 32), z );\n"
        "    // a<<<1, 1>>>(x);\n"
        "    puts(\"b<<<1, 1>>>(x)\");\n"
        "}\n";
    FILE *f = fopen(src, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs(in, f);
    fclose(f);
    const char *subst[] = {"N = 4", "N = 2", NULL};
    CHECK(sim_host_rewrite(src, dst, subst) == 0);
    f = fopen(dst, "r");
    char got[2048] = {0};
    size_t n = f ? fread(got, 1, sizeof got - 1, f) : 0;
    if (f) fclose(f);
    got[n] = 0;
    char expect[2048];
    snprintf(expect, sizeof expect, "#line 1 \"%s\"\n%s", src, want);
    CHECKF(strcmp(got, expect) == 0, "rewritten:\n%s\nexpected:\n%s", got, expect);
    const char *missing[] = {"N = 5", "N = 2", NULL}, *twice[] = {"x", "y", NULL};
    CHECK(sim_host_rewrite(src, dst, missing) != 0);
    CHECK(sim_host_rewrite(src, dst, twice) != 0);
    free(dir);
}
