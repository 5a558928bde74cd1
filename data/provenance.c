/* data/provenance.c — see provenance.h */
#include "data/provenance.h"
#include "core/alloc.h"
#include "core/file.h"

#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* The file's git blob id (hex); 0 or -1 with e set. */
static int file_id(const char *path, char hex[GIT_OID_HEXSZ + 1], long long *bytes, CrError *e) {
    struct stat sb;
    if (stat(path, &sb) != 0) return cr_error_set(e, "%s: cannot stat data file", path);
    if (git_libgit2_init() < 0) return cr_error_set(e, "libgit2 init failed");
    git_oid id;
    int rc = git_odb_hashfile(&id, path, GIT_OBJECT_BLOB);
    git_libgit2_shutdown();
    if (rc < 0) return cr_error_set(e, "%s: cannot hash data file", path);
    git_oid_tostr(hex, GIT_OID_HEXSZ + 1, &id);
    *bytes = (long long)sb.st_size;
    return 0;
}

int provenance_record_file(RunStore *rs, int64_t run_id, const char *kind, const char *path, CrError *e) {
    char hex[GIT_OID_HEXSZ + 1], detail[64];
    long long bytes;
    if (file_id(path, hex, &bytes, e)) return -1;
    snprintf(detail, sizeof detail, "{\"bytes\":%lld}", bytes);
    return runstore_add_source(rs, run_id, kind, path, hex, detail, e);
}

int provenance_check_resume(const char *run_dir, const char *kind, const char *path, const char *flag,
                            CrError *e) {
    char *db = cr_path_join(run_dir, "run.db");
    struct stat sb;
    if (stat(db, &sb) != 0) { free(db); return 0; } /* nothing recorded: nothing to compare */
    RunStore *rs = runstore_open_readonly(db, e);
    free(db);
    if (!rs) return -1;
    char *source = NULL, *revision = NULL, hex[GIT_OID_HEXSZ + 1];
    long long bytes;
    int rc = -1;
    int64_t run = runstore_latest_run(rs, e);
    if (run < 0) goto out;
    int found = run ? runstore_source(rs, run, kind, &source, &revision, e) : 0;
    if (found < 0) goto out;
    if (!found || !revision) { rc = 0; goto out; }
    if (file_id(path, hex, &bytes, e)) goto out;
    if (strcmp(hex, revision)) {
        cr_error_set(e, "%s %s: not the data this run began with (content id %.12s; the run recorded %.12s, "
                        "from %s): resuming on other data would not continue the run; start a new run from one "
                        "of its checkpoints (--model %s/checkpoints/step-N) instead",
                     flag, path, hex, revision, source, run_dir);
        goto out;
    }
    rc = 0;
out:
    free(source);
    free(revision);
    runstore_close(rs);
    return rc;
}

static int cmp_ptr_pair(const void *a, const void *b) {
    const SftExample *x = *(const SftExample *const *)a, *y = *(const SftExample *const *)b;
    int c = strcmp(x->repo, y->repo);
    return c ? c : strcmp(x->commit, y->commit);
}

int provenance_record_sft(RunStore *rs, int64_t run_id, const char *path, const SftExample *xs, int n,
                          CrError *e) {
    if (provenance_record_file(rs, run_id, "sft", path, e) < 0) return -1;
    const SftExample **v = cr_malloc(sizeof(*v) * (size_t)(n > 0 ? n : 1));
    int m = 0;
    for (int i = 0; i < n; i++)
        if (xs[i].repo && xs[i].commit) v[m++] = &xs[i];
    qsort(v, (size_t)m, sizeof *v, cmp_ptr_pair);
    int rc = 0;
    for (int i = 0; i < m && rc == 0;) {
        int j = i;
        while (j < m && cmp_ptr_pair(&v[i], &v[j]) == 0) j++;
        char detail[64];
        snprintf(detail, sizeof detail, "{\"examples\":%d}", j - i);
        rc = runstore_add_source(rs, run_id, "git", v[i]->repo, v[i]->commit, detail, e);
        i = j;
    }
    free(v);
    return rc;
}
