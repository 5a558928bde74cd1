/* core/tensorboard.h — TensorBoard event files for scalar metrics, written in C.
 * Defines: TbWriter, tb_open, tb_scalar, tb_flush, tb_close, tb_path, tb_error.
 *
 * File: DIR/events.out.tfevents.<unix time>.<hostname> (".N" appended if that name
 * already exists: TensorBoard reads every file whose name contains "tfevents").
 * Each record is TFRecord-framed:
 *     uint64 length (little endian) | uint32 masked_crc32c(length bytes)
 *     data[length]                  | uint32 masked_crc32c(data)
 * and data is a tensorflow.Event protobuf, encoded by hand:
 *     Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
 *     Summary { repeated Value value = 1; }
 *     Value   { string tag = 1; float simple_value = 2; }
 * The first record is Event{wall_time, file_version: "brain.Event:2"}; each tb_scalar
 * appends Event{wall_time, step, summary{value{tag, simple_value}}}.
 *
 * Ownership: the writer owns its FILE and path; tb_close frees everything (NULL ok).
 * Errors: tb_open fills e; tb_scalar/tb_flush/tb_close return -1 on an I/O error and
 * keep the message in the writer (tb_error). Single-threaded use per writer. */
#ifndef CRUCIBLE_CORE_TENSORBOARD_H
#define CRUCIBLE_CORE_TENSORBOARD_H

#include "core/error.h"

typedef struct TbWriter TbWriter;

/* Create DIR (mkdir -p) and a fresh event file in it; NULL with e filled on failure. */
TbWriter *tb_open(const char *dir, CrError *e);
/* Append one scalar; tag must be a non-empty NUL-terminated string. 0 or -1. */
int tb_scalar(TbWriter *w, const char *tag, long step, double wall_time, float value);
/* Push buffered records to the kernel (fflush + fdatasync); 0 or -1. */
int tb_flush(TbWriter *w);
/* Flush, close and free; 0 or -1 (the writer is freed either way). */
int tb_close(TbWriter *w);
/* Drop every record with step > STEP from the event files in DIR (a resumed run repeats
 * those steps); valid records are kept byte for byte. 0 or -1 with e set. */
int tb_truncate_after(const char *dir, long step, CrError *e);
/* The event file's path (owned by the writer). */
const char *tb_path(const TbWriter *w);
/* Message of the last failure ("" if none). */
const char *tb_error(const TbWriter *w);

#endif
