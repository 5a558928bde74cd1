/* data/git_ingest.h — a git repository at a revision -> SFT/FIM JSONL for training.
 * Defines: IngestOptions, IngestStats, ingest_options_default, git_ingest.
 *
 * Reads the tree of REV (default HEAD) straight from the object database with libgit2:
 * no checkout, the work tree is never touched, bare repositories work. Walks the tree
 * in git's (sorted, pre-order) order and, for each blob:
 *   - symlinks and submodule entries (gitlinks) are skipped and counted;
 *   - language from the extension (data/code_filter.h); unknown or not requested ->
 *     skipped; larger than max_file_bytes -> skipped;
 *   - DeepSeek-Coder-V2 quality filters (code_filter): binary, empty, line lengths,
 *     alphabetic fraction, HTML visible text, JSON/YAML size;
 *   - exact duplicates (same blob id, i.e. same bytes) and near duplicates (MinHash
 *     over 5-word shingles, LSH, estimated Jaccard >= near_dup_threshold) -> the first
 *     in tree order is kept;
 *   - with probability fim_rate (deterministic per (seed, path)) the file becomes a FIM
 *     example split at two uniform random character positions: {"fim_prefix",
 *     "fim_suffix","fim_middle"}; otherwise {"prompt":"","completion":file}.
 * Each JSONL line also carries provenance: "repo" (absolute path), "commit" (40 hex),
 * "path", "language" — data/sft_data.h reads all of it. */
#ifndef CRUCIBLE_DATA_GIT_INGEST_H
#define CRUCIBLE_DATA_GIT_INGEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "core/error.h"

typedef struct IngestOptions {
    double fim_rate;                 /* in [0, 1]; default 0.5 */
    const char *const *languages;    /* NULL / n_languages == 0: every known language */
    int n_languages;
    uint64_t seed;                   /* default 0 */
    double near_dup_threshold;       /* default 0.85; > 1 turns near-dedup off */
    size_t max_file_bytes;           /* default 1 MiB */
    FILE *log;                       /* when set: one line per skipped file and why */
} IngestOptions;

typedef struct IngestStats {
    char commit[41];                 /* the commit the tree came from */
    char repo[4096];                 /* absolute repository path */
    int entries;                     /* blobs, links and gitlinks seen */
    int kept, fim;                   /* records written (fim of them as FIM) */
    int symlinks, submodules, not_source, language_excluded, too_large, filtered;
    int dup_exact, dup_near;
} IngestStats;

void ingest_options_default(IngestOptions *o);

/* spec = "PATH" or "PATH@REV" (REV: anything git rev-parse accepts that names a commit:
 * sha, branch, tag, HEAD~2). Writes one JSON object per line to out. Returns 0 or -1
 * with e naming the repo / revision / output problem; out may hold a prefix of the
 * records on error (callers write to a temporary file and rename). */
int git_ingest(const char *spec, const IngestOptions *o, FILE *out, IngestStats *st, CrError *e);

#endif
