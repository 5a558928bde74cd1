/* bench/sandbox.c — what the sandbox costs.
 * (1) per-run overhead of one boxed run (namespaces, private root, cgroup, seccomp, supervision)
 *     over a bare fork+exec+wait of the same binary (target: within 2 ms);
 * (2) compile+run+judge throughput with the pool (2 workers) for a trivial C program and for a
 *     HumanEval task, against the same jobs run bare (gcc + run; python3 + run) with the same
 *     parallelism (target: >= 0.9 of bare).
 * Usage: build/bench/sandbox [N_RUNS=200] [N_JOBS=40] (N_JOBS=0: per-run overhead only). Needs
 * build/crucible (the pool's workers, the end-to-end line). CRUCIBLE_SANDBOX_DISABLE=net,...
 * shows what each namespace costs. */
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "sandbox/box.h"
#include "sandbox/lang.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp_policy.h"

extern char **environ;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Spawn argv with stdin from in_path (or /dev/null) and stdout to out_path (or /dev/null), wait. */
static int spawn_wait(char *const *argv, const char *in_path, const char *out_path) {
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, in_path ? in_path : "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return -1;
    int st;
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static void overhead(int n) {
    CrError e;
    SeccompProgram f;
    if (seccomp_policy_build(SECCOMP_STEP_RUN, 0, NULL, &f, &e) < 0) { fprintf(stderr, "%s\n", e.msg); exit(1); }
    char *dir = box_make_submission_dir(&e);
    const char *argv[] = { "/usr/bin/true", NULL };
    BoxSpec s = { .argv = argv, .box_dir = dir, .cpu_limit_s = 10, .wall_limit_s = 21,
                  .memory_limit_bytes = 512L << 20, .as_limit_bytes = 640L << 20,
                  .output_limit_bytes = 16L << 20, .nproc = 32, .filter = &f };
    double *tb = cr_malloc(sizeof(double) * (size_t)n), *tx = cr_malloc(sizeof(double) * (size_t)n);
    char *bare_argv[] = { "/usr/bin/true", NULL };
    for (int i = 0; i < n + 10; i++) {  /* interleaved, the first 10 are warm-up */
        double t0 = now_s();
        BoxOutcome o;
        if (box_run(&s, &o, &e) < 0 || !o.exited || o.exit_code != 0) {
            fprintf(stderr, "box run failed: %s %s\n", e.msg, o.internal_error);
            exit(1);
        }
        box_outcome_free(&o);
        double t1 = now_s();
        if (spawn_wait(bare_argv, NULL, NULL) != 0) { fprintf(stderr, "bare run failed\n"); exit(1); }
        double t2 = now_s();
        if (i >= 10) { tb[i - 10] = (t1 - t0) * 1e3; tx[i - 10] = (t2 - t1) * 1e3; }
    }
    qsort(tb, (size_t)n, sizeof *tb, cmp_d);
    qsort(tx, (size_t)n, sizeof *tx, cmp_d);
    printf("per-run: boxed /usr/bin/true median %.2f ms (p10 %.2f, p90 %.2f); bare fork+exec median %.2f ms "
           "(p10 %.2f, p90 %.2f); overhead median %.2f ms (target <= 2 ms) over %d runs\n",
           tb[n / 2], tb[n / 10], tb[n * 9 / 10], tx[n / 2], tx[n / 10], tx[n * 9 / 10], tb[n / 2] - tx[n / 2], n);
    free(tb);
    free(tx);
    box_remove_dir(dir);
    free(dir);
    seccomp_program_free(&f);
}

/* Median wall time of `n` runs of argv (bare) — used for the CLI and compiler comparisons. */
static double median_ms(char *const *argv, int n) {
    double *t = cr_malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        double t0 = now_s();
        if (spawn_wait(argv, NULL, NULL) != 0) { fprintf(stderr, "%s failed\n", argv[0]); exit(1); }
        t[i] = (now_s() - t0) * 1e3;
    }
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    double m = t[n / 2];
    free(t);
    return m;
}

/* End to end: `crucible sandbox run` (process start, namespace probe, seccomp build, one boxed
 * run, JSON) against `python3 hello.py`, and the boxed compile step against a bare gcc. */
static void end_to_end(const char *tmp, int n) {
    char py[256], c[256], bin[256], exe[512];
    snprintf(py, sizeof py, "%s/hello.py", tmp);
    snprintf(c, sizeof c, "%s/hello.c", tmp);
    snprintf(bin, sizeof bin, "%s/hello", tmp);
    FILE *f = fopen(py, "w");
    fputs("print('hello')\n", f);
    fclose(f);
    f = fopen(c, "w");
    fputs("#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}\n", f);
    fclose(f);
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 32);
    if (len <= 0) return;
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    snprintf(slash, 32, "/../crucible");
    char *cli_py[] = { exe, "sandbox", "run", "--lang", "python", py, NULL };
    char *bare_py[] = { "/usr/bin/python3", "-I", "-B", py, NULL };
    char *bare_cc[] = { "/usr/bin/gcc", "-O2", "-std=gnu17", "-pipe", "-o", bin, c, "-lm", NULL };
    double a = median_ms(cli_py, n), b = median_ms(bare_py, n);
    printf("end to end: crucible sandbox run --lang python hello.py median %.1f ms; bare python3 %.1f ms; "
           "overhead %.1f ms (%d runs)\n", a, b, a - b, n);
    CrError e;
    SandboxJob job = { .lang = "c", .source = "#include <stdio.h>\nint main(void){puts(\"hello\");return 0;}\n" };
    double *t = cr_malloc(sizeof(double) * (size_t)n);
    for (int i = 0; i < n; i++) {
        SandboxResult r;
        if (sandbox_run(&job, &r, &e) < 0 || r.verdict != VERDICT_OK) { fprintf(stderr, "compile job failed\n"); exit(1); }
        t[i] = (double)r.compile_time_ms;
        sandbox_result_free(&r);
    }
    qsort(t, (size_t)n, sizeof *t, cmp_d);
    double cpu_box = t[n / 2];
    /* bare compiler CPU time: children's rusage */
    struct rusage r0, r1;
    getrusage(RUSAGE_CHILDREN, &r0);
    double wall_cc = median_ms(bare_cc, n);
    getrusage(RUSAGE_CHILDREN, &r1);
    double cpu_bare = ((r1.ru_utime.tv_sec - r0.ru_utime.tv_sec) + (r1.ru_stime.tv_sec - r0.ru_stime.tv_sec)) * 1e3 +
                      ((r1.ru_utime.tv_usec - r0.ru_utime.tv_usec) + (r1.ru_stime.tv_usec - r0.ru_stime.tv_usec)) / 1e3;
    printf("compile step (gcc -O2, hello.c): boxed CPU median %.0f ms; bare CPU mean %.0f ms (bare wall median "
           "%.0f ms); ratio %.2f (target <= 1.10)\n", cpu_box, cpu_bare / n, wall_cc, cpu_box / (cpu_bare / n));
    free(t);
}

static const char k_c_src[] =
    "#include <stdio.h>\nint main(void){int a,b;if(scanf(\"%d %d\",&a,&b)!=2)return 1;printf(\"%d\\n\",a+b);return 0;}\n";

/* HumanEval/0 (has_close_elements) with its canonical solution and test. */
static const char k_he_src[] =
    "from typing import List\n\n\ndef has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    "    for idx, elem in enumerate(numbers):\n        for idx2, elem2 in enumerate(numbers):\n"
    "            if idx != idx2:\n                distance = abs(elem - elem2)\n"
    "                if distance < threshold:\n                    return True\n\n    return False\n";
static const char k_he_test[] =
    "def check(candidate):\n"
    "    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.3) == True\n"
    "    assert candidate([1.0, 2.0, 3.9, 4.0, 5.0, 2.2], 0.05) == False\n"
    "    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.95) == True\n"
    "    assert candidate([1.0, 2.0, 5.9, 4.0, 5.0], 0.8) == False\n"
    "    assert candidate([1.0, 2.0, 3.0, 4.0, 5.0, 2.0], 0.1) == True\n"
    "    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 1.0) == True\n"
    "    assert candidate([1.1, 2.2, 3.1, 4.1, 5.1], 0.5) == False\n";

static double pool_throughput(const SandboxJob *job, int n_jobs) {
    CrError e;
    SandboxPool *p = sandbox_pool_create(2, &e);
    if (!p) { fprintf(stderr, "%s\n", e.msg); exit(1); }
    double t0 = now_s();
    int next_submit = 0, done = 0;
    while (done < n_jobs) {
        while (next_submit < n_jobs && sandbox_pool_pending(p) < 4)
            if (sandbox_pool_submit(p, job, (uint64_t)next_submit++, &e) < 0) { fprintf(stderr, "%s\n", e.msg); exit(1); }
        uint64_t tag;
        SandboxResult r;
        if (sandbox_pool_next(p, &tag, &r, &e) < 0) { fprintf(stderr, "%s\n", e.msg); exit(1); }
        if (r.verdict != VERDICT_OK) { fprintf(stderr, "pool job not OK: %s\n", verdict_name(r.verdict)); exit(1); }
        sandbox_result_free(&r);
        done++;
    }
    double dt = now_s() - t0;
    sandbox_pool_free(p);
    return n_jobs / dt;
}

/* The same jobs bare: 2 processes, each running its half sequentially. */
static double bare_throughput(int is_c, int n_jobs, const char *tmp) {
    double t0 = now_s();
    pid_t kids[2];
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        if (kids[k] == 0) {
            char src[256], bin[256], in[256], out[256];
            snprintf(src, sizeof src, "%s/w%d.%s", tmp, k, is_c ? "c" : "py");
            snprintf(bin, sizeof bin, "%s/w%d.bin", tmp, k);
            snprintf(in, sizeof in, "%s/w%d.in", tmp, k);
            snprintf(out, sizeof out, "%s/w%d.out", tmp, k);
            FILE *f = fopen(in, "w");
            fputs("1 2\n", f);
            fclose(f);
            for (int j = k; j < n_jobs; j += 2) {
                f = fopen(src, "w");
                if (is_c) fputs(k_c_src, f);
                else fprintf(f, "%s\n%s\ncheck(has_close_elements)\n", k_he_src, k_he_test);
                fclose(f);
                if (is_c) {
                    char *cc[] = { "/usr/bin/gcc", "-O2", "-std=gnu17", "-pipe", "-o", bin, src, "-lm", NULL };
                    if (spawn_wait(cc, NULL, NULL) != 0) _exit(1);
                    char *run[] = { bin, NULL };
                    if (spawn_wait(run, in, out) != 0) _exit(1);
                } else {
                    char *run[] = { "/usr/bin/python3", "-I", "-B", src, NULL };
                    if (spawn_wait(run, NULL, out) != 0) _exit(1);
                }
                if (is_c) {  /* judge: read and compare the output */
                    char buf[64] = "";
                    f = fopen(out, "r");
                    size_t n = fread(buf, 1, sizeof buf - 1, f);
                    fclose(f);
                    buf[n] = 0;
                    if (strcmp(buf, "3\n") != 0) _exit(2);
                }
            }
            _exit(0);
        }
    }
    for (int k = 0; k < 2; k++) {
        int st;
        waitpid(kids[k], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { fprintf(stderr, "bare worker failed\n"); exit(1); }
    }
    return n_jobs / (now_s() - t0);
}

int main(int argc, char **argv) {
    int n_runs = argc > 1 ? atoi(argv[1]) : 200;
    int n_jobs = argc > 2 ? atoi(argv[2]) : 40;
    if (n_runs < 10 || n_jobs < 0 || n_jobs == 1) {
        fprintf(stderr, "usage: %s [N_RUNS>=10] [N_JOBS>=2, 0: per-run overhead only]\n", argv[0]);
        return 2;
    }
    printf("isolation: %s\n", sandbox_isolation_report());
    overhead(n_runs);
    if (n_jobs == 0) { sandbox_shutdown(); return 0; }
    char tmp[] = "/tmp/crucible-bench-XXXXXX";
    if (!mkdtemp(tmp)) { perror("mkdtemp"); return 1; }
    end_to_end(tmp, 20);
    SandboxTest t = { "1 2\n", "3\n" };
    SandboxJob cjob = { .lang = "c", .source = k_c_src, .tests = &t, .n_tests = 1 };
    SandboxJob hjob = { .lang = "python", .source = k_he_src, .test_code = k_he_test, .entry_point = "has_close_elements" };
    /* bare and pooled alternate so that load from other processes hits both alike */
    double cb1 = bare_throughput(1, n_jobs, tmp), cp1 = pool_throughput(&cjob, n_jobs);
    double cb2 = bare_throughput(1, n_jobs, tmp), cp2 = pool_throughput(&cjob, n_jobs);
    double hb1 = bare_throughput(0, n_jobs * 2, tmp), hp1 = pool_throughput(&hjob, n_jobs * 2);
    double hb2 = bare_throughput(0, n_jobs * 2, tmp), hp2 = pool_throughput(&hjob, n_jobs * 2);
    double cb = (cb1 + cb2) / 2, cp = (cp1 + cp2) / 2, hb = (hb1 + hb2) / 2, hp = (hp1 + hp2) / 2;
    printf("throughput, trivial C (compile+run+judge), 2-way parallel: sandbox pool %.2f jobs/s, bare gcc+run "
           "%.2f jobs/s, ratio %.3f (target >= 0.9)\n", cp, cb, cp / cb);
    printf("throughput, HumanEval/0 (python harness), 2-way parallel: sandbox pool %.2f jobs/s, bare python3 "
           "%.2f jobs/s, ratio %.3f (target >= 0.9)\n", hp, hb, hp / hb);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    if (system(cmd)) {}
    sandbox_shutdown();
    return 0;
}
