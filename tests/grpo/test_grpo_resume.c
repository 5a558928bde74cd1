/* tests/grpo/test_grpo_resume.c — `crucible grpo --resume` after SIGKILL ends with the
 * same weights, bit for bit, as an uninterrupted run: prompts, samples, verdicts,
 * advantages, old/reference log-probs and AdamW state all continue exactly. The run uses
 * beta > 0, mu = 2 and --ref-reset-every 2 with a checkpoint at step 3, so the resumed
 * run needs the reference reset at step 2 (not the initial model, not the step-3 policy). */
#include "tests/test.h"
#include "tests/util.h"
#include "core/file.h"
#include "data/runstore.h"

#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define GRPO_ARGS "--steps 5 --group 4 --prompts-per-step 2 --max-new-tokens 3 --lr 1e-3 --beta 0.04 --mu 2 " \
                  "--ref-reset-every 2 --save-every 3 --sandbox-workers 2"
#define ENV "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"

TEST(grpo_resume_after_sigkill_is_bit_exact) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 9) == 0);
    char tasks[1024];
    snprintf(tasks, sizeof tasks, "%s/tasks.jsonl", d);
    CHECK(test_write_comment_tasks(tasks, 5) == 0);
    if (FAILED()) return;
    const char *bin = test_crucible_bin();
    CHECK(test_run(ENV " %s grpo --model %s/model --tasks %s --out %s/a " GRPO_ARGS " --seed 4 2>%s/a.log", bin, d, tasks, d, d) == 0);
    char cmd[2048];
    snprintf(cmd, sizeof cmd, ENV " exec %s grpo --model %s/model --tasks %s --out %s/b " GRPO_ARGS " --seed 4 2>%s/b.log", bin, d,
             tasks, d, d);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/sh", "sh", "-c", cmd, (char *)NULL); _exit(127); }
    char done3[1024];
    snprintf(done3, sizeof done3, "%s/b/checkpoints/step-000003/DONE", d);
    for (int i = 0; i < 6000 && !cr_file_exists(done3); i++) usleep(5000);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECKF(WIFSIGNALED(st), "the run finished before it could be killed");
    char p[1024];
    snprintf(p, sizeof p, "%s/b/final/DONE", d);
    CHECK(!cr_file_exists(p));
    /* the reference reset at step 2 was kept for this checkpoint */
    snprintf(p, sizeof p, "%s/b/reference/step-000002/DONE", d);
    CHECK(cr_file_exists(p));
    CHECK(test_run(ENV " %s grpo --model %s/model --tasks %s --out %s/b " GRPO_ARGS " --seed 4 --resume 2>>%s/b.log", bin, d, tasks,
                   d, d) == 0);
    char wa[1024], wb[1024];
    snprintf(wa, sizeof wa, "%s/a/final/model.safetensors", d);
    snprintf(wb, sizeof wb, "%s/b/final/model.safetensors", d);
    CHECKF(test_same_file(wa, wb), "resumed weights differ from the uninterrupted run's");
    snprintf(wa, sizeof wa, "%s/a/final/optimizer.safetensors", d);
    snprintf(wb, sizeof wb, "%s/b/final/optimizer.safetensors", d);
    CHECKF(test_same_file(wa, wb), "resumed optimizer state differs");
    /* the store holds each step once; the steps' metrics equal the uninterrupted run's */
    RunStore *ra, *rb;
    CrError e;
    snprintf(wa, sizeof wa, "%s/a/run.db", d);
    snprintf(wb, sizeof wb, "%s/b/run.db", d);
    ra = runstore_open_readonly(wa, &e);
    rb = runstore_open_readonly(wb, &e);
    CHECK(ra && rb);
    if (!ra || !rb) { runstore_close(ra); runstore_close(rb); return; }
    const char *names[4] = {"reward_mean", "kl_mean", "loss", "grad_norm"};
    for (int k = 0; k < 4; k++) {
        int64_t *sa, *sb;
        double *va, *vb;
        int na, nb;
        CHECK(runstore_metric_series(ra, runstore_latest_run(ra, &e), names[k], &sa, &va, &na, &e) == 0);
        CHECK(runstore_metric_series(rb, runstore_latest_run(rb, &e), names[k], &sb, &vb, &nb, &e) == 0);
        CHECKF(na == 5 && nb == 5, "%s: %d and %d steps", names[k], na, nb);
        for (int i = 0; i < na && i < nb; i++)
            CHECKF(sa[i] == sb[i] && sa[i] == i + 1 && va[i] == vb[i], "%s step %lld: %.9g vs %.9g", names[k],
                   (long long)sa[i], va[i], vb[i]);
        free(sa); free(sb); free(va); free(vb);
    }
    runstore_close(ra);
    runstore_close(rb);
    /* resuming with another seed or another task file (by content, from the run store): errors */
    CHECK(test_run(ENV " %s grpo --model %s/model --tasks %s --out %s/b " GRPO_ARGS " --seed 5 --resume 2>%s/seed.log", bin,
                   d, tasks, d, d) == 1);
    char one[1024];
    snprintf(one, sizeof one, "%s/one.jsonl", d);
    CHECK(test_write_comment_tasks(one, 1) == 0);
    CHECK(test_run(ENV " %s grpo --model %s/model --tasks %s --out %s/b " GRPO_ARGS " --seed 4 --resume 2>%s/one.log", bin, d,
                   one, d, d) == 1);
    snprintf(p, sizeof p, "%s/one.log", d);
    size_t n;
    char *msg = cr_read_file(p, &n, &e);
    CHECKF(msg && strstr(msg, "--tasks") && strstr(msg, "not the data this run began with"), "%s", msg ? msg : "");
    free(msg);
    free(d);
}

/* --keep-last 1: only the newest step checkpoint stays, with the reference it resumes with;
 * the store lists what is left; the run still resumes from it. */
TEST(grpo_keep_last_prunes_checkpoints_and_references) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 9) == 0);
    char tasks[1024];
    snprintf(tasks, sizeof tasks, "%s/tasks.jsonl", d);
    CHECK(test_write_comment_tasks(tasks, 5) == 0);
    if (FAILED()) return;
    const char *bin = test_crucible_bin();
#define KEEP_ARGS "--group 2 --prompts-per-step 1 --max-new-tokens 2 --beta 0.04 --ref-reset-every 2 --save-every 1 " \
                  "--keep-last 1 --sandbox-workers 1"
    CHECK(test_run(ENV " %s grpo --model %s/model --tasks %s --out %s/k --steps 4 " KEEP_ARGS " 2>%s/k.log", bin, d, tasks,
                   d, d) == 0);
    char p[1024];
    /* steps 1..3 saved, 3 kept (4 is final/); step 3 resumes with the reference of step 2 */
    for (long s = 1; s <= 3; s++) {
        snprintf(p, sizeof p, "%s/k/checkpoints/step-%06ld", d, s);
        CHECKF(cr_file_exists(p) == (s == 3), "step %ld checkpoint %s", s, cr_file_exists(p) ? "kept" : "removed");
    }
    snprintf(p, sizeof p, "%s/k/reference/step-000002/DONE", d);
    CHECK(cr_file_exists(p));
    CHECK(test_run(ENV " %s grpo --model %s/model --tasks %s --out %s/k --steps 6 " KEEP_ARGS " --resume 2>>%s/k.log", bin, d,
                   tasks, d, d) == 0);
    /* resumed at 3, saved 4 and 5 (6 is final/): 5 kept, and it needs the reference of step 4 */
    for (long s = 3; s <= 5; s++) {
        snprintf(p, sizeof p, "%s/k/checkpoints/step-%06ld", d, s);
        CHECKF(cr_file_exists(p) == (s == 5), "step %ld checkpoint %s", s, cr_file_exists(p) ? "kept" : "removed");
    }
    snprintf(p, sizeof p, "%s/k/reference/step-000002", d);
    CHECKF(!cr_file_exists(p), "the step-2 reference outlived every checkpoint that needs it");
    snprintf(p, sizeof p, "%s/k/reference/step-000004/DONE", d);
    CHECK(cr_file_exists(p));
    /* the store lists the kept checkpoint and final/ only */
    snprintf(p, sizeof p, "%s/k/run.db", d);
    sqlite3 *db = NULL;
    sqlite3_stmt *q = NULL;
    char rows[256] = "";
    CHECK(sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
          sqlite3_prepare_v2(db, "SELECT step FROM checkpoints ORDER BY step", -1, &q, NULL) == SQLITE_OK);
    while (q && sqlite3_step(q) == SQLITE_ROW)
        snprintf(rows + strlen(rows), sizeof rows - strlen(rows), "%s%lld", rows[0] ? "," : "",
                 (long long)sqlite3_column_int64(q, 0));
    sqlite3_finalize(q);
    sqlite3_close(db);
    CHECKF(!strcmp(rows, "5,6"), "checkpoint rows: %s", rows);
    CHECK(test_run(ENV " %s grpo --model %s/model --tasks %s --out %s/k2 --steps 1 --keep-last -1 2>%s/neg.log", bin, d,
                   tasks, d, d) != 0);
#undef KEEP_ARGS
    free(d);
}
