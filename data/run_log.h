/* data/run_log.h — what a training run records, in one place: metrics go to the run
 * store (RUN/run.db, one transaction per step) and to TensorBoard (RUN/tb/).
 * Defines: RunLog, run_log_open, run_log_step_begin, run_log_metric, run_log_step_commit,
 * run_log_close.
 *
 * Resuming (resume_step >= 0): the latest run of the store is continued and every step
 * after resume_step is removed first, so the store holds exactly the steps of the
 * resumed trajectory. */
#ifndef CRUCIBLE_DATA_RUN_LOG_H
#define CRUCIBLE_DATA_RUN_LOG_H

#include <stdint.h>

#include "core/error.h"
#include "core/tensorboard.h"
#include "data/runstore.h"

typedef struct RunLog {
    RunStore *rs;
    TbWriter *tb;
    int64_t run_id;
    long step;
    double wall0;
} RunLog;

/* kind: "sft", "grpo", "rm"; config_json: the run's effective flags; provenance_json may be NULL. */
RunLog *run_log_open(const char *run_dir, const char *kind, const char *config_json,
                     const char *provenance_json, long resume_step, CrError *e);
int run_log_step_begin(RunLog *l, long step, CrError *e);
/* Both stores; NaN values are recorded in the store as NULL and skipped in TensorBoard. */
int run_log_metric(RunLog *l, const char *name, double value, CrError *e);
int run_log_step_commit(RunLog *l, CrError *e);
void run_log_close(RunLog *l);

#endif
