/* data/provenance.h — record where a run's data came from in its run store.
 * Defines: provenance_record_file, provenance_record_sft.
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
int provenance_record_sft(RunStore *rs, int64_t run_id, const char *path, const SftExample *xs, int n,
                          CrError *e);

#endif
