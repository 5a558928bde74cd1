/* grpo/eval.h — pass@k of a model on a task set, through the sandbox.
 * Defines: EvalConfig, EvalResult, eval_config_default, eval_run.
 *
 * n samples per task (rollout engine; temperature/top-p as given; greedy when
 * temperature = 0, then every sample is the same), each judged in the sandbox pool;
 * pass@k per task by the unbiased estimator (reward/passk.h), averaged over tasks.
 * With --prompt-format raw, HumanEval-style Python tasks are sampled with the Codex
 * stop strings (grpo/task_prompt.h: task_prompt_stops). */
#ifndef CRUCIBLE_GRPO_EVAL_H
#define CRUCIBLE_GRPO_EVAL_H

#include <stdio.h>

#include "core/error.h"

struct Ops;

#define EVAL_MAX_K 8

typedef struct EvalConfig {
    const char *model_dir, *tasks_path, *prompt_format, *samples_out;
    long n, max_new_tokens, workers, limit, seed;
    int ks[EVAL_MAX_K], n_ks;
    double temperature, top_p, time_limit;
    const char *device;   /* --device value (model/device.h); NULL = cpu; opened after the pool */
    const struct Ops *ops;  /* the backend itself (library use, tests): overrides device */
} EvalConfig;

typedef struct EvalResult {
    int n_tasks;
    double pass_at[EVAL_MAX_K];   /* for cfg.ks[i] */
    long verdicts[9];
    double gen_s, judge_s;
} EvalResult;

void eval_config_default(EvalConfig *c);
int eval_run(const EvalConfig *c, EvalResult *out, CrError *e);

#endif
