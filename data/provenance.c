/* data/provenance.c — see provenance.h */
#include "data/provenance.h"
#include "core/alloc.h"

#include <git2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int provenance_record_file(RunStore *rs, int64_t run_id, const char *kind, const char *path, CrError *e) {
    struct stat sb;
    if (stat(path, &sb) != 0) return cr_error_set(e, "%s: cannot stat data file", path);
    if (git_libgit2_init() < 0) return cr_error_set(e, "libgit2 init failed");
    git_oid id;
    int rc = git_odb_hashfile(&id, path, GIT_OBJECT_BLOB);
    git_libgit2_shutdown();
    if (rc < 0) return cr_error_set(e, "%s: cannot hash data file", path);
    char hex[GIT_OID_HEXSZ + 1], detail[64];
    git_oid_tostr(hex, sizeof hex, &id);
    snprintf(detail, sizeof detail, "{\"bytes\":%lld}", (long long)sb.st_size);
    return runstore_add_source(rs, run_id, kind, path, hex, detail, e);
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
