/* data/runstore.h — the run store: one SQLite database per run (RUN/run.db, WAL).
 * Defines: RunStore, RsRollout, RsExecution, RsExample, runstore_* functions.
 * Schema and example queries: docs/runstore.md.
 *
 * Durability contract: everything a training step writes (metrics, prompts, rollouts,
 * executions) goes in ONE transaction, opened by runstore_step_begin and made durable
 * by runstore_step_commit. A process killed at any point loses at most the step in
 * flight; the file always passes `PRAGMA integrity_check`. The writer uses
 * journal_mode=WAL and synchronous=FULL: a commit happens once per training step
 * (seconds apart), so the one fsync per commit is negligible, and a committed step
 * also survives power loss (NORMAL would only survive process crashes).
 * Readers (crucible report, rm train) may open the same file while a run writes:
 * WAL gives them a consistent snapshot; busy_timeout covers checkpoints.
 *
 * Errors: functions return 0 (or an id >= 1) on success and -1 with e = "PATH: what
 * failed: sqlite message". Strings passed in are copied by SQLite; strings returned in
 * RsExample are owned by the store and valid only during the callback. */
#ifndef CRUCIBLE_DATA_RUNSTORE_H
#define CRUCIBLE_DATA_RUNSTORE_H

#include <stdint.h>
#include "core/error.h"

typedef struct RunStore RunStore;

#define RUNSTORE_SCHEMA_VERSION 1

/* Open or create PATH, applying migrations up to RUNSTORE_SCHEMA_VERSION (PRAGMA
 * user_version). A database newer than this build is refused. */
RunStore *runstore_open(const char *path, CrError *e);
/* Read-only connection (never migrates; refuses a database with an older schema). */
RunStore *runstore_open_readonly(const char *path, CrError *e);
/* Closes (rolling back a step left open). NULL is fine. */
void runstore_close(RunStore *rs);

/* New run row. kind: "sft", "grpo", "rm", "eval"...; config_json and provenance_json
 * must be JSON text (provenance may be NULL = "{}"); code_commit: the git commit the
 * Crucible binary was built from; NULL = crucible_git_commit (core/version.h). Returns the run id or -1. */
int64_t runstore_begin_run(RunStore *rs, const char *kind, const char *config_json,
                           const char *code_commit, const char *provenance_json, CrError *e);
/* One data source of a run (e.g. kind "git": source = repo path, revision = commit
 * id, detail_json = {"files":N,...}; kind "file": source = path, revision = sha/size). */
int runstore_add_source(RunStore *rs, int64_t run_id, const char *kind, const char *source,
                        const char *revision, const char *detail_json, CrError *e);

/* ---- one transaction per training step ----------------------------------------- */
int runstore_step_begin(RunStore *rs, int64_t run_id, int64_t step, CrError *e);
int runstore_add_metric(RunStore *rs, const char *name, double value, CrError *e);
/* Prompt text of the run, stored once per (run, key); returns its id (existing or new). */
int64_t runstore_add_prompt(RunStore *rs, const char *key, const char *text, CrError *e);

typedef struct RsRollout {
    int64_t prompt_id;
    int64_t group_id;     /* GRPO group (same prompt, G samples) */
    int sample_index;     /* index inside the group */
    const char *completion;
    int n_tokens;
    double reward, advantage;
} RsRollout;
int64_t runstore_add_rollout(RunStore *rs, const RsRollout *r, CrError *e);

typedef struct RsExecution {
    int64_t rollout_id;
    const char *verdict;          /* OK WA CE RE TLE MLE OLE SV IE */
    int passed;                   /* all tests passed */
    int n_tests, n_passed;
    const char *compile_output;   /* may be NULL */
    const char *tests_json;       /* per-test results as JSON text, may be NULL */
    double time_ms;               /* wall time of the run step */
    int64_t memory_kb;            /* peak RSS */
    int exit_code;                /* or -signal */
} RsExecution;
int64_t runstore_add_execution(RunStore *rs, const RsExecution *x, CrError *e);

int runstore_step_commit(RunStore *rs, CrError *e);
/* Roll back the open step (e.g. after an error while filling it). */
void runstore_step_abort(RunStore *rs);

/* Remove every step after STEP of the run (and its metrics, rollouts, executions,
 * checkpoints) in one transaction: a resumed run continues from its checkpoint. */
int runstore_truncate_after(RunStore *rs, int64_t run_id, int64_t step, CrError *e);

int runstore_add_checkpoint(RunStore *rs, int64_t run_id, int64_t step, const char *path,
                            CrError *e);
/* The run's checkpoint rows below STEP go (their directories were pruned: the table lists
 * what can still be loaded). */
int runstore_forget_checkpoints_before(RunStore *rs, int64_t run_id, int64_t step, CrError *e);
/* Highest committed step of the run, or -1 if none (or on error, with e set: check
 * e->msg[0] when it matters). */
int64_t runstore_last_step(RunStore *rs, int64_t run_id, CrError *e);

/* ---- readers ------------------------------------------------------------------ */
typedef struct RsExample {
    int64_t run_id, step, rollout_id, group_id;
    const char *prompt, *completion, *verdict, *compile_output; /* compile_output may be NULL */
    int passed, n_tokens;
    double reward, advantage;
} RsExample;
/* Called once per execution joined with its rollout and prompt, ordered by rollout id.
 * run_id 0 = every run; step range inclusive (-1 = unbounded); limit 0 = all. A
 * non-zero return from cb stops the iteration and is returned. */
typedef int (*RsExampleFn)(void *ctx, const RsExample *x);
int runstore_each_execution(RunStore *rs, int64_t run_id, int64_t step_lo, int64_t step_hi,
                            int limit, RsExampleFn cb, void *ctx, CrError *e);
/* Metric NAME of a run by step (malloc'd arrays, ascending step). */
int runstore_metric_series(RunStore *rs, int64_t run_id, const char *name, int64_t **steps,
                           double **values, int *n, CrError *e);
/* Distinct metric names of a run (malloc'd array of malloc'd strings, sorted). */
int runstore_metric_names(RunStore *rs, int64_t run_id, char ***names, int *n, CrError *e);
/* Verdict counts over a step range (inclusive, -1 = unbounded), sorted by verdict. */
int runstore_verdict_histogram(RunStore *rs, int64_t run_id, int64_t step_lo, int64_t step_hi,
                               char ***verdicts, int64_t **counts, int *n, CrError *e);
/* The latest run id (0 if none). */
int64_t runstore_latest_run(RunStore *rs, CrError *e);
/* The first source of KIND recorded for a run: 1 and malloc'd source/revision (revision may be
 * NULL), 0 if there is none, -1 on error. */
int runstore_source(RunStore *rs, int64_t run_id, const char *kind, char **source, char **revision, CrError *e);

#endif
