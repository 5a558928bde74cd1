/* tests/cli/test_settings_range.c — settings out of range are refused up front with a
 * message naming the flag (or the task), not run into wrong numbers with exit 0:
 * sample's --top-p / --min-p, eval's and grpo's --time-limit, a task in a language the
 * sandbox does not run or with assertion tests outside python, sft/grpo --min-lr-ratio; and a diverging SFT run (--lr 1e30)
 * stops with an error instead of writing a non-finite checkpoint. */
#include "tests/test.h"
#include "tests/util.h"
#include "core/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cmd fails (exit status not 0) and its stderr (in DIR/err.log) holds `want`. */
static void refused(TestCtx *t_, const char *d, const char *want, const char *cmd) {
    int rc = test_run("%s 2>%s/err.log >/dev/null", cmd, d);
    char p[1024];
    snprintf(p, sizeof p, "%s/err.log", d);
    char *msg = cr_read_file(p, NULL, NULL);
    CHECKF(rc != 0 && msg && strstr(msg, want), "`%s`: exit %d, stderr: %s", cmd, rc, msg ? msg : "(none)");
    free(msg);
}

TEST(cli_settings_out_of_range_refused) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 2) == 0);
    if (FAILED()) return;
    const char *bin = test_crucible_bin();
    char cmd[4096], tasks[1024];
    snprintf(tasks, sizeof tasks, "%s/t.jsonl", d);
    FILE *f = fopen(tasks, "w");
    CHECK(f != NULL);
    if (!f) return;
    fputs("{\"id\":\"ok/1\",\"language\":\"python\",\"prompt\":\"p\",\"tests\":[{\"stdin\":\"\",\"stdout\":\"1\\n\"}]}\n", f);
    fputs("{\"id\":\"odd/2\",\"language\":\"cobol\",\"prompt\":\"p\",\"tests\":[{\"stdin\":\"\",\"stdout\":\"1\\n\"}]}\n", f);
    fclose(f);
    CHECK(test_run("echo '{\"prompt\":\"def f():\"}' > %s/p.jsonl", d) == 0);
    static const char *const sample_bad[][2] = {
        {"--top-p 2", "--top-p"}, {"--top-p 0", "--top-p"}, {"--min-p 2", "--min-p"}, {"--min-p -0.5", "--min-p"},
        {"--stop x --stop ''", "stop string 2 is empty"}};
    for (int i = 0; i < 5; i++) {
        snprintf(cmd, sizeof cmd, "%s sample --model %s/model --prompts %s/p.jsonl -n 1 --max-new-tokens 2 %s", bin, d,
                 d, sample_bad[i][0]);
        refused(t_, d, sample_bad[i][1], cmd);
    }
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model --tasks %s -n 1 --max-new-tokens 2", bin, d, tasks);
    refused(t_, d, "odd/2", cmd);  /* the task in a language the sandbox does not run */
    /* assertion tests in a language without the harness: refused up front, not judged IE */
    CHECK(test_run("printf '%%s\\n' '{\"id\":\"c/add\",\"language\":\"c\",\"prompt\":\"p\",\"entry_point\":\"add\","
                   "\"test_code\":\"int main(void){return 0;}\"}' > %s/ct.jsonl", d) == 0);
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model --tasks %s/ct.jsonl -n 1 --max-new-tokens 2", bin, d, d);
    refused(t_, d, "test_code) are supported for python only", cmd);
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model --tasks configs/tiny/tasks_heldout.jsonl -n 1 "
             "--max-new-tokens 2 --time-limit -1", bin, d);
    refused(t_, d, "--time-limit", cmd);
    snprintf(cmd, sizeof cmd, "%s eval --model %s/model --tasks configs/tiny/tasks_heldout.jsonl -n 1 "
             "--max-new-tokens 2 --time-limit 1e300", bin, d);
    refused(t_, d, "time limit", cmd);
    snprintf(cmd, sizeof cmd, "%s grpo --model %s/model --tasks %s --out %s/g --steps 1 --max-new-tokens 2", bin, d,
             tasks, d);
    refused(t_, d, "odd/2", cmd);
    snprintf(cmd, sizeof cmd, "%s grpo --model %s/model --tasks configs/tiny/tasks_heldout.jsonl --out %s/g2 "
             "--steps 1 --max-new-tokens 2 --min-lr-ratio -5", bin, d, d);
    refused(t_, d, "--min-lr-ratio", cmd);
    snprintf(cmd, sizeof cmd, "%s sft --model %s/model --data configs/tiny/sft.jsonl --out %s/s0 --max-steps 1 "
             "--min-lr-ratio 2", bin, d, d);
    refused(t_, d, "--min-lr-ratio", cmd);
    /* divergence: an error, and no non-finite final checkpoint */
    snprintf(cmd, sizeof cmd, "%s sft --model %s/model --data configs/tiny/sft.jsonl --out %s/s1 --max-steps 3 "
             "--batch-tokens 512 --lr 1e30", bin, d, d);
    refused(t_, d, "not finite", cmd);
    char fin[1024];
    snprintf(fin, sizeof fin, "%s/s1/final/DONE", d);
    CHECKF(!cr_file_exists(fin), "a diverged run wrote %s", fin);
    free(d);
}
