/* try to raise the limits we were given (a limit not imposed — RLIMIT_AS when a memory
 * cgroup bounds the box — is already infinite: nothing to raise) */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/resource.h>
int main(void) {
    int res[] = { RLIMIT_CPU, RLIMIT_AS, RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE };
    const char *name[] = { "CPU", "AS", "NPROC", "FSIZE", "NOFILE", "CORE" };
    for (int i = 0; i < 6; i++) {
        struct rlimit rl = { RLIM_INFINITY, RLIM_INFINITY }, cur;
        if (getrlimit(res[i], &cur) == 0 && cur.rlim_max == RLIM_INFINITY) continue;
        if (setrlimit(res[i], &rl) == 0) printf("ESCAPE: raised RLIMIT_%s\n", name[i]);
        if (prlimit(0, res[i], &rl, 0) == 0) printf("ESCAPE: prlimit raised RLIMIT_%s\n", name[i]);
    }
    return 42;
}
