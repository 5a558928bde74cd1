/* tests/guarded/test_rm_guarded.c — reward-model training and scoring with the trunk on
 * the guarded CPU backend (tests/guarded_ops.h: host access to backend memory traps),
 * as `crucible rm train|score --device cuda` runs them: the saved trunk and head must be
 * bit-identical to the CPU run's, and so must the scores. */
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/tokenizer.h"
#include "reward/reward_model.h"
#include "tests/guarded_ops.h"
#include "tests/util.h"

TEST(guarded_rm_train_and_score_match_cpu) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 7) == 0);
    if (FAILED()) return;
    char db[1024], model[1024], out[2][1024];
    snprintf(db, sizeof db, "%s/run.db", d);
    snprintf(model, sizeof model, "%s/model", d);
    static const char *const good[] = {"print(n + 1)", "print(a + b)"}, *const bad[] = {"exit(3)", "while True: pass"};
    CHECK(test_write_rm_runstore(db, 6, 4, good, bad, 2) == 0);
    if (FAILED()) return;
    CrError e;
    const char *dbs[1] = {db};
    double auc[2];
    for (int k = 0; k < 2; k++) {
        snprintf(out[k], sizeof out[k], "%s/rm%d", d, k);
        RmTrainConfig c;
        rm_train_config_default(&c);
        c.dbs = dbs;
        c.n_dbs = 1;
        c.model_dir = model;
        c.out_dir = out[k];
        c.epochs = 2;
        c.lr = 3e-3;
        c.holdout = 0.3;
        c.device = "cpu";
        c.ops = k ? guarded_ops() : NULL;
        CHECKF(reward_model_train(&c, &auc[k], &e) == 0, "%s: %s", k ? "guarded" : "cpu", e.msg);
    }
    if (FAILED()) return;
    CHECKF(auc[0] == auc[1] || (auc[0] != auc[0] && auc[1] != auc[1]), "held-out AUC %g vs %g", auc[0], auc[1]);
    static const char *files[2] = {"model.safetensors", "rm_head.safetensors"};
    for (int i = 0; i < 2; i++) {
        char a[1100], b[1100];
        snprintf(a, sizeof a, "%s/%s", out[0], files[i]);
        snprintf(b, sizeof b, "%s/%s", out[1], files[i]);
        CHECKF(test_same_file(a, b), "%s of the guarded run differs from the CPU run's", files[i]);
    }
    /* scoring with the trunk on the guarded backend */
    char tj[1100];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", out[0]);
    Tokenizer *tok = tokenizer_load(tj, &e);
    CHECKF(tok != NULL, "%s", e.msg);
    RewardModel *rc = reward_model_load(out[0], &e), *rg = reward_model_load_ops(out[0], guarded_ops(), &e);
    CHECKF(rc && rg, "%s", e.msg);
    if (tok && rc && rg) {
        const char *comp[3] = {"print(n + 1)", "exit(3)", "while True: pass"};
        double pc[3], pg[3];
        CHECK(reward_model_score(rc, tok, "Write a Python program that reads n.", comp, 3, pc, &e) == 0);
        CHECKF(reward_model_score(rg, tok, "Write a Python program that reads n.", comp, 3, pg, &e) == 0, "%s", e.msg);
        for (int i = 0; i < 3; i++) CHECKF(pc[i] == pg[i], "score %d: %.9g (cpu) vs %.9g (guarded)", i, pc[i], pg[i]);
    }
    reward_model_free(rc);
    reward_model_free(rg);
    tokenizer_free(tok);
    free(d);
}
