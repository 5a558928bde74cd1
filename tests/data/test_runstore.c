/* tests/data/test_runstore.c — the SQLite run store: round trip, migrations, a writer
 * killed with SIGKILL mid-run, a reader running beside a writer. */
#include "tests/test.h"
#include "data/runstore.h"
#include "core/alloc.h"
#include "core/file.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define K_METRICS 5
#define K_GROUP 4

/* One GRPO-like step: K_METRICS metrics, one prompt, a group of K_GROUP rollouts each
 * with an execution. Returns 0 or -1. */
static int write_step(RunStore *rs, int64_t run, int64_t step, CrError *e) {
    if (runstore_step_begin(rs, run, step, e) < 0) return -1;
    for (int m = 0; m < K_METRICS; m++) {
        char name[32];
        snprintf(name, sizeof name, "m%d", m);
        if (runstore_add_metric(rs, name, (double)step * 10 + m, e) < 0) goto fail;
    }
    char key[32], text[64];
    snprintf(key, sizeof key, "task-%lld", (long long)(step % 3));
    snprintf(text, sizeof text, "prompt for %s", key);
    int64_t pid = runstore_add_prompt(rs, key, text, e);
    if (pid < 0) goto fail;
    for (int g = 0; g < K_GROUP; g++) {
        char comp[2048];
        memset(comp, 'a' + g, sizeof comp - 1);
        comp[sizeof comp - 1] = 0;
        RsRollout r = {.prompt_id = pid, .group_id = step, .sample_index = g, .completion = comp,
                       .n_tokens = 100 + g, .reward = g & 1, .advantage = (g & 1) ? 1.0 : -1.0};
        int64_t rid = runstore_add_rollout(rs, &r, e);
        if (rid < 0) goto fail;
        RsExecution x = {.rollout_id = rid, .verdict = (g & 1) ? "OK" : (g == 0 ? "CE" : "WA"),
                         .passed = g & 1, .n_tests = 3, .n_passed = (g & 1) ? 3 : 1,
                         .compile_output = g == 0 ? "error: expected ';'" : NULL,
                         .tests_json = "[{\"ok\":true}]", .time_ms = 1.5, .memory_kb = 1024, .exit_code = 0};
        if (runstore_add_execution(rs, &x, e) < 0) goto fail;
    }
    return runstore_step_commit(rs, e);
fail:
    runstore_step_abort(rs);
    return -1;
}

static int count_cb(void *ctx, const RsExample *x) {
    int *c = ctx;
    if (!x->prompt[0] || !x->completion[0] || !x->verdict[0]) return -2;
    if ((x->verdict[0] == 'O') != (x->passed != 0)) return -3;
    if (strcmp(x->verdict, "CE") == 0 && (!x->compile_output || !strstr(x->compile_output, "expected"))) return -4;
    (*c)++;
    return 0;
}

TEST(data_runstore_round_trip) {
    char *d = test_tmpdir();
    char *path = cr_path_join(d, "run.db");
    CrError e;
    RunStore *rs = runstore_open(path, &e);
    CHECKF(rs != NULL, "%s", e.msg);
    if (!rs) return;
    int64_t run = runstore_begin_run(rs, "grpo", "{\"group\":4}", "abc123", "{\"tasks\":\"t.jsonl\"}", &e);
    CHECKF(run == 1, "%s", e.msg);
    CHECK(runstore_begin_run(rs, "grpo", "{not json", "abc", NULL, &e) < 0 && strstr(e.msg, "config"));
    CHECK(runstore_add_source(rs, run, "git", "/repo", "deadbeef", "{\"files\":3}", &e) == 0);
    CHECK(runstore_last_step(rs, run, &e) == -1);
    for (int s = 0; s < 6; s++) CHECKF(write_step(rs, run, s, &e) == 0, "%s", e.msg);
    /* a step number used twice is refused and leaves the store as it was */
    CHECK(runstore_step_begin(rs, run, 3, &e) < 0);
    CHECK(runstore_add_metric(rs, "x", 1, &e) < 0 && strstr(e.msg, "no step open"));
    /* an aborted step leaves nothing */
    CHECK(runstore_step_begin(rs, run, 6, &e) == 0);
    CHECK(runstore_add_metric(rs, "m0", 99, &e) == 0);
    runstore_step_abort(rs);
    CHECK(runstore_last_step(rs, run, &e) == 5);
    CHECK(runstore_add_checkpoint(rs, run, 5, "runs/x/step-5", &e) == 0);
    runstore_close(rs);

    rs = runstore_open_readonly(path, &e);
    CHECKF(rs != NULL, "%s", e.msg);
    if (!rs) return;
    CHECK(runstore_latest_run(rs, &e) == 1);
    int64_t *steps; double *vals; int n;
    CHECK(runstore_metric_series(rs, run, "m2", &steps, &vals, &n, &e) == 0);
    CHECK(n == 6);
    for (int i = 0; i < n && i < 6; i++) CHECK(steps[i] == i && vals[i] == i * 10 + 2);
    free(steps); free(vals);
    char **names; int nn;
    CHECK(runstore_metric_names(rs, run, &names, &nn, &e) == 0 && nn == K_METRICS);
    CHECK(nn > 0 && strcmp(names[0], "m0") == 0);
    for (int i = 0; i < nn; i++) free(names[i]);
    free(names);
    char **v; int64_t *c; int nv;
    CHECK(runstore_verdict_histogram(rs, run, -1, -1, &v, &c, &nv, &e) == 0);
    CHECK(nv == 3 && strcmp(v[0], "CE") == 0 && c[0] == 6 && strcmp(v[1], "OK") == 0 && c[1] == 12 && c[2] == 6);
    for (int i = 0; i < nv; i++) free(v[i]);
    free(v); free(c);
    CHECK(runstore_verdict_histogram(rs, run, 2, 3, &v, &c, &nv, &e) == 0 && nv == 3 && c[1] == 4);
    for (int i = 0; i < nv; i++) free(v[i]);
    free(v); free(c);
    int cnt = 0;
    CHECK(runstore_each_execution(rs, run, -1, -1, 0, count_cb, &cnt, &e) == 0);
    CHECK(cnt == 6 * K_GROUP);
    cnt = 0;
    CHECK(runstore_each_execution(rs, 0, 1, 1, 0, count_cb, &cnt, &e) == 0 && cnt == K_GROUP);
    cnt = 0;
    CHECK(runstore_each_execution(rs, run, -1, -1, 5, count_cb, &cnt, &e) == 0 && cnt == 5);
    runstore_close(rs);

    /* independent check with the sqlite3 library: prompts are stored once per key */
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    sqlite3_stmt *st;
    CHECK(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM prompts), (SELECT count(*) FROM rollouts), "
                                 "(SELECT code_commit FROM runs WHERE id=1), (SELECT revision FROM sources)", -1, &st, NULL) == SQLITE_OK);
    CHECK(sqlite3_step(st) == SQLITE_ROW);
    CHECK(sqlite3_column_int(st, 0) == 3 && sqlite3_column_int(st, 1) == 6 * K_GROUP);
    CHECK(strcmp((const char *)sqlite3_column_text(st, 2), "abc123") == 0);
    CHECK(strcmp((const char *)sqlite3_column_text(st, 3), "deadbeef") == 0);
    sqlite3_finalize(st);
    CHECK(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW);
    CHECK(sqlite3_column_int(st, 0) == RUNSTORE_SCHEMA_VERSION);
    sqlite3_finalize(st);
    CHECK(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW);
    CHECK(strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0);
    sqlite3_finalize(st);
    /* a database from a newer crucible is refused, not damaged */
    CHECK(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL) == SQLITE_OK);
    sqlite3_close(db);
    CHECK(runstore_open(path, &e) == NULL && strstr(e.msg, "newer"));
    CHECK(runstore_open_readonly(path, &e) == NULL && strstr(e.msg, "99"));
    /* garbage file */
    char *junk = cr_path_join(d, "junk.db");
    CHECK(cr_write_file_atomic(junk, "this is not a database, just some text......................................................................", 100, &e) == 0);
    CHECK(runstore_open(junk, &e) == NULL && strstr(e.msg, "junk.db"));
    free(junk); free(path); free(d);
}

static int integrity_ok(const char *path) {
    sqlite3 *db;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK) return 0;
    sqlite3_stmt *st;
    int ok = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
             sqlite3_step(st) == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "ok") == 0;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok;
}

/* Count of rows of a per-step table for one step. */
static int rows_at(sqlite3 *db, const char *sql, int64_t step) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return -1;
    sqlite3_bind_int64(st, 1, step);
    int n = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int(st, 0) : -1;
    sqlite3_finalize(st);
    return n;
}

TEST(data_runstore_survives_sigkill) {
    char *d = test_tmpdir();
    char *path = cr_path_join(d, "run.db");
    int fds[2];
    CHECK(pipe(fds) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        CrError e;
        RunStore *rs = runstore_open(path, &e);
        if (!rs) _exit(3);
        int64_t run = runstore_begin_run(rs, "grpo", "{}", "test", NULL, &e);
        if (run < 0) _exit(4);
        for (int64_t s = 0;; s++) {
            if (write_step(rs, run, s, &e) < 0) _exit(5);
            /* report the step only after its commit returned */
            if (write(fds[1], &s, sizeof s) != sizeof s) _exit(6);
        }
    }
    close(fds[1]);
    int64_t last = -1, s;
    while (last < 40 && read(fds[0], &s, sizeof s) == sizeof s) last = s;
    /* kill while it writes the next steps (somewhere inside a transaction, most likely) */
    struct timespec ts = {0, 3 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CHECK(kill(pid, SIGKILL) == 0);
    while (read(fds[0], &s, sizeof s) == sizeof s) last = s;  /* steps reported before death */
    close(fds[0]);
    int status;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECKF(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "writer exited on its own: status %d", status);
    CHECK(last >= 40);

    CHECK(integrity_ok(path));
    CrError e;
    RunStore *rs = runstore_open(path, &e);
    CHECKF(rs != NULL, "%s", e.msg);
    if (!rs) return;
    int64_t have = runstore_last_step(rs, 1, &e);
    CHECKF(have == last || have == last + 1, "last committed %lld, reported %lld", (long long)have, (long long)last);
    runstore_close(rs);
    sqlite3 *db;
    CHECK(sqlite3_open(path, &db) == SQLITE_OK);
    /* every step is whole: all of its metrics, rollouts and executions, or nothing */
    for (int64_t k = 0; k <= have; k++) {
        CHECKF(rows_at(db, "SELECT count(*) FROM steps WHERE run_id=1 AND step=?1", k) == 1, "step %lld missing", (long long)k);
        CHECK(rows_at(db, "SELECT count(*) FROM metrics WHERE run_id=1 AND step=?1", k) == K_METRICS);
        CHECK(rows_at(db, "SELECT count(*) FROM rollouts WHERE run_id=1 AND step=?1", k) == K_GROUP);
        CHECK(rows_at(db, "SELECT count(*) FROM executions x JOIN rollouts r ON r.id=x.rollout_id WHERE r.step=?1", k) == K_GROUP);
        if (FAILED()) break;
    }
    CHECK(rows_at(db, "SELECT count(*) FROM metrics WHERE step > ?1", have) == 0);
    CHECK(rows_at(db, "SELECT count(*) FROM rollouts WHERE step > ?1", have) == 0);
    sqlite3_close(db);
    /* and the run can go on */
    rs = runstore_open(path, &e);
    CHECK(rs && write_step(rs, 1, have + 1, &e) == 0);
    runstore_close(rs);
    free(path); free(d);
}

TEST(data_runstore_concurrent_reader) {
    char *d = test_tmpdir();
    char *path = cr_path_join(d, "run.db");
    CrError e;
    RunStore *w = runstore_open(path, &e);
    CHECKF(w != NULL, "%s", e.msg);
    if (!w) return;
    CHECK(runstore_begin_run(w, "grpo", "{}", "test", NULL, &e) == 1);
    runstore_close(w);
    const int n_steps = 60;
    pid_t pid = fork();
    if (pid == 0) {
        RunStore *rs = runstore_open(path, &e);
        if (!rs) _exit(3);
        for (int s = 0; s < n_steps; s++) {
            if (write_step(rs, 1, s, &e) < 0) { fprintf(stderr, "writer: %s\n", e.msg); _exit(4); }
            struct timespec ts = {0, 2 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        runstore_close(rs);
        _exit(0);
    }
    /* read while it writes: every snapshot holds whole steps only, never an error */
    int reads = 0, done = 0, prev = -1;
    while (!done) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            done = 1;
            CHECKF(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer failed: %d", status);
        }
        RunStore *r = runstore_open_readonly(path, &e);
        CHECKF(r != NULL, "%s", e.msg);
        if (!r) break;
        int cnt = 0;
        CHECKF(runstore_each_execution(r, 1, -1, -1, 0, count_cb, &cnt, &e) == 0, "%s", e.msg);
        CHECKF(cnt % K_GROUP == 0, "partial step visible: %d executions", cnt);
        int64_t *steps; double *vals; int n;
        CHECKF(runstore_metric_series(r, 1, "m4", &steps, &vals, &n, &e) == 0, "%s", e.msg);
        CHECK(n >= prev);
        prev = n;
        free(steps); free(vals);
        runstore_close(r);
        reads++;
        if (FAILED()) { kill(pid, SIGKILL); waitpid(pid, NULL, 0); break; }
    }
    CHECK(prev == n_steps);
    CHECK(reads > 1);
    free(path); free(d);
}
