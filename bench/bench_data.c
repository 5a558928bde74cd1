/* bench/bench_data.c — data-layer throughput, measured in one run:
 *   run store: commit latency of a GRPO-sized step (64 rollouts of 2 KB + executions +
 *              8 metrics, one transaction, synchronous=FULL) and read-back speed;
 *   tasks:     parse speed of HumanEval (gzip) when the file is present.
 * Usage: build/bench/bench_data [DIR]   (DIR for the temporary database, default /tmp) */
#include "data/runstore.h"
#include "data/tasks.h"
#include "core/alloc.h"
#include "core/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int count_cb(void *ctx, const RsExample *x) {
    (*(long *)ctx) += (long)strlen(x->completion);
    return 0;
}

static int fail(const CrError *e) {
    fprintf(stderr, "bench_data: %s\n", e->msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[512];
    snprintf(path, sizeof path, "%s/bench_run_%ld.db", dir, (long)getpid());
    CrError e;
    RunStore *rs = runstore_open(path, &e);
    if (!rs) return fail(&e);
    int64_t run = runstore_begin_run(rs, "grpo", "{}", NULL, NULL, &e);
    if (run < 0) return fail(&e);
    char comp[2048];
    memset(comp, 'x', sizeof comp - 1);
    comp[sizeof comp - 1] = 0;
    const int steps = 50, rollouts = 64;
    double t0 = now();
    for (int s = 0; s < steps; s++) {
        if (runstore_step_begin(rs, run, s, &e) < 0) return fail(&e);
        for (int m = 0; m < 8; m++) {
            char name[16];
            snprintf(name, sizeof name, "m%d", m);
            if (runstore_add_metric(rs, name, s + m, &e) < 0) return fail(&e);
        }
        for (int g = 0; g < rollouts / 8; g++) {
            char key[32];
            snprintf(key, sizeof key, "task-%d", (s * 8 + g) % 100);
            int64_t p = runstore_add_prompt(rs, key, "prompt text", &e);
            if (p < 0) return fail(&e);
            for (int i = 0; i < 8; i++) {
                RsRollout r = {.prompt_id = p, .group_id = g, .sample_index = i, .completion = comp, .n_tokens = 500};
                int64_t id = runstore_add_rollout(rs, &r, &e);
                if (id < 0) return fail(&e);
                RsExecution x = {.rollout_id = id, .verdict = "OK", .passed = 1, .n_tests = 5, .n_passed = 5,
                                 .compile_output = "", .tests_json = "[]", .time_ms = 3};
                if (runstore_add_execution(rs, &x, &e) < 0) return fail(&e);
            }
        }
        if (runstore_step_commit(rs, &e) < 0) return fail(&e);
    }
    double t1 = now();
    long bytes = 0;
    if (runstore_each_execution(rs, run, -1, -1, 0, count_cb, &bytes, &e) < 0) return fail(&e);
    double t2 = now();
    runstore_close(rs);
    printf("runstore: %d steps x %d rollouts (2 KB each): %.2f ms per step commit, %.0f rollouts/s written\n",
           steps, rollouts, (t1 - t0) / steps * 1e3, steps * rollouts / (t1 - t0));
    printf("runstore: read back %d executions (%.1f MB of completions) in %.1f ms\n", steps * rollouts,
           bytes / 1e6, (t2 - t1) * 1e3);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int i = 0; i < 3; i++) {
        char p2[600];
        snprintf(p2, sizeof p2, "%s%s", path, suffix[i]);
        unlink(p2);
    }

    const char *he = "/work/shared/datasets/HumanEval.jsonl.gz";
    if (cr_file_exists(he)) {
        Task *ts;
        int n = 0, reps = 20;
        double a = now();
        for (int i = 0; i < reps; i++) {
            if (tasks_load(he, &ts, &n, &e) < 0) return fail(&e);
            tasks_free(ts, n);
        }
        printf("tasks: HumanEval.jsonl.gz (%d tasks) loaded in %.2f ms\n", n, (now() - a) / reps * 1e3);
    }
    return 0;
}
