/* tests/guarded/test_trainers_guarded.c — the trainers, end to end, on the guarded CPU
 * backend (tests/guarded_ops.h): every buffer of the model, its gradients, AdamW moments,
 * the GRPO reference, the rollout cache and logits lives in memory the host cannot touch
 * outside the backend's own ops. `crucible sft`, `grpo` and `eval` with --device cuda run
 * exactly these loops; a host dereference of backend memory anywhere in them kills the
 * test here (SIGSEGV) instead of crashing a GPU run. Same kernels as ops_cpu(), so the
 * results must be bit-identical to the CPU run (GRPO and eval against the CPU run with
 * the engine's Ops path, CRUCIBLE_ROLLOUT_OPS=1, which a non-CPU backend always takes). */
#include "tests/test.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "grpo/eval.h"
#include "grpo/trainer.h"
#include "model/ops.h"
#include "sft/trainer.h"
#include "tests/guarded_ops.h"
#include "tests/util.h"

static char *path(const char *dir, const char *rel) {
    size_t n = strlen(dir) + strlen(rel) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, rel);
    return p;
}

TEST(guarded_sft_trainer_matches_cpu) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 5) == 0);
    if (FAILED()) return;
    char *model = path(d, "model"), *oa = path(d, "cpu"), *ob = path(d, "guarded");
    CrError e;
    for (int k = 0; k < 2; k++) {
        SftConfig c;
        sft_config_default(&c);
        c.model_dir = model;
        c.data_path = "configs/tiny/sft.jsonl";
        c.out_dir = k ? ob : oa;
        c.batch_tokens = 512;
        c.lr = 3e-3;
        c.max_steps = 4;
        c.save_every = 2;
        c.seed = 3;
        c.device = "cpu";
        c.ops = k ? guarded_ops() : NULL;
        CHECKF(sft_train(&c, &e) == 0, "%s: %s", k ? "guarded" : "cpu", e.msg);
    }
    char *wa = path(oa, "final/model.safetensors"), *wb = path(ob, "final/model.safetensors");
    char *pa = path(oa, "final/optimizer.safetensors"), *pb = path(ob, "final/optimizer.safetensors");
    CHECKF(test_same_file(wa, wb), "final weights of the guarded-backend SFT run differ from the CPU run's");
    CHECKF(test_same_file(pa, pb), "final optimizer state differs");
    free(wa), free(wb), free(pa), free(pb), free(model), free(oa), free(ob), free(d);
}

TEST(guarded_grpo_trainer_and_eval_match_cpu) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 9) == 0);
    char *tasks = path(d, "tasks.jsonl");
    CHECK(test_write_comment_tasks(tasks, 5) == 0);
    if (FAILED()) return;
    char *model = path(d, "model"), *oa = path(d, "cpu"), *ob = path(d, "guarded");
    CrError e;
    setenv("CRUCIBLE_ROLLOUT_OPS", "1", 1);  /* the CPU run through the same decode path */
    for (int k = 0; k < 2; k++) {
        GrpoConfig c;
        grpo_config_default(&c);
        c.model_dir = model;
        c.tasks_path = tasks;
        c.out_dir = k ? ob : oa;
        c.steps = 3;
        c.group = 4;
        c.prompts_per_step = 2;
        c.max_new_tokens = 3;
        c.lr = 1e-3;
        c.beta = 0.04;
        c.mu = 2;
        c.ref_reset_every = 2;
        c.save_every = 2;
        c.sandbox_workers = 2;
        c.seed = 4;
        c.device = "cpu";
        c.ops = k ? guarded_ops() : NULL;
        CHECKF(grpo_train(&c, &e) == 0, "%s: %s", k ? "guarded" : "cpu", e.msg);
    }
    char *wa = path(oa, "final/model.safetensors"), *wb = path(ob, "final/model.safetensors");
    CHECKF(test_same_file(wa, wb), "final weights of the guarded-backend GRPO run differ from the CPU run's");
    EvalResult r[2];
    for (int k = 0; k < 2; k++) {
        EvalConfig c;
        eval_config_default(&c);
        c.model_dir = model;
        c.tasks_path = tasks;
        c.n = 4;
        c.max_new_tokens = 3;
        c.workers = 2;
        c.seed = 2;
        c.device = "cpu";
        c.ops = k ? guarded_ops() : NULL;
        memset(&r[k], 0, sizeof r[k]);
        CHECKF(eval_run(&c, &r[k], &e) == 0, "eval %s: %s", k ? "guarded" : "cpu", e.msg);
    }
    CHECK(r[0].n_tasks == 5 && r[1].n_tasks == 5);
    CHECKF(r[0].pass_at[0] == r[1].pass_at[0], "eval pass@1 %g (cpu) vs %g (guarded)", r[0].pass_at[0], r[1].pass_at[0]);
    CHECKF(!memcmp(r[0].verdicts, r[1].verdicts, sizeof r[0].verdicts), "eval verdict counts differ");
    unsetenv("CRUCIBLE_ROLLOUT_OPS");
    free(wa), free(wb), free(model), free(oa), free(ob), free(tasks), free(d);
}
