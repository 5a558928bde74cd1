/* data/run_log.c — see run_log.h */
#include "data/run_log.h"
#include "core/alloc.h"
#include "core/file.h"

#include <math.h>
#include <stdlib.h>
#include <sys/time.h>

extern const char crucible_git_commit[];

static double wall_now(void) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return tv.tv_sec + tv.tv_usec * 1e-6;
}

RunLog *run_log_open(const char *run_dir, const char *kind, const char *config_json,
                     const char *provenance_json, long resume_step, CrError *e) {
    if (cr_mkdir_p(run_dir, e)) return NULL;
    RunLog *l = cr_calloc(1, sizeof *l);
    char *db = cr_path_join(run_dir, "run.db");
    l->rs = runstore_open(db, e);
    free(db);
    if (!l->rs) { free(l); return NULL; }
    if (resume_step >= 0) {
        l->run_id = runstore_latest_run(l->rs, e);
        if (l->run_id > 0 && runstore_truncate_after(l->rs, l->run_id, resume_step, e)) goto fail;
    }
    if (l->run_id <= 0) {
        l->run_id = runstore_begin_run(l->rs, kind, config_json, crucible_git_commit, provenance_json, e);
        if (l->run_id < 0) goto fail;
    }
    char *tb = cr_path_join(run_dir, "tb");
    if (resume_step >= 0 && tb_truncate_after(tb, resume_step, e)) {
        free(tb);
        goto fail;
    }
    l->tb = tb_open(tb, e);
    free(tb);
    if (!l->tb) goto fail;
    l->wall0 = wall_now();
    return l;
fail:
    runstore_close(l->rs);
    free(l);
    return NULL;
}

int run_log_step_begin(RunLog *l, long step, CrError *e) {
    l->step = step;
    return runstore_step_begin(l->rs, l->run_id, step, e);
}

int run_log_metric(RunLog *l, const char *name, double value, CrError *e) {
    if (isfinite(value) && tb_scalar(l->tb, name, l->step, wall_now(), (float)value))
        return cr_error_set(e, "tensorboard: %s", tb_error(l->tb));
    return runstore_add_metric(l->rs, name, isfinite(value) ? value : NAN, e);
}

int run_log_step_commit(RunLog *l, CrError *e) {
    if (runstore_step_commit(l->rs, e)) return -1;
    if (tb_flush(l->tb)) return cr_error_set(e, "tensorboard: %s", tb_error(l->tb));
    return 0;
}

void run_log_close(RunLog *l) {
    if (!l) return;
    tb_close(l->tb);
    runstore_close(l->rs);
    free(l);
}
