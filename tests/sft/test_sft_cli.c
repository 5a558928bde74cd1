/* tests/sft/test_sft_cli.c — `crucible sft` end to end: the loss goes down, checkpoints
 * are written, and a run killed with SIGKILL and resumed ends with the same weights, bit
 * for bit, as an uninterrupted run. */
#include "tests/test.h"
#include "tests/util.h"
#include "core/file.h"
#include "data/runstore.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SFT_ARGS "--data configs/tiny/sft.jsonl --batch-tokens 512 --lr 3e-3 --max-steps 8 --save-every 2 --seed 3"

TEST(sft_cli_trains_and_resumes_bit_exactly) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 1) == 0);
    if (FAILED()) return;
    const char *bin = test_crucible_bin();
    /* uninterrupted */
    CHECK(test_run("OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 %s sft --model %s/model --out %s/a " SFT_ARGS " 2>%s/a.log",
                   bin, d, d, d) == 0);
    /* killed after its second checkpoint, then resumed */
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 exec %s sft --model %s/model --out %s/b " SFT_ARGS
             " 2>%s/b.log", bin, d, d, d);
    pid_t pid = fork();
    if (pid == 0) { execl("/bin/sh", "sh", "-c", cmd, (char *)NULL); _exit(127); }
    char done4[1024];
    snprintf(done4, sizeof done4, "%s/b/checkpoints/step-000004/DONE", d);
    for (int i = 0; i < 6000 && !cr_file_exists(done4); i++) usleep(10000);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    CHECKF(WIFSIGNALED(st), "the run finished before it could be killed");
    char fin_b[1024];
    snprintf(fin_b, sizeof fin_b, "%s/b/final/DONE", d);
    CHECK(!cr_file_exists(fin_b));
    CHECK(test_run("OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 %s sft --model %s/model --out %s/b " SFT_ARGS
                   " --resume 2>>%s/b.log", bin, d, d, d) == 0);
    char wa[1024], wb[1024];
    snprintf(wa, sizeof wa, "%s/a/final/model.safetensors", d);
    snprintf(wb, sizeof wb, "%s/b/final/model.safetensors", d);
    CHECKF(test_same_file(wa, wb), "resumed weights differ from the uninterrupted run's");
    /* a resumed run checks its optimizer options as a fresh one does, and writes nothing */
    CHECK(test_run("%s sft --model %s/model --out %s/b " SFT_ARGS " --resume --beta2 1 2>%s/bad.log", bin, d, d, d) != 0);
    char bl[1024];
    snprintf(bl, sizeof bl, "%s/bad.log", d);
    char *bad = cr_read_file(bl, NULL, NULL);
    CHECKF(bad && strstr(bad, "--beta2"), "stderr: %s", bad ? bad : "(none)");
    free(bad);
    CHECKF(test_same_file(wa, wb), "the rejected resume changed the final weights");
    /* the store holds each step exactly once and the loss went down */
    char db[1024];
    snprintf(db, sizeof db, "%s/b/run.db", d);
    CrError e;
    RunStore *rs = runstore_open_readonly(db, &e);
    CHECKF(rs != NULL, "%s", e.msg);
    if (!rs) return;
    int64_t *steps;
    double *loss;
    int n;
    CHECK(runstore_metric_series(rs, runstore_latest_run(rs, &e), "loss", &steps, &loss, &n, &e) == 0);
    CHECK(n == 8);
    for (int i = 0; i < n; i++) CHECK(steps[i] == i + 1);
    CHECKF(n == 8 && loss[7] < loss[0], "loss did not go down: %g -> %g", n ? loss[0] : 0, n ? loss[n - 1] : 0);
    free(steps);
    free(loss);
    runstore_close(rs);
    free(d);
}

/* What a run wrote is not lost to the next command: a new run (no --resume) into a run
 * directory that holds one is refused and leaves it as it was; a directory another run
 * holds (its .lock taken) is refused; `init` never writes over a checkpoint. */
TEST(sft_cli_keeps_an_earlier_run) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 1) == 0);
    if (FAILED()) return;
    const char *bin = test_crucible_bin();
    CHECK(test_run("%s sft --model %s/model --out %s/r --data configs/tiny/sft.jsonl --batch-tokens 512 --max-steps 2 "
                   "2>%s/1.log", bin, d, d, d) == 0);
    char fin[1024], copy[1024], log2[1024];
    snprintf(fin, sizeof fin, "%s/r/final/model.safetensors", d);
    snprintf(copy, sizeof copy, "%s/keep.safetensors", d);
    CHECK(test_run("cp %s %s", fin, copy) == 0);
    CHECK(test_run("%s sft --model %s/model --out %s/r --data configs/tiny/sft.jsonl --batch-tokens 512 --max-steps 2 "
                   "--lr 1e-2 2>%s/2.log", bin, d, d, d) != 0);
    snprintf(log2, sizeof log2, "%s/2.log", d);
    char *msg = cr_read_file(log2, NULL, NULL);
    CHECKF(msg && strstr(msg, "--resume") && strstr(msg, "/r"), "stderr: %s", msg ? msg : "(none)");
    free(msg);
    CHECKF(test_same_file(fin, copy), "a refused run changed the earlier run's final weights");
    /* a directory another process holds */
    char lock[1024];
    snprintf(lock, sizeof lock, "%s/busy", d);
    CHECK(test_run("mkdir -p %s && flock %s/.lock -c 'sleep 3' & sleep 0.5; %s sft --model %s/model --out %s "
                   "--data configs/tiny/sft.jsonl --batch-tokens 512 --max-steps 1 2>%s/3.log; rc=$?; wait; "
                   "test $rc -ne 0 && grep -q 'in use' %s/3.log", lock, lock, bin, d, lock, d, d) == 0);
    /* init over a checkpoint: refused, the checkpoint as it was */
    char w[1024], wcopy[1024];
    snprintf(w, sizeof w, "%s/model/model.safetensors", d);
    snprintf(wcopy, sizeof wcopy, "%s/model_keep.safetensors", d);
    CHECK(test_run("cp %s %s", w, wcopy) == 0);
    CHECK(test_run("%s init --config configs/tiny/model.json --out %s/model --seed 9 2>%s/4.log", bin, d, d) != 0);
    CHECKF(test_same_file(w, wcopy), "init wrote over an existing checkpoint");
    char tj[1024];
    snprintf(tj, sizeof tj, "%s/model/tokenizer.json", d);
    CHECK(cr_file_exists(tj));
    free(d);
}

/* A checkpoint's state.json that was tampered with is refused on --resume, naming the field:
 * a negative step, a fractional cursor, another trainer's state, a step past the total. */
TEST(sft_cli_resume_checks_state_json) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 1) == 0);
    if (FAILED()) return;
    const char *bin = test_crucible_bin();
    CHECK(test_run("%s sft --model %s/model --out %s/r --data configs/tiny/sft.jsonl --batch-tokens 512 --max-steps 3 "
                   "--save-every 1 2>%s/1.log", bin, d, d, d) == 0);
    static const char *const bad[][2] = {
        {"{\"trainer\":\"sft\",\"step\":-8,\"epoch\":0,\"cursor\":0,\"total_steps\":3,\"seed\":0}", "\"step\""},
        {"{\"trainer\":\"sft\",\"step\":2,\"epoch\":0,\"cursor\":1.5,\"total_steps\":3,\"seed\":0}", "\"cursor\""},
        {"{\"trainer\":\"grpo\",\"step\":2,\"epoch\":0,\"cursor\":0,\"total_steps\":3,\"seed\":0}", "\"trainer\""},
        {"{\"trainer\":\"sft\",\"step\":8,\"epoch\":0,\"cursor\":0,\"total_steps\":3,\"seed\":0}", "total_steps"},
    };
    for (int i = 0; i < 4; i++) {
        char p[1024];
        snprintf(p, sizeof p, "%s/r/checkpoints/step-000002/state.json", d);  /* the newest (step 3 is final/) */
        CrError e;
        CHECKF(cr_write_file_atomic(p, bad[i][0], strlen(bad[i][0]), &e) == 0, "%s", e.msg);
        CHECK(test_run("%s sft --model %s/model --out %s/r --data configs/tiny/sft.jsonl --batch-tokens 512 "
                       "--max-steps 3 --resume 2>%s/2.log", bin, d, d, d) != 0);
        char lp[1024];
        snprintf(lp, sizeof lp, "%s/2.log", d);
        char *msg = cr_read_file(lp, NULL, NULL);
        CHECKF(msg && strstr(msg, "state.json") && strstr(msg, bad[i][1]), "case %d: %s", i, msg ? msg : "(none)");
        free(msg);
    }
    free(d);
}

/* --resume on other data is refused by content (the run store's source id), and the same
 * bytes under another path are accepted; --keep-last prunes the step checkpoints. */
TEST(sft_cli_resume_checks_the_data) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 1) == 0);
    if (FAILED()) return;
    const char *bin = test_crucible_bin();
    CHECK(test_run("%s sft --model %s/model --out %s/r --data configs/tiny/sft.jsonl --batch-tokens 512 --max-steps 3 "
                   "--save-every 1 --keep-last 1 2>%s/1.log", bin, d, d, d) == 0);
    /* --keep-last 1: of steps 1 and 2 (3 is final/) only 2 stays */
    char ck[1024];
    snprintf(ck, sizeof ck, "%s/r/checkpoints/step-000001", d);
    CHECK(!cr_file_exists(ck));
    snprintf(ck, sizeof ck, "%s/r/checkpoints/step-000002/DONE", d);
    CHECK(cr_file_exists(ck));
    CHECK(test_run("head -n 50 configs/tiny/sft.jsonl > %s/other.jsonl && cp configs/tiny/sft.jsonl %s/same.jsonl",
                   d, d) == 0);
    CHECK(test_run("%s sft --model %s/model --out %s/r --data %s/other.jsonl --batch-tokens 512 --max-steps 3 "
                   "--resume 2>%s/2.log", bin, d, d, d, d) != 0);
    char lp[1024];
    snprintf(lp, sizeof lp, "%s/2.log", d);
    char *msg = cr_read_file(lp, NULL, NULL);
    CHECKF(msg && strstr(msg, "--data") && strstr(msg, "other.jsonl") && strstr(msg, "not the data this run began with"),
           "%s", msg ? msg : "(none)");
    free(msg);
    CHECK(test_run("%s sft --model %s/model --out %s/r --data %s/same.jsonl --batch-tokens 512 --max-steps 3 "
                   "--resume 2>%s/3.log", bin, d, d, d, d) == 0);
    free(d);
}

TEST(sft_cli_bad_input_is_a_clear_error) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 2) == 0);
    char bad[1024];
    snprintf(bad, sizeof bad, "%s/bad.jsonl", d);
    FILE *f = fopen(bad, "w");
    fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"yo\"}]}\n{\"messages\": 3}\n");
    fclose(f);
    CHECK(test_run("%s sft --model %s/model --data %s --out %s/r 2>%s/err.txt", test_crucible_bin(), d, bad, d, d) == 1);
    char ep[1024];
    snprintf(ep, sizeof ep, "%s/err.txt", d);
    size_t n;
    CrError e;
    char *msg = cr_read_file(ep, &n, &e);
    CHECKF(msg && strstr(msg, "bad.jsonl") && strstr(msg, ":2"), "message: %s", msg ? msg : "(none)");
    free(msg);
    CHECK(test_run("%s sft --model %s/nope --data configs/tiny/sft.jsonl --out %s/r2 2>/dev/null", test_crucible_bin(), d, d) == 1);
    CHECK(test_run("%s sft --model %s/model --data configs/tiny/sft.jsonl --out %s/r3 --lr -1 2>/dev/null", test_crucible_bin(), d, d) == 1);
    free(d);
}
