/* tests/reward/test_reward_model.c — the reward model learns P(pass) from a run store:
 * on a synthetic store where passing completions carry a marker the failing ones lack,
 * its held-out AUC must be high; AUC itself against hand-computed values. */
#include "tests/test.h"
#include "tests/util.h"
#include "core/file.h"
#include "reward/reward_model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TEST(reward_rm_auc_definition) {
    double s[5] = {0.9, 0.8, 0.3, 0.3, 0.1};
    int y[5] = {1, 0, 1, 0, 0};
    /* pairs (pos, neg): 0.9 beats all 3; 0.3 beats 0.1, ties 0.3, loses to 0.8 -> (3 + 1.5) / 6 */
    CHECK_NEAR(rm_auc(s, y, 5), 4.5 / 6.0, 1e-12);
    int all1[2] = {1, 1};
    CHECK(isnan(rm_auc(s, all1, 2)));
}

TEST(reward_rm_learns_pass_from_run_store) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 7) == 0);
    if (FAILED()) return;
    char db[1024];
    snprintf(db, sizeof db, "%s/run.db", d);
    static const char *const good[] = {"print(n + 1)", "print(a + b)", "print(n * 3)"};
    static const char *const bad[] = {"int main(void) { return 1; }", "while True: pass", "exit(3)"};
    CHECK(test_write_rm_runstore(db, 30, 6, good, bad, 3) == 0);
    if (FAILED()) return;
    CrError e;
    CHECK(test_run("%s rm train --db %s --model %s/model --out %s/rm --epochs 4 --lr 3e-3 --holdout 0.3 "
                   ">%s/rm.json 2>%s/rm.log", test_crucible_bin(), db, d, d, d, d) == 0);
    char p[1024];
    snprintf(p, sizeof p, "%s/rm.json", d);
    size_t n;
    char *js = cr_read_file(p, &n, &e);
    double auc = js && strstr(js, "\"holdout_auc\":") ? atof(strstr(js, "\"holdout_auc\":") + 14) : 0;
    CHECKF(auc > 0.9, "held-out AUC %.3f (%s)", auc, js ? js : "");
    free(js);
    /* pairwise, with batches smaller than a group: groups stay whole, so it learns too */
    CHECK(test_run("%s rm train --db %s --model %s/model --out %s/rmp --epochs 4 --lr 3e-3 --holdout 0.3 --pairwise "
                   "--batch-tokens 16 >%s/rmp.json 2>%s/rmp.log", test_crucible_bin(), db, d, d, d, d) == 0);
    snprintf(p, sizeof p, "%s/rmp.json", d);
    char *jp = cr_read_file(p, &n, &e);
    double aucp = jp && strstr(jp, "\"holdout_auc\":") ? atof(strstr(jp, "\"holdout_auc\":") + 14) : 0;
    CHECKF(aucp > 0.9, "pairwise held-out AUC %.3f (%s)", aucp, jp ? jp : "");
    free(jp);
    /* score through the CLI: a passing-style completion outscores a failing one */
    snprintf(p, sizeof p, "%s/score.jsonl", d);
    FILE *f = fopen(p, "w");
    fprintf(f, "{\"prompt\": \"Write a Python program that reads n.\", \"completion\": \"print(n * 3)\"}\n"
               "{\"prompt\": \"Write a Python program that reads n.\", \"completion\": \"while True: pass\"}\n");
    fclose(f);
    CHECK(test_run("%s rm score --rm %s/rm --data %s >%s/scores.jsonl 2>/dev/null", test_crucible_bin(), d, p, d) == 0);
    snprintf(p, sizeof p, "%s/scores.jsonl", d);
    char *sc = cr_read_file(p, &n, &e);
    double s0 = -1, s1 = -1;
    if (sc) {
        char *a = strstr(sc, "\"p_pass\": "), *b = a ? strstr(a + 1, "\"p_pass\": ") : NULL;
        if (a) s0 = atof(a + 10);
        if (b) s1 = atof(b + 10);
    }
    CHECKF(s0 > s1 && s0 >= 0 && s1 >= 0, "scores %g %g", s0, s1);
    free(sc);
    free(d);
}
