/* tests/grpo/test_grpo_cli.c — `crucible grpo`, `eval`, `report` and `rm` end to end on a
 * tiny random model: every step lands in the run store with its rollouts and sandbox
 * executions, TensorBoard events are written, a final model is saved and loads. */
#include "tests/test.h"
#include "tests/util.h"
#include "core/file.h"
#include "data/runstore.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count_cb(void *ctx, const RsExample *x) {
    int *n = ctx;
    (*n)++;
    return x->verdict && x->verdict[0] ? 0 : 1;
}

TEST(grpo_cli_steps_store_and_eval) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 5) == 0);
    if (FAILED()) return;
    const char *bin = test_crucible_bin();
    CHECK(test_run("%s grpo --model %s/model --tasks configs/tiny/tasks_train.jsonl --out %s/run --steps 2 --group 3 "
                   "--prompts-per-step 2 --max-new-tokens 24 --lr 1e-4 --beta 0.04 --mu 2 --reward tests,format "
                   "--reward-weights 1,0.1 2>%s/grpo.log", bin, d, d, d) == 0);
    char p[1024];
    snprintf(p, sizeof p, "%s/run/final/DONE", d);
    CHECK(cr_file_exists(p));
    snprintf(p, sizeof p, "%s/run/run.db", d);
    CrError e;
    RunStore *rs = runstore_open_readonly(p, &e);
    CHECKF(rs != NULL, "%s", e.msg);
    if (!rs) return;
    int64_t run = runstore_latest_run(rs, &e);
    CHECK(runstore_last_step(rs, run, &e) == 2);
    int n = 0;
    CHECK(runstore_each_execution(rs, run, -1, -1, 0, count_cb, &n, &e) == 0);
    CHECK(n == 2 * 2 * 3);   /* steps x prompts x group */
    int64_t *st;
    double *v;
    int nv;
    CHECK(runstore_metric_series(rs, run, "kl_mean", &st, &v, &nv, &e) == 0 && nv == 2);
    CHECKF(nv == 2 && v[0] >= 0 && v[1] >= 0, "kl %g %g", nv ? v[0] : -1, nv > 1 ? v[1] : -1);
    free(st);
    free(v);
    CHECK(runstore_metric_series(rs, run, "pass_rate", &st, &v, &nv, &e) == 0 && nv == 2);
    free(st);
    free(v);
    runstore_close(rs);
    /* TensorBoard events exist */
    snprintf(p, sizeof p, "%s/run/tb", d);
    DIR *dir = opendir(p);
    int events = 0;
    for (struct dirent *de; dir && (de = readdir(dir));) events += strncmp(de->d_name, "events.out.tfevents.", 20) == 0;
    if (dir) closedir(dir);
    CHECK(events == 1);
    /* report and eval on the final policy */
    CHECK(test_run("%s report %s/run 2>/dev/null", bin, d) == 0);
    CHECK(test_run("%s eval --model %s/run/final --tasks configs/tiny/tasks_heldout.jsonl -n 2 -k 1,2,1 --limit 3 "
                   "--max-new-tokens 16 --temperature 1 >%s/eval.json 2>/dev/null", bin, d, d) == 0);
    snprintf(p, sizeof p, "%s/eval.json", d);
    size_t len;
    char *js = cr_read_file(p, &len, &e);
    CHECKF(js && strstr(js, "\"tasks\":3") && strstr(js, "\"pass@1\":") && strstr(js, "\"pass@2\":"), "eval: %s", js ? js : "");
    /* a repeated k is one key (JSON objects must not repeat keys) */
    CHECKF(js && strstr(js, "\"pass@1\":") && !strstr(strstr(js, "\"pass@1\":") + 1, "\"pass@1\":"), "eval: %s", js ? js : "");
    free(js);
    /* raw continuation of real HumanEval prompts (Codex stop strings) */
    CHECK(test_run("%s eval --model %s/run/final --tasks %s -n 2 -k 1,2 --limit 2 --prompt-format raw "
                   "--max-new-tokens 12 --temperature 1 --samples-out %s/samples.jsonl >%s/eval_raw.json 2>/dev/null", bin, d,
                   cr_file_exists("../shared/datasets/HumanEval.jsonl.gz") ? "../shared/datasets/HumanEval.jsonl.gz"
                                                                           : "/work/shared/datasets/HumanEval.jsonl.gz",
                   d, d) == 0);
    snprintf(p, sizeof p, "%s/eval_raw.json", d);
    js = cr_read_file(p, &len, &e);
    CHECKF(js && strstr(js, "\"tasks\":2") && strstr(js, "\"pass@2\":0"), "eval raw: %s", js ? js : "");
    free(js);
    /* more distinct k than it reports: refused, not silently dropped */
    CHECK(test_run("%s eval --model %s/run/final --tasks configs/tiny/tasks_heldout.jsonl -n 10 -k 1,2,3,4,5,6,7,8,9 "
                   ">/dev/null 2>&1", bin, d) == 2);
    /* k larger than n is a usage error */
    CHECK(test_run("%s eval --model %s/run/final --tasks configs/tiny/tasks_heldout.jsonl -n 1 -k 5 >/dev/null 2>&1", bin, d) == 1);
    free(d);
}

TEST(grpo_cli_rejects_bad_flags) {
    const char *bin = test_crucible_bin();
    CHECK(test_run("%s grpo --model x --tasks y --out z --loss-type nope 2>/dev/null", bin) == 1);
    CHECK(test_run("%s grpo --model x --tasks y --out z --scale-rewards sometimes 2>/dev/null", bin) == 1);
    CHECK(test_run("%s grpo --model x --tasks y --out z --reward tests,magic 2>/dev/null", bin) == 1);
    CHECK(test_run("%s grpo --model x --tasks y 2>/dev/null", bin) == 2);
}

TEST(grpo_cli_skips_prompts_longer_than_the_context) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 9) == 0);
    if (FAILED()) return;
    char p[1024];
    snprintf(p, sizeof p, "%s/tasks.jsonl", d);
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"id\": \"long\", \"language\": \"python\", \"prompt\": \"");
    for (int i = 0; i < 1200; i++) fprintf(f, "word ");
    fprintf(f, "\", \"tests\": [{\"stdin\": \"\", \"stdout\": \"1\\n\"}]}\n");
    fprintf(f, "{\"id\": \"short\", \"language\": \"python\", \"prompt\": \"print one\", \"tests\": [{\"stdin\": \"\", \"stdout\": \"1\\n\"}]}\n");
    fclose(f);
    const char *bin = test_crucible_bin();
    CHECK(test_run("%s grpo --model %s/model --tasks %s --out %s/run --steps 2 --group 2 --prompts-per-step 2 "
                   "--max-new-tokens 8 2>%s/log.txt", bin, d, p, d, d) == 0);
    snprintf(p, sizeof p, "%s/log.txt", d);
    size_t n;
    CrError e;
    char *log = cr_read_file(p, &n, &e);
    CHECKF(log && strstr(log, "skipping task long"), "log: %s", log ? log : "");
    free(log);
    /* only long tasks: a clear error, not a hang */
    snprintf(p, sizeof p, "%s/only_long.jsonl", d);
    f = fopen(p, "w");
    fprintf(f, "{\"id\": \"long\", \"language\": \"python\", \"prompt\": \"");
    for (int i = 0; i < 1200; i++) fprintf(f, "word ");
    fprintf(f, "\", \"tests\": [{\"stdin\": \"\", \"stdout\": \"1\\n\"}]}\n");
    fclose(f);
    CHECK(test_run("%s grpo --model %s/model --tasks %s --out %s/run2 --steps 1 --group 2 --prompts-per-step 1 "
                   ">/dev/null 2>&1", bin, d, p, d) == 1);
    free(d);
}
