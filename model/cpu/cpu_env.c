/* model/cpu/cpu_env.c — process environment for the CPU backend (see ops_cpu_env_init in
 * model/ops.h). OpenBLAS picks its kernels and libgomp its wait policy when they are
 * loaded, before main() runs, so the only way to change them from inside the program is
 * to set the variables and re-execute once. */
#include "model/ops.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* OpenBLAS 0.3.21 (Debian 12) does not know Sapphire/Emerald Rapids and falls back to its
 * generic SSE3 "Prescott" kernels: measured 4-5x slower GEMMs than "SkylakeX" here. */
static const char *better_core(void) {
    const char *core = openblas_get_corename();
    if (!core || (strcmp(core, "Prescott") != 0 && strcmp(core, "Core2") != 0 && strcmp(core, "Nehalem") != 0))
        return NULL;
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
    return NULL;
}

void ops_cpu_env_init(int argc, char **argv) {
    (void)argc;
    if (getenv("CRUCIBLE_ENV_INIT")) return;  /* already re-executed (or opted out) */
    int changed = 0;
    const char *core = getenv("OPENBLAS_CORETYPE") ? NULL : better_core();
    if (core) changed |= setenv("OPENBLAS_CORETYPE", core, 0) == 0;
    /* Spinning OpenMP workers steal the cores BLAS and the other processes need on a
     * loaded machine (measured 3x slower training steps on 2 shared cores). */
    if (!getenv("OMP_WAIT_POLICY")) changed |= setenv("OMP_WAIT_POLICY", "passive", 0) == 0;
    if (!changed || setenv("CRUCIBLE_ENV_INIT", "1", 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* exec failed: keep running with the current settings */
}
