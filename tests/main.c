/* tests/main.c — test runner: runs every TEST (or those whose name contains one of
 * the arguments), each in a forked child with a time limit, and prints the closing
 * line "N passed, N failed, N skipped". */
#include "tests/test.h"
#include "model/ops.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define X(name) void test_##name(TestCtx *t_);
#include "test_list.h"
#undef X

typedef struct { const char *name; void (*fn)(TestCtx *); } TestEntry;
static const TestEntry k_tests[] = {
#define X(name) {#name, test_##name},
#include "test_list.h"
#undef X
};

double test_rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        num += d * d;
        den += (double)b[i] * b[i];
    }
    return sqrt(num) / (den > 1e-30 ? sqrt(den) : 1e-15);
}

int test_check_all(void) {
    const char *v = getenv("CRUCIBLE_CHECK_ALL");
    return v && *v && strcmp(v, "0") != 0;
}

const char *test_crucible_bin(void) {
    const char *v = getenv("CRUCIBLE_BIN");
    return v && *v ? v : "build/crucible";
}

unsigned long long test_random_seed(const char *name) {
    const char *s = getenv("CRUCIBLE_TEST_SEED");
    unsigned long long seed;
    if (s && *s) {
        seed = strtoull(s, NULL, 10);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 20) ^ (unsigned long long)getpid();
    }
    fprintf(stderr, "    %s: seed %llu (CRUCIBLE_TEST_SEED to repeat)\n", name, seed);
    return seed;
}

static char g_tmpdir[256];  /* runner-owned: one per forked test child */

char *test_tmpdir(void) {
    static int counter;
    char *p = malloc(300);
    if (!p) abort();
    snprintf(p, 300, "%s/d%d", g_tmpdir, counter++);
    mkdir(p, 0700);
    return p;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int matches(const char *name, int argc, char **argv) {
    if (argc <= 1) return 1;
    for (int i = 1; i < argc; i++)
        if (strstr(name, argv[i])) return 1;
    return 0;
}

int main(int argc, char **argv) {
    /* the same BLAS kernels and OpenMP wait policy as the crucible binary (may re-exec once) */
    ops_cpu_env_init(argc, argv);
    /* crucible commands run by the tests default to the CPU (--device's default is
     * $CRUCIBLE_DEVICE, else auto = cuda on a GPU machine): the CPU path is the
     * reference the suite checks; GPU tests pass --device cuda explicitly. */
    if (setenv("CRUCIBLE_DEVICE", "cpu", 1) != 0) { perror("setenv"); return 2; }
    int n = (int)(sizeof k_tests / sizeof k_tests[0]);
    int passed = 0, failed = 0, skipped = 0;
    const char *lim = getenv("CRUCIBLE_TEST_TIMEOUT");
    int timeout_s = lim ? atoi(lim) : 600;
    /* Shared page so the child can report skip status. */
    int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) { perror("mmap"); return 2; }
    for (int i = 0; i < n; i++) {
        if (!matches(k_tests[i].name, argc, argv)) continue;
        fprintf(stderr, "[ RUN  ] %s\n", k_tests[i].name);
        double t0 = now_s();
        shared[0] = 0; shared[1] = 0;
        snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/crucible-test-%ld-%d", (long)getpid(), i);
        pid_t runner = getpid(), pid = fork();
        if (pid < 0) { perror("fork"); return 2; }
        if (pid == 0) {
            setpgid(0, 0);
            /* The child has its own process group, so a signal to the runner's group (e.g.
             * `timeout` killing the runner) misses it: it dies with the runner instead, not
             * left running (and holding a GPU) after the runner is gone. */
            if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != runner) _exit(3);
            mkdir(g_tmpdir, 0700);
            TestCtx t = {0, 0, k_tests[i].name};
            alarm((unsigned)timeout_s);
            k_tests[i].fn(&t);
            shared[0] = t.failed;
            shared[1] = t.skipped;
            fflush(stdout);
            fflush(stderr);
            _exit(t.failed ? 1 : 0);
        }
        int st = 0;
        while (waitpid(pid, &st, 0) < 0) {}
        kill(-pid, SIGKILL);  /* anything the test left behind */
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_tmpdir);
        if (system(cmd)) {}
        double dt = now_s() - t0;
        if (WIFSIGNALED(st)) {
            fprintf(stderr, "[ FAIL ] %s (signal %d%s, %.2fs)\n", k_tests[i].name, WTERMSIG(st),
                    WTERMSIG(st) == SIGALRM ? ": timed out" : "", dt);
            failed++;
        } else if (WEXITSTATUS(st) != 0 || shared[0]) {
            fprintf(stderr, "[ FAIL ] %s (%.2fs)\n", k_tests[i].name, dt);
            failed++;
        } else if (shared[1]) {
            fprintf(stderr, "[ SKIP ] %s (%.2fs)\n", k_tests[i].name, dt);
            skipped++;
        } else {
            fprintf(stderr, "[  OK  ] %s (%.2fs)\n", k_tests[i].name, dt);
            passed++;
        }
    }
    fflush(stderr);
    printf("%d passed, %d failed, %d skipped\n", passed, failed, skipped);
    return failed ? 1 : 0;
}
