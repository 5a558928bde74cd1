/* data/provenance.h — record where a run's data came from in its run store.
 * Defines: provenance_record_file, provenance_check_resume, provenance_record_sft.
 *
 * A data file is identified by its git blob id (SHA-1 of "blob N\0" + bytes, as
 * `git hash-object FILE` prints), so a report can tell whether two runs used the same
 * bytes. SFT data written by `crucible ingest` carries per-line provenance (repo,
 * commit, path): each distinct (repo, commit) becomes a "git" source with the number
 * of examples drawn from it. */
#ifndef CRUCIBLE_DATA_PROVENANCE_H
#define CRUCIBLE_DATA_PROVENANCE_H

#include <stdint.h>
#include "core/error.h"
#include "data/runstore.h"
#include "data/sft_data.h"

/* Source row (kind, path, revision = git blob id of the file's bytes, detail = {"bytes":N}). */
int provenance_record_file(RunStore *rs, int64_t run_id, const char *kind, const char *path, CrError *e);
/* provenance_record_file(kind "sft") + one "git" source per distinct (repo, commit) in xs. */
/* On --resume: the file at PATH must have the content id the run recorded for its source KIND
 * (RUN_DIR/run.db, latest run); a different file is an error naming FLAG. No store or no such
 * source: 0. Same bytes under another path are accepted. */
int provenance_check_resume(const char *run_dir, const char *kind, const char *path, const char *flag,
                            CrError *e);
int provenance_record_sft(RunStore *rs, int64_t run_id, const char *path, const SftExample *xs, int n,
                          CrError *e);

#endif
