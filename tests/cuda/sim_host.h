/* tests/cuda/sim_host.h — building and running the CPU-simulated CUDA kernels
 * (tests/cuda/sim/cuda_sim.h) from host tests.
 * Defines: sim_host_cuda_include, sim_host_have_gxx, sim_host_nvcc, sim_host_rewrite, sim_host_build,
 * sim_host_run, sim_host_check.
 *
 * A simulated test is a C++ file (tests/cuda/sim_NAME.cc) that includes cuda_sim.h and
 * then `#include SIM_CU`: the model/cuda/ .cu file under test, rewritten by
 * sim_host_rewrite so g++ can compile it. It prints "all ok" on success. Paths are
 * relative to the repository root (the test runner's working directory). */
#ifndef CRUCIBLE_TESTS_CUDA_SIM_HOST_H
#define CRUCIBLE_TESTS_CUDA_SIM_HOST_H

#include <stddef.h>

/* The CUDA include folder ($CUDA_HOME/include or /usr/local/cuda/include) when it has
 * cuda_runtime.h, else NULL (static storage). */
const char *sim_host_cuda_include(void);
/* 1 when g++ is on PATH. */
int sim_host_have_gxx(void);
/* nvcc ($CUDA_HOME/bin/nvcc or /usr/local/cuda/bin/nvcc) when executable, else NULL
 * (static storage): the mocked host-code tests (tests/cuda/mock_*.cu) build with it. */
const char *sim_host_nvcc(void);
/* Writes src (a .cu file) to dst with every launch `k<<<cfg>>>(args)` turned into
 * `sim_launch(SimCfg(cfg), k, args)` (k a name, possibly with template arguments) and
 * every `extern __shared__ T name[];` into `T *const name = (T *)sim_dynamic_smem();`,
 * comments and line numbers kept (a #line names src). subst (may be NULL): pairs of
 * exact strings {from, to, ..., NULL}, each `from` replaced first and required to occur
 * exactly once (a test's knob, e.g. a smaller chunk size, fails loudly when the source
 * changes). 0, or -1 with a message on stderr. */
int sim_host_rewrite(const char *src, const char *dst, const char *const *subst);
/* Builds dir/exe from the simulator file cc with cu (NULL: none) rewritten (with subst) into dir, plus the C
 * sources in c_srcs (NULL-terminated; the CPU references), all with the sanitizers
 * `san` ("address,undefined" or "thread"). 1 when built; compiler errors are echoed. */
int sim_host_build(const char *dir, const char *exe, const char *cc, const char *cu, const char *const *subst,
                   const char *const *c_srcs, const char *san);
/* Runs cmd (its stderr joined to stdout); 1 when it exits 0 and printed want. Lines with
 * FAIL / error / ERROR / WARNING are echoed to stderr. */
int sim_host_run(const char *cmd, const char *want);
/* The whole check: builds cc with cu (and c_srcs) under AddressSanitizer + UBSan into
 * dir and runs it once per entry of runs (NULL-terminated; each the program's argument,
 * "" for none), each run expected to print "all ok"; then, only under make check-all,
 * the same with ThreadSanitizer for the entries of tsan_runs. Returns the number of
 * failures, each described on stderr. */
int sim_host_check(const char *dir, const char *cc, const char *cu, const char *const *subst,
                   const char *const *c_srcs, const char *const *runs, const char *const *tsan_runs);

#endif
