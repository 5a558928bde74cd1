/* tests/cli/test_report.c — `crucible report` draws what a run store holds. */
#include "tests/test.h"
#include "core/file.h"
#include "data/runstore.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int count(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) n++;
    return n;
}

TEST(cli_report_from_run_store) {
    char *dir = test_tmpdir();
    char *db = cr_path_join(dir, "run.db");
    CrError e;
    RunStore *rs = runstore_open(db, &e);
    CHECKF(rs != NULL, "%s", e.msg);
    if (!rs) return;
    int64_t run = runstore_begin_run(rs, "grpo", "{}", "abc", NULL, &e);
    CHECK(run > 0);
    const char *verd[3] = {"OK", "CE", "WA"};
    for (int s = 0; s < 4; s++) {
        CHECK(runstore_step_begin(rs, run, s, &e) == 0);
        CHECK(runstore_add_metric(rs, "reward_mean", 0.1 * s, &e) == 0);
        CHECK(runstore_add_metric(rs, "pass_rate", 0.05 * s, &e) == 0);
        CHECK(runstore_add_metric(rs, "kl_mean", 0.01 * s, &e) == 0);
        int64_t p = runstore_add_prompt(rs, "task/1", "Write <code> & run", &e);
        for (int g = 0; g < 3; g++) {
            RsRollout r = {p, s, g, "print('<hi>')", 5, g == 0 ? 1.0 : 0.0, 0.5};
            int64_t rid = runstore_add_rollout(rs, &r, &e);
            RsExecution x = {rid, verd[g], g == 0, 1, g == 0, g == 1 ? "error: <expected>" : NULL, NULL, 3, 1000, 0};
            CHECK(runstore_add_execution(rs, &x, &e) > 0);
        }
        CHECK(runstore_step_commit(rs, &e) == 0);
    }
    runstore_close(rs);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s report %s 2>/dev/null", test_crucible_bin(), dir);
    CHECK(system(cmd) == 0);
    char *html_path = cr_path_join(dir, "report.html");
    size_t n;
    char *html = cr_read_file(html_path, &n, &e);
    CHECKF(html != NULL, "%s", e.msg);
    if (!html) return;
    CHECK(count(html, "<svg") == 4);      /* reward, pass rate, KL, verdict mix */
    CHECK(strstr(html, "print(&#39;&lt;hi&gt;&#39;)") != NULL);
    CHECK(strstr(html, "error: &lt;expected&gt;") != NULL);
    CHECK(strstr(html, "<script") == NULL && strstr(html, "http://") == strstr(html, "http://www.w3.org"));
    /* not a run directory -> error, non-zero exit */
    snprintf(cmd, sizeof cmd, "%s report %s/nope 2>/dev/null", test_crucible_bin(), dir);
    CHECK(system(cmd) != 0);
    free(html); free(html_path); free(db); free(dir);
}
