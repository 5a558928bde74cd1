/* grpo/judge.h — turn model completions for tasks into sandbox verdicts.
 * Defines: JudgeItem, judge_source, judge_batch, judge_check_tasks.
 *
 * What is run for (task, completion):
 *  - the code is extracted from the completion (reward/format_reward.h: the last closed
 *    block tagged with the task's language, else an untagged block, else an unterminated
 *    one, else the raw text);
 *  - stdin/stdout tasks run that code against the task's tests;
 *  - code-style tasks (HumanEval, MBPP, ...) run program_prefix + completion when the
 *    completion is a raw continuation (no fence), program_prefix + block when the
 *    extracted block does not define the entry point itself; a block that defines it
 *    runs after the whole prompt for HumanEval/EvalPlus tasks (their prompt is a complete
 *    module: imports, helper functions, the entry point as a docstring-only stub that
 *    the block replaces) and after the prefix's top-level import lines for other
 *    formats (whose prefix may be an unfinished fragment); the task's test_code and
 *    check(entry_point) are appended by the sandbox, which requires proof that the
 *    harness reached its end.
 * All items of a batch are judged in parallel by the worker pool; results come back in
 * item order whatever order the workers finish in. */
#ifndef CRUCIBLE_GRPO_JUDGE_H
#define CRUCIBLE_GRPO_JUDGE_H

#include "core/error.h"
#include "data/tasks.h"
#include "sandbox/sandbox.h"

typedef struct JudgeItem {
    const Task *task;
    const char *completion;
    SandboxResult result;   /* filled by judge_batch; free with sandbox_result_free */
} JudgeItem;

/* The program judged for a completion (malloc'd). */
char *judge_source(const Task *t, const char *completion);
/* Judge n items with the pool. limits NULL = defaults. Returns 0, or -1 when the
 * sandbox itself failed (then every result that was filled is still valid; unfilled
 * ones are IE). */
int judge_batch(SandboxPool *pool, JudgeItem *items, int n, const SandboxLimits *limits, CrError *e);
/* Every task of tasks[0..n) (read from path) can be judged with a time limit of
 * time_limit_s (> 0, in the sandbox's range): its language is one the sandbox runs here.
 * 0, or -1 with e naming the flag or the file and task (so a bad task set or limit is an
 * error, not a run of IE). */
int judge_check_tasks(const Task *tasks, int n, const char *path, double time_limit_s, CrError *e);

#endif
