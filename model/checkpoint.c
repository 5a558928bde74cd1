/* model/checkpoint.c — see checkpoint.h */
#include "model/checkpoint.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/file.h"
#include "core/safetensors.h"
#include "model/ops.h"

#define OPT_FILE "optimizer.safetensors"

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Remove a checkpoint directory (flat: plain files only). */
static int remove_flat_dir(const char *dir, CrError *e) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : cr_error_set(e, "%s: cannot open directory: %s", dir, strerror(errno));
    struct dirent *de;
    int rc = 0;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        char *p = cr_path_join(dir, de->d_name);
        if (unlink(p) != 0) rc = cr_error_set(e, "%s: cannot remove: %s", p, strerror(errno));
        free(p);
        if (rc) break;
    }
    closedir(d);
    if (!rc && rmdir(dir) != 0) rc = cr_error_set(e, "%s: cannot remove directory: %s", dir, strerror(errno));
    return rc;
}

static char *parent_of(const char *path) {
    char *p = cr_strdup(path);
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') p[--n] = 0;
    char *slash = strrchr(p, '/');
    if (!slash) { free(p); return cr_strdup("."); }
    if (slash == p) slash[1] = 0; else *slash = 0;
    return p;
}

static int save_optimizer(const char *path, const Model *m, const AdamW *opt, CrError *e) {
    if (opt->n != m->n_params || opt->n_tensors != m->n_tensors)
        return cr_error_set(e, "%s: optimizer state does not match the model (%zu vs %zu parameters)", path,
                            opt->n, m->n_params);
    /* moments in backend memory -> host once (the CPU backend's are host memory) */
    const Ops *ops = opt->ops ? opt->ops : ops_cpu();
    int direct = strcmp(ops->name, "cpu") == 0;
    float *hm = opt->m, *hv = opt->v;
    if (!direct) {
        size_t bytes = sizeof(float) * (opt->n ? opt->n : 1);
        hm = cr_malloc(bytes);
        hv = cr_malloc(bytes);
        ops->download(hm, opt->m, sizeof(float) * opt->n);
        ops->download(hv, opt->v, sizeof(float) * opt->n);
    }
    int n = 2 * m->n_tensors;
    StEntry *ent = cr_calloc((size_t)(n ? n : 1), sizeof *ent);
    char (*names)[112] = cr_malloc(sizeof *names * (size_t)(n ? n : 1));
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *p = &m->tensors[i];
        for (int k = 0; k < 2; k++) {
            StEntry *x = &ent[2 * i + k];
            snprintf(names[2 * i + k], sizeof names[0], "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
            x->name = names[2 * i + k];
            x->dtype = ST_F32;
            x->ndim = p->ndim;
            for (int d = 0; d < p->ndim; d++) x->shape[d] = p->shape[d];
            x->data = (k ? hv : hm) + p->offset;
        }
    }
    char meta[512];
    snprintf(meta, sizeof meta,
             "{\"format\":\"crucible-adamw\",\"step\":\"%ld\",\"lr\":\"%.9g\",\"beta1\":\"%.9g\",\"beta2\":\"%.9g\","
             "\"eps\":\"%.9g\",\"weight_decay\":\"%.9g\"}",
             opt->step, opt->cfg.lr, opt->cfg.beta1, opt->cfg.beta2, opt->cfg.eps, opt->cfg.weight_decay);
    int rc = st_write(path, ent, n, meta, e);
    free(ent);
    free(names);
    if (!direct) {
        free(hm);
        free(hv);
    }
    return rc;
}

static int copy_file(const char *src, const char *dst, CrError *e) {
    size_t len;
    char *buf = cr_read_file(src, &len, e);
    if (!buf) return -1;
    int rc = cr_write_file_atomic(dst, buf, len, e);
    free(buf);
    return rc;
}

int checkpoint_save_with_tokenizer(const char *dir_arg, const Model *m, const AdamW *opt, const char *state_json,
                                   const char *tokenizer_json, CrError *e) {
    if (state_json) {
        cJSON *st = cJSON_Parse(state_json);
        cJSON_Delete(st);
        if (!st) return cr_error_set(e, "%s: state.json text is not valid JSON", dir_arg);
    }
    /* "a/b/" and "a/b" are the same checkpoint (DIR.partial must sit beside DIR). */
    char *dir = cr_strdup(dir_arg);
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dir[--dl] = 0;
    char *tmp = cr_malloc(dl + 32), *old = cr_malloc(dl + 32);
    snprintf(tmp, dl + 32, "%s.partial", dir);
    snprintf(old, dl + 32, "%s.old.%ld", dir, (long)getpid());
    char *parent = parent_of(dir);
    int rc = -1;
    if (cr_mkdir_p(parent, e) || remove_flat_dir(tmp, e) || cr_mkdir_p(tmp, e)) goto out;
    if (model_save(m, tmp, e)) goto out;
    char *p;
    if (opt) {
        p = cr_path_join(tmp, OPT_FILE);
        int r = save_optimizer(p, m, opt, e);
        free(p);
        if (r) goto out;
    }
    if (state_json) {
        p = cr_path_join(tmp, "state.json");
        int r = cr_write_file_atomic(p, state_json, strlen(state_json), e);
        free(p);
        if (r) goto out;
    }
    if (tokenizer_json && cr_file_exists(tokenizer_json)) {
        p = cr_path_join(tmp, "tokenizer.json");
        int r = copy_file(tokenizer_json, p, e);
        free(p);
        if (r) goto out;
    }
    p = cr_path_join(tmp, "DONE");
    int r = cr_write_file_atomic(p, "complete\n", 9, e);
    free(p);
    if (r) goto out;
    /* Swap in: an existing DIR is moved aside first and removed only after the rename. */
    int had_old = is_dir(dir);
    if (had_old) {
        char *old_done = cr_path_join(dir, "DONE");
        int ours = cr_file_exists(old_done);
        free(old_done);
        if (!ours) {
            cr_error_set(e, "%s: exists and is not a complete checkpoint; refusing to replace it", dir);
            goto out;
        }
    }
    if (had_old && rename(dir, old) != 0) {
        cr_error_set(e, "%s: cannot move the previous checkpoint aside: %s", dir, strerror(errno));
        goto out;
    }
    if (rename(tmp, dir) != 0) {
        cr_error_set(e, "%s: cannot rename %s into place: %s", dir, tmp, strerror(errno));
        if (had_old) rename(old, dir);
        goto out;
    }
    if (cr_fsync_dir(parent, e)) goto out;
    rc = had_old ? remove_flat_dir(old, e) : 0;
out:
    if (rc && is_dir(tmp)) remove_flat_dir(tmp, NULL);   /* keep the first error */
    free(dir);
    free(tmp);
    free(old);
    free(parent);
    return rc;
}

int checkpoint_save(const char *dir, const Model *m, const AdamW *opt, const char *state_json, CrError *e) {
    return checkpoint_save_with_tokenizer(dir, m, opt, state_json, NULL, e);
}

static int meta_num(const SafeTensors *s, const char *path, const char *key, double *out, CrError *e) {
    const char *v = st_metadata(s, key);
    char *end = NULL;
    if (v) *out = strtod(v, &end);
    if (!v || end == v || *end || !isfinite(*out))
        return cr_error_set(e, "%s: __metadata__ \"%s\" is missing or not a number", path, key);
    return 0;
}

static int load_optimizer(const char *path, const Model *m, AdamW *opt, CrError *e) {
    SafeTensors *s = st_open(path, e);
    if (!s) return -1;
    double step, lr, b1, b2, eps, wd;
    int rc = -1, direct = 1;
    float *scratch = NULL;
    if (meta_num(s, path, "step", &step, e) || meta_num(s, path, "lr", &lr, e) ||
        meta_num(s, path, "beta1", &b1, e) || meta_num(s, path, "beta2", &b2, e) ||
        meta_num(s, path, "eps", &eps, e) || meta_num(s, path, "weight_decay", &wd, e))
        goto out;
    if (step < 0 || step != floor(step)) {
        cr_error_set(e, "%s: __metadata__ \"step\" must be a non-negative integer", path);
        goto out;
    }
    AdamWConfig cfg = {(float)lr, (float)b1, (float)b2, (float)eps, (float)wd};
    if (adamw_init(opt, m, cfg, e)) {
        cr_error_prefix(e, "%s", path);
        goto out;
    }
    opt->step = (long)step;
    /* the CPU backend reads straight into the moments; others through a host buffer */
    direct = strcmp(opt->ops->name, "cpu") == 0;
    size_t maxn = 1;
    for (int i = 0; i < m->n_tensors; i++) if (m->tensors[i].numel > maxn) maxn = m->tensors[i].numel;
    if (!direct) scratch = cr_alloc_aligned(sizeof(float) * maxn);
    if (st_count(s) != 2 * m->n_tensors) {
        cr_error_set(e, "%s: %d tensors, expected %d (exp_avg and exp_avg_sq per parameter)", path, st_count(s),
                     2 * m->n_tensors);
        goto fail;
    }
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *p = &m->tensors[i];
        for (int k = 0; k < 2; k++) {
            char name[112];
            snprintf(name, sizeof name, "%s.%s", k ? "exp_avg_sq" : "exp_avg", p->name);
            const StTensor *t = st_find(s, name);
            if (!t) {
                cr_error_set(e, "%s: missing tensor %s", path, name);
                goto fail;
            }
            int same = t->ndim == p->ndim && t->dtype == ST_F32;
            for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
            if (!same) {
                cr_error_set(e, "%s: tensor %s must be F32 with the shape of %s", path, name, p->name);
                goto fail;
            }
            if (direct) {
                if (st_read_f32(t, (k ? opt->v : opt->m) + p->offset, p->numel, e)) goto fail;
            } else {
                if (st_read_f32(t, scratch, p->numel, e)) goto fail;
                opt->ops->upload((k ? opt->v : opt->m) + p->offset, scratch, sizeof(float) * p->numel);
            }
        }
    }
    rc = 0;
    goto out;
fail:
    adamw_free(opt);
out:
    cr_free_aligned(scratch);
    st_close(s);
    return rc;
}

Model *checkpoint_load(const char *dir, AdamW *opt, char **state_json, CrError *e) {
    return checkpoint_load_ops(dir, ops_cpu(), opt, state_json, e);
}

Model *checkpoint_load_ops(const char *dir, const Ops *ops, AdamW *opt, char **state_json, CrError *e) {
    if (state_json) *state_json = NULL;
    char *done = cr_path_join(dir, "DONE");
    int complete = cr_file_exists(done);
    free(done);
    if (!complete)
        return cr_error_set(e, "%s: not a complete checkpoint (no DONE marker; interrupted save?)", dir), NULL;
    Model *m = model_load_ops(dir, ops, e);
    if (!m) return NULL;
    if (opt) {
        char *p = cr_path_join(dir, OPT_FILE);
        int rc = cr_file_exists(p) ? load_optimizer(p, m, opt, e)
                                   : cr_error_set(e, "%s: no optimizer state (cannot resume training)", p);
        free(p);
        if (rc) {
            model_free(m);
            return NULL;
        }
    }
    if (state_json) {
        char *p = cr_path_join(dir, "state.json");
        if (cr_file_exists(p)) {
            *state_json = cr_read_file(p, NULL, e);
            cJSON *st = *state_json ? cJSON_Parse(*state_json) : NULL;
            if (!st) {
                if (*state_json) cr_error_set(e, "%s: not valid JSON", p);
                free(*state_json);
                *state_json = NULL;
                free(p);
                if (opt) adamw_free(opt);
                model_free(m);
                return NULL;
            }
            cJSON_Delete(st);
        }
        free(p);
    }
    return m;
}

/* "step-<digits>" -> step number, else -1. */
static long parse_step_name(const char *name) {
    if (strncmp(name, "step-", 5) != 0 || !name[5]) return -1;
    long v = 0;
    for (const char *c = name + 5; *c; c++) {
        if (*c < '0' || *c > '9' || v > (long)1e15) return -1;
        v = v * 10 + (*c - '0');
    }
    return v;
}

char *checkpoint_latest(const char *run_dir, CrError *e) {
    char *sub = cr_path_join(run_dir, "checkpoints");
    char *base = is_dir(sub) ? sub : cr_strdup(run_dir);
    if (base != sub) free(sub);
    DIR *d = opendir(base);
    if (!d) {
        cr_error_set(e, "%s: cannot open directory: %s", base, strerror(errno));
        free(base);
        return NULL;
    }
    long best = -1;
    char *best_path = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        long step = parse_step_name(de->d_name);
        if (step < 0 || step <= best) continue;
        char *p = cr_path_join(base, de->d_name);
        char *done = cr_path_join(p, "DONE");
        if (is_dir(p) && cr_file_exists(done)) {
            free(best_path);
            best_path = p;
            best = step;
        } else {
            free(p);
        }
        free(done);
    }
    closedir(d);
    if (!best_path) cr_error_set(e, "%s: no complete checkpoint (step-N directory with DONE)", base);
    free(base);
    return best_path;
}

char *checkpoint_step_dir(const char *run_dir, long step) {
    size_t n = strlen(run_dir) + 48;
    char *p = cr_malloc(n);
    snprintf(p, n, "%s/checkpoints/step-%06ld", run_dir, step);
    return p;
}

typedef struct StepDir { long step; int complete; char *path; } StepDir;

static int cmp_step_desc(const void *a, const void *b) {
    const StepDir *x = a, *y = b;
    return x->step < y->step ? 1 : x->step > y->step ? -1 : 0;
}

/* Remove paths[0..n) (flat directories) until the first failure (*rc = -1, e set); frees
 * every path and the array. Returns how many were removed. */
static int remove_dirs(char **paths, int n, int *rc, CrError *e) {
    int removed = 0;
    for (int i = 0; i < n; i++) {
        if (*rc == 0) {
            if (remove_flat_dir(paths[i], e)) *rc = -1;
            else removed++;
        }
        free(paths[i]);
    }
    free(paths);
    return removed;
}

int checkpoint_prune(const char *run_dir, int keep_last, long *oldest_kept, CrError *e) {
    if (oldest_kept) *oldest_kept = -1;
    if (keep_last < 1) return cr_error_set(e, "checkpoint_prune: keep_last must be >= 1, got %d", keep_last);
    char *sub = cr_path_join(run_dir, "checkpoints");
    char *base = is_dir(sub) ? sub : cr_strdup(run_dir);
    if (base != sub) free(sub);
    DIR *d = opendir(base);
    if (!d) {
        cr_error_set(e, "%s: cannot open directory: %s", base, strerror(errno));
        free(base);
        return -1;
    }
    StepDir *v = NULL;
    int n = 0, removed = 0, rc = 0;
    char **leftovers = NULL;
    int nl = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "step-", 5) != 0) continue;
        char *p = cr_path_join(base, de->d_name);
        if (!is_dir(p)) { free(p); continue; }
        long step = parse_step_name(de->d_name);
        if (step >= 0) {
            char *done = cr_path_join(p, "DONE");
            v = cr_realloc(v, sizeof *v * (size_t)(n + 1));
            v[n++] = (StepDir){step, cr_file_exists(done), p};
            free(done);
        } else if (strstr(de->d_name, ".partial") || strstr(de->d_name, ".old.")) {
            leftovers = cr_realloc(leftovers, sizeof *leftovers * (size_t)(nl + 1));
            leftovers[nl++] = p;
        } else {
            free(p);
        }
    }
    closedir(d);
    qsort(v, (size_t)n, sizeof *v, cmp_step_desc);
    int kept = 0;
    for (int i = 0; i < n; i++) {
        int drop = v[i].complete ? kept >= keep_last : kept > 0;   /* incomplete: only below a complete one */
        if (v[i].complete && !drop) {
            kept++;
            if (oldest_kept) *oldest_kept = v[i].step;
        }
        if (drop && rc == 0) {
            if (remove_flat_dir(v[i].path, e)) rc = -1;
            else removed++;
        }
        free(v[i].path);
    }
    removed += remove_dirs(leftovers, nl, &rc, e);
    free(v);
    free(base);
    return rc ? -1 : removed;
}

int checkpoint_remove_before(const char *dir, long step, CrError *e) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : cr_error_set(e, "%s: cannot open directory: %s", dir, strerror(errno));
    char **doomed = NULL;
    int n = 0, rc = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        long s = parse_step_name(de->d_name);
        if (s < 0 || s >= step) continue;
        char *p = cr_path_join(dir, de->d_name);
        if (!is_dir(p)) { free(p); continue; }
        doomed = cr_realloc(doomed, sizeof *doomed * (size_t)(n + 1));
        doomed[n++] = p;
    }
    closedir(d);
    int removed = remove_dirs(doomed, n, &rc, e);
    return rc ? -1 : removed;
}
