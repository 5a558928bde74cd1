/* core/file.h — whole-file I/O that never loses what was written before.
 * Defines: cr_read_file, cr_write_file_atomic, CrAtomicFile (streaming atomic write),
 * cr_mkdir_p, cr_path_join, cr_file_exists. */
#ifndef CRUCIBLE_CORE_FILE_H
#define CRUCIBLE_CORE_FILE_H

#include <stddef.h>
#include "core/error.h"

/* Read a whole file; returns a NUL-terminated malloc'd buffer (len excludes the NUL)
 * or NULL with an error naming the path. */
char *cr_read_file(const char *path, size_t *len, CrError *e);
/* Write to PATH.tmp.PID, fsync, rename over PATH, fsync the directory: a crash leaves
 * either the old or the new file, never a torn one. */
int cr_write_file_atomic(const char *path, const void *data, size_t len, CrError *e);
/* The same guarantee for a file written piece by piece (large tensors are not
 * gathered into one buffer): open writes PATH.tmp.PID; commit fsyncs, renames over
 * PATH and fsyncs the directory; abort removes the temporary. After a failed write
 * or commit the temporary is already removed and f must not be used again. */
typedef struct CrAtomicFile {
    int fd;
    char *path, *tmp;
} CrAtomicFile;
int cr_atomic_open(CrAtomicFile *f, const char *path, CrError *e);
int cr_atomic_write(CrAtomicFile *f, const void *data, size_t len, CrError *e);
int cr_atomic_commit(CrAtomicFile *f, CrError *e);
void cr_atomic_abort(CrAtomicFile *f);
/* mkdir -p */
int cr_mkdir_p(const char *path, CrError *e);
/* fsync a directory so that renames inside it are durable. */
int cr_fsync_dir(const char *dir, CrError *e);
/* malloc'd "a/b" */
char *cr_path_join(const char *a, const char *b);
int cr_file_exists(const char *path);

#endif
