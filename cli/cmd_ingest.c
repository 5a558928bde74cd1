/* cli/cmd_ingest.c — `crucible ingest REPO_PATH[@REV] --out corpus.jsonl`: a git
 * repository at a revision -> filtered, deduplicated SFT/FIM JSONL with provenance. */
#include "cli/command.h"
#include "core/args.h"
#include "core/file.h"
#include "core/alloc.h"
#include "data/git_ingest.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char cmd_ingest_summary[] = "turn a git repository at a revision into SFT/FIM JSONL (filtered, deduplicated)";

/* "c,python" and repeated flags -> one list of names. */
static int split_languages(const CrStrList *in, const char ***out) {
    int n = 0;
    for (int i = 0; i < in->n; i++) {
        char *s = cr_strdup(in->items[i]);  /* kept for the life of the process */
        for (char *tok = strtok(s, ","); tok; tok = strtok(NULL, ",")) {
            while (*tok == ' ') tok++;
            if (!*tok) continue;
            *out = cr_realloc((void *)*out, sizeof(char *) * (size_t)(n + 1));
            (*out)[n++] = tok;
        }
    }
    return n;
}

int cmd_ingest(int argc, char **argv) {
    const char *out_path = NULL;
    double fim_rate = 0.5, near = 0.85;
    long seed = 0, max_bytes = 1 << 20;
    CrStrList langs = {0};
    int verbose = 0;
    ArgSpec specs[] = {
        {"out", ARG_STR, &out_path, "output JSONL path (written atomically)", 1},
        {"fim-rate", ARG_FLOAT, &fim_rate, "fraction of files turned into FIM examples (PSM)", 0},
        {"languages", ARG_STR_LIST, &langs, "comma-separated languages to keep (default: all known)", 0},
        {"seed", ARG_INT, &seed, "seed of the FIM choices and split points", 0},
        {"near-dup-threshold", ARG_FLOAT, &near, "MinHash Jaccard at or above which a file is a near duplicate (>1: off)", 0},
        {"max-file-bytes", ARG_INT, &max_bytes, "skip files larger than this", 0},
        {"verbose", ARG_BOOL, &verbose, "log every skipped file and why (stderr)", 0},
        {NULL, 0, NULL, NULL, 0}};
    const char *usage = "crucible ingest REPO_PATH[@REV] --out corpus.jsonl [--fim-rate 0.5] [--languages c,python,...]";
    const char **pos = NULL;
    int npos = 0;
    CrError e;
    int r = cr_args_parse(usage, specs, argc, argv, &pos, &npos, &e);
    if (r == CR_ARGS_HELP) return 0;
    if (r < 0) { fprintf(stderr, "crucible ingest: %s\n", e.msg); return 2; }
    if (npos != 1) {
        fprintf(stderr, "crucible ingest: expected exactly one REPO_PATH[@REV], got %d\nusage: %s\n", npos, usage);
        free(pos);
        return 2;
    }
    if (max_bytes <= 0) { fprintf(stderr, "crucible ingest: --max-file-bytes must be > 0\n"); return 2; }
    IngestOptions o;
    ingest_options_default(&o);
    o.fim_rate = fim_rate;
    o.near_dup_threshold = near;
    o.seed = (uint64_t)seed;
    o.max_file_bytes = (size_t)max_bytes;
    o.log = verbose ? stderr : NULL;
    const char **lang_list = NULL;
    o.n_languages = split_languages(&langs, &lang_list);
    o.languages = lang_list;

    /* write next to the target, then rename: a failure never leaves a torn corpus */
    size_t tl = strlen(out_path) + 32;
    char *tmp = cr_malloc(tl);
    snprintf(tmp, tl, "%s.tmp.%ld", out_path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        fprintf(stderr, "crucible ingest: %s: cannot create: %s\n", tmp, strerror(errno));
        free(tmp); free(pos); free(lang_list);
        return 1;
    }
    IngestStats st;
    int rc = git_ingest(pos[0], &o, f, &st, &e);
    if (rc == 0 && (fflush(f) != 0 || fsync(fileno(f)) != 0)) rc = cr_error_set(&e, "%s: write failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && rc == 0) rc = cr_error_set(&e, "%s: close failed: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, out_path) != 0) rc = cr_error_set(&e, "%s: rename failed: %s", out_path, strerror(errno));
    if (rc < 0) {
        unlink(tmp);
        fprintf(stderr, "crucible ingest: %s\n", e.msg);
        free(tmp); free(pos); free(lang_list);
        return 1;
    }
    char *dir = cr_strdup(out_path);
    cr_fsync_dir(dirname(dir), NULL);
    free(dir);
    fprintf(stderr, "ingest: %s@%s: %d entries, %d kept (%d FIM), skipped: %d symlinks, %d submodules, "
            "%d not source, %d other language, %d too large, %d filtered, %d exact dups, %d near dups\n",
            st.repo, st.commit, st.entries, st.kept, st.fim, st.symlinks, st.submodules, st.not_source,
            st.language_excluded, st.too_large, st.filtered, st.dup_exact, st.dup_near);
    /* last line: a JSON summary for scripts */
    cJSON *j = cJSON_CreateObject();
    if (!j || !cJSON_AddStringToObject(j, "out", out_path) || !cJSON_AddStringToObject(j, "repo", st.repo) ||
        !cJSON_AddStringToObject(j, "commit", st.commit) || !cJSON_AddNumberToObject(j, "kept", st.kept) ||
        !cJSON_AddNumberToObject(j, "fim", st.fim) || !cJSON_AddNumberToObject(j, "filtered", st.filtered) ||
        !cJSON_AddNumberToObject(j, "dup_exact", st.dup_exact) || !cJSON_AddNumberToObject(j, "dup_near", st.dup_near))
        CR_DIE("cJSON: out of memory");
    char *js = cJSON_PrintUnformatted(j);
    if (!js) CR_DIE("cJSON: out of memory");
    printf("%s\n", js);
    cJSON_free(js);
    cJSON_Delete(j);
    free(tmp); free(pos); free(lang_list);
    return 0;
}
