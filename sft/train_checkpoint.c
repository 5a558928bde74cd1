/* sft/train_checkpoint.c — see train_checkpoint.h */
#include "sft/train_checkpoint.h"
#include "model/checkpoint.h"
#include "model/ops.h"
#include "core/file.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

/* What of a previous run OUT_DIR holds ("run.db", "final/", "step-N/"), or NULL. */
static const char *previous_run(const char *out_dir) {
    static const char *const marks[3] = {"run.db", "final", "checkpoints"};
    for (int i = 0; i < 3; i++) {
        char *p = cr_path_join(out_dir, marks[i]);
        int there = access(p, F_OK) == 0;
        free(p);
        if (there) return i == 0 ? "a run store (run.db)" : i == 1 ? "a final/ checkpoint" : "checkpoints/";
    }
    DIR *d = opendir(out_dir);
    if (!d) return NULL;
    const char *found = NULL;
    struct dirent *de;
    while (!found && (de = readdir(d)))
        if (!strncmp(de->d_name, "step-", 5) && de->d_name[5] >= '0' && de->d_name[5] <= '9') found = "a step-N checkpoint";
    closedir(d);
    return found;
}

int train_out_claim(const char *who, const char *out_dir, int resume, CrError *e) {
    if (cr_mkdir_p(out_dir, e)) return cr_error_prefix(e, "%s: --out", who), -1;
    char *lp = cr_path_join(out_dir, ".lock");
    int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        cr_error_set(e, "%s: %s: cannot create the run lock: %s", who, lp, strerror(errno));
        free(lp);
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        cr_error_set(e, "%s: %s is in use by another run (%s is locked)", who, out_dir, lp);
        free(lp);
        close(fd);
        return -1;
    }
    free(lp);
    const char *prev = resume ? NULL : previous_run(out_dir);
    if (prev) {
        cr_error_set(e, "%s: %s already holds %s of an earlier run: pass --resume to continue it, or choose another --out "
                        "(a new run there would replace or mix with its results)",
                     who, out_dir, prev);
        close(fd);
        return -1;
    }
    return fd;
}

void train_out_release(int fd) {
    if (fd >= 0) close(fd);  /* closing drops the flock */
}

int train_checkpoint(RunLog *log, const char *who, const char *out_dir, int final, long step, const Model *m,
                     const AdamW *opt, const char *state_json, const char *tokenizer_json, int keep_last,
                     long *oldest_kept, CrError *e) {
    if (oldest_kept) *oldest_kept = -1;
    /* a diverged model is not saved: loading it would be refused, and it would stand where
     * the last good checkpoint is looked for */
    const Ops *ops = m->ops ? m->ops : ops_cpu();
    size_t bad = 0;
    ops->count_nonfinite(m->params, m->n_params, &bad);
    if (bad)
        return cr_error_set(e, "%s: %zu weight(s) are not finite after step %ld (diverged; try a lower --lr): "
                               "checkpoint not written, the earlier ones kept", who, bad, step);
    char *dir = final ? cr_path_join(out_dir, "final") : checkpoint_step_dir(out_dir, step);
    int r = checkpoint_save_with_tokenizer(dir, m, opt, state_json, tokenizer_json, e);
    if (r == 0) r = runstore_add_checkpoint(log->rs, log->run_id, step, dir, e) < 0 ? -1 : 0;
    if (r == 0 && final) fprintf(stderr, "%s: %ld steps; final model in %s\n", who, step, dir);
    free(dir);
    if (r == 0 && !final && keep_last > 0) {
        /* pruning is housekeeping: a failure is reported and training goes on */
        CrError pe;
        long oldest = -1;
        if (checkpoint_prune(out_dir, keep_last, &oldest, &pe) < 0 ||
            (oldest > 0 && runstore_forget_checkpoints_before(log->rs, log->run_id, oldest, &pe)))
            fprintf(stderr, "%s: warning: --keep-last %d: %s\n", who, keep_last, pe.msg);
        if (oldest_kept) *oldest_kept = oldest;
    }
    return r;
}

int train_state_read(const char *state_json, const char *who, const char *const *keys, long *const *dst, int n,
                     long seed, CrError *e) {
    cJSON *o = cJSON_Parse(state_json);
    if (!o) return cr_error_set(e, "state.json: not valid JSON");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(o, "trainer");
    if (tr && (!cJSON_IsString(tr) || strcmp(tr->valuestring, who) != 0)) {
        cr_error_set(e, "state.json: field \"trainer\" is %s%s%s, not \"%s\": a checkpoint of another kind of run",
                     cJSON_IsString(tr) ? "\"" : "", cJSON_IsString(tr) ? tr->valuestring : "not a string",
                     cJSON_IsString(tr) ? "\"" : "", who);
        cJSON_Delete(o);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!cJSON_IsNumber(it)) { cJSON_Delete(o); return cr_error_set(e, "state.json: field \"%s\" missing", keys[i]); }
        double v = it->valuedouble;
        if (!(v >= 0 && v <= 1e15 && v == (double)(long)v)) {
            cJSON_Delete(o);
            return cr_error_set(e, "state.json: field \"%s\" is %g, not a count (an integer >= 0)", keys[i], v);
        }
        *dst[i] = (long)v;
    }
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(o, "seed");
    if (cJSON_IsNumber(sd) && (long)sd->valuedouble != seed) {
        long saved = (long)sd->valuedouble;   /* read before the tree is freed */
        cJSON_Delete(o);
        return cr_error_set(e, "state.json: the checkpoint was made with --seed %ld, not %ld", saved, seed);
    }
    cJSON_Delete(o);
    return 0;
}
