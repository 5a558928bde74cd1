/* data/git_ingest.c — see git_ingest.h */
#include "data/git_ingest.h"
#include "data/code_filter.h"
#include "data/minhash.h"
#include "core/alloc.h"
#include "core/rng.h"

#include <cjson/cJSON.h>
#include <git2.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

void ingest_options_default(IngestOptions *o) {
    memset(o, 0, sizeof *o);
    o->fim_rate = 0.5;
    o->near_dup_threshold = 0.85;
    o->max_file_bytes = 1 << 20;
}

static int git_fail(CrError *e, const char *what, const char *arg) {
    const git_error *g = git_error_last();
    return cr_error_set(e, "%s '%s': %s", what, arg, g && g->message ? g->message : "libgit2 error");
}

/* Set of blob ids (exact duplicates). */
typedef struct OidSet { git_oid *v; size_t cap, n; } OidSet;
static size_t oid_slot(const OidSet *s, const git_oid *id) {
    uint64_t h;
    memcpy(&h, id->id, sizeof h);
    size_t i = (size_t)h & (s->cap - 1);
    static const git_oid zero;
    while (memcmp(&s->v[i], &zero, sizeof zero) != 0 && git_oid_cmp(&s->v[i], id) != 0) i = (i + 1) & (s->cap - 1);
    return i;
}
/* 1 if already present, else adds and returns 0. */
static int oid_seen(OidSet *s, const git_oid *id) {
    static const git_oid zero;
    if ((s->n + 1) * 2 > s->cap) {
        OidSet t = {cr_calloc(s->cap ? s->cap * 2 : 256, sizeof(git_oid)), s->cap ? s->cap * 2 : 256, 0};
        for (size_t i = 0; i < s->cap; i++)
            if (memcmp(&s->v[i], &zero, sizeof zero) != 0) { t.v[oid_slot(&t, &s->v[i])] = s->v[i]; t.n++; }
        free(s->v);
        *s = t;
    }
    size_t i = oid_slot(s, id);
    if (git_oid_cmp(&s->v[i], id) == 0) return 1;
    s->v[i] = *id;
    s->n++;
    return 0;
}

typedef struct Walk {
    const IngestOptions *o;
    git_repository *repo;
    FILE *out;
    IngestStats *st;
    OidSet seen;
    MinHashIndex *near;
    CrError *e;
    int failed;
    char **kept_paths;   /* for the log: near-duplicate id -> path kept */
    int n_kept_paths;
} Walk;

static uint64_t path_hash(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* Move a byte offset back to the start of a UTF-8 character. */
static size_t char_boundary(const char *s, size_t len, size_t i) {
    while (i > 0 && i < len && ((unsigned char)s[i] & 0xC0) == 0x80) i--;
    return i;
}

static int lang_wanted(const IngestOptions *o, const char *lang) {
    if (!o->languages || o->n_languages == 0) return 1;
    for (int i = 0; i < o->n_languages; i++)
        if (strcmp(o->languages[i], lang) == 0) return 1;
    return 0;
}

static void add_str(cJSON *o, const char *k, const char *v, size_t n) {
    char *tmp = cr_malloc(n + 1);
    memcpy(tmp, v, n);
    tmp[n] = 0;
    if (!cJSON_AddStringToObject(o, k, tmp)) CR_DIE("cJSON: out of memory");
    free(tmp);
}

static int emit(Walk *w, const char *path, const char *lang, const char *text, size_t len) {
    cJSON *o = cJSON_CreateObject();
    if (!o) CR_DIE("cJSON: out of memory");
    add_str(o, "repo", w->st->repo, strlen(w->st->repo));
    add_str(o, "commit", w->st->commit, strlen(w->st->commit));
    add_str(o, "path", path, strlen(path));
    add_str(o, "language", lang, strlen(lang));
    CrRng r;
    cr_rng_init(&r, w->o->seed, path_hash(path), 0);
    if (cr_rng_uniform(&r) < w->o->fim_rate) {
        size_t a = (size_t)(cr_rng_uniform(&r) * (double)(len + 1));
        size_t b = (size_t)(cr_rng_uniform(&r) * (double)(len + 1));
        if (a > len) a = len;
        if (b > len) b = len;
        if (a > b) { size_t t = a; a = b; b = t; }
        a = char_boundary(text, len, a);
        b = char_boundary(text, len, b);
        add_str(o, "fim_prefix", text, a);
        add_str(o, "fim_suffix", text + b, len - b);
        add_str(o, "fim_middle", text + a, b - a);
        w->st->fim++;
    } else {
        add_str(o, "prompt", "", 0);
        add_str(o, "completion", text, len);
    }
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!js) CR_DIE("cJSON: out of memory");
    int ok = fputs(js, w->out) >= 0 && fputc('\n', w->out) != EOF;
    cJSON_free(js);
    if (!ok) return cr_error_set(w->e, "write failed while ingesting %s", path);
    w->st->kept++;
    return 0;
}

static void skip_log(const Walk *w, const char *path, const char *why, const char *detail) {
    if (w->o->log) fprintf(w->o->log, "skip %s: %s%s%s\n", path, why, detail ? ": " : "", detail ? detail : "");
}

static int walk_cb(const char *root, const git_tree_entry *ent, void *payload) {
    Walk *w = payload;
    git_object_t type = git_tree_entry_type(ent);
    if (type == GIT_OBJECT_TREE) return 0;
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s%s", root, git_tree_entry_name(ent));
    w->st->entries++;
    git_filemode_t mode = git_tree_entry_filemode(ent);
    if (type == GIT_OBJECT_COMMIT || mode == GIT_FILEMODE_COMMIT) { w->st->submodules++; skip_log(w, path, "submodule", NULL); return 0; }
    if (mode == GIT_FILEMODE_LINK) { w->st->symlinks++; skip_log(w, path, "symlink", NULL); return 0; }
    if (type != GIT_OBJECT_BLOB) return 0;
    const char *lang = code_language(path);
    if (!lang) { w->st->not_source++; return 0; }
    if (!lang_wanted(w->o, lang)) { w->st->language_excluded++; return 0; }
    git_blob *blob = NULL;
    if (git_blob_lookup(&blob, w->repo, git_tree_entry_id(ent)) < 0) {
        git_fail(w->e, "cannot read blob of", path);
        w->failed = 1;
        return -1;
    }
    size_t len = (size_t)git_blob_rawsize(blob);
    const char *text = git_blob_rawcontent(blob);
    int rc = 0;
    if (len > w->o->max_file_bytes) { w->st->too_large++; skip_log(w, path, "too large", NULL); goto done; }
    const char *why = code_filter(lang, text ? text : "", text ? len : 0);
    if (why) { w->st->filtered++; skip_log(w, path, "filtered", why); goto done; }
    if (oid_seen(&w->seen, git_tree_entry_id(ent))) { w->st->dup_exact++; skip_log(w, path, "exact duplicate", NULL); goto done; }
    if (w->o->near_dup_threshold <= 1.0) {
        MinHash m;
        minhash_compute(text, len, &m);
        int dup = minhash_index_find_or_add(w->near, &m, w->o->near_dup_threshold);
        if (dup >= 0) {
            w->st->dup_near++;
            if (w->o->log) {
                char d[PATH_MAX + 16];
                snprintf(d, sizeof d, "of %s", dup < w->n_kept_paths ? w->kept_paths[dup] : "?");
                skip_log(w, path, "near duplicate", d);
            }
            goto done;
        }
    }
    if (emit(w, path, lang, text, len) < 0) { w->failed = 1; rc = -1; }
    if (w->o->log) {  /* minhash ids follow the order of kept files */
        w->kept_paths = cr_realloc(w->kept_paths, sizeof(char *) * (size_t)(w->n_kept_paths + 1));
        w->kept_paths[w->n_kept_paths++] = cr_strdup(path);
    }
done:
    git_blob_free(blob);
    return rc;
}

/* Split "PATH@REV" at the first '@' whose prefix is an existing directory. */
static void split_spec(const char *spec, char **path, char **rev) {
    for (const char *at = strchr(spec, '@'); at; at = strchr(at + 1, '@')) {
        char *p = cr_malloc((size_t)(at - spec) + 1);
        memcpy(p, spec, (size_t)(at - spec));
        p[at - spec] = 0;
        struct stat sb;
        if (stat(p, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            *path = p;
            *rev = cr_strdup(at + 1);
            return;
        }
        free(p);
    }
    *path = cr_strdup(spec);
    *rev = cr_strdup("HEAD");
}

int git_ingest(const char *spec, const IngestOptions *o, FILE *out, IngestStats *st, CrError *e) {
    memset(st, 0, sizeof *st);
    if (!(o->fim_rate >= 0 && o->fim_rate <= 1))
        return cr_error_set(e, "fim-rate %g is outside [0, 1]", o->fim_rate);
    char *path, *rev;
    split_spec(spec, &path, &rev);
    if (!*rev) { free(rev); rev = cr_strdup("HEAD"); }
    if (git_libgit2_init() < 0) {
        free(path); free(rev);
        return cr_error_set(e, "libgit2 init failed");
    }
    git_repository *repo = NULL;
    git_object *obj = NULL;
    git_commit *commit = NULL;
    git_tree *tree = NULL;
    Walk w = {.o = o, .out = out, .st = st, .e = e};
    int rc = -1;
    if (git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
        git_fail(e, "not a git repository", path);
        goto out;
    }
    char *abs = realpath(path, NULL);
    snprintf(st->repo, sizeof st->repo, "%s", abs ? abs : path);
    free(abs);
    if (git_revparse_single(&obj, repo, rev) < 0) { git_fail(e, "unknown revision", rev); goto out; }
    if (git_object_peel((git_object **)&commit, obj, GIT_OBJECT_COMMIT) < 0) {
        git_fail(e, "revision does not name a commit", rev);
        goto out;
    }
    git_oid_tostr(st->commit, sizeof st->commit, git_commit_id(commit));
    if (git_commit_tree(&tree, commit) < 0) { git_fail(e, "cannot read the tree of", st->commit); goto out; }
    w.repo = repo;
    w.near = minhash_index_new();
    int wr = git_tree_walk(tree, GIT_TREEWALK_PRE, walk_cb, &w);
    if (w.failed) goto out;
    if (wr < 0) { git_fail(e, "tree walk failed in", path); goto out; }
    if (fflush(out) != 0 || ferror(out)) { cr_error_set(e, "write failed"); goto out; }
    rc = 0;
out:
    minhash_index_free(w.near);
    for (int i = 0; i < w.n_kept_paths; i++) free(w.kept_paths[i]);
    free(w.kept_paths);
    free(w.seen.v);
    git_tree_free(tree);
    git_commit_free(commit);
    git_object_free(obj);
    git_repository_free(repo);
    git_libgit2_shutdown();
    free(path);
    free(rev);
    return rc;
}
