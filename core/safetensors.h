/* core/safetensors.h — read and write the safetensors format (spec/deepseek-v2.md §11).
 * Defines: StDtype, StTensor, SafeTensors, st_open, st_open_memory, st_count, st_at,
 * st_find, st_read_f32, st_read_i64, st_close, StEntry, st_write, st_dtype_name,
 * st_dtype_size, st_numel.
 *
 * File layout: u64 little-endian N | N bytes of JSON header | data. The header maps
 * tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} (offsets relative to
 * the data section) plus an optional "__metadata__" object of string values.
 *
 * Reading is strict; each of these is an error naming the file (and tensor):
 * header length < 2 or > 100 MiB or past the end of the file, header not a UTF-8 JSON
 * object (NUL bytes, trailing garbage), duplicate names, unknown dtype, shape not a list
 * of at most 8 non-negative integers, data_offsets not two integers begin <= end,
 * numel x dtype size != end - begin, a span past the end of the file, two spans that
 * overlap. Files are mmap'd read-only; StTensor.data points into the mapping and is
 * valid until st_close. Data pointers need not be aligned: readers copy.
 *
 * A model.safetensors.index.json ({"weight_map": {name: shard}}) opens every shard it
 * names (relative to the index's directory; absolute paths and ".." are refused). Every
 * weight_map entry must be in its shard, and every tensor in a shard must be mapped to
 * that shard. */
#ifndef CRUCIBLE_CORE_SAFETENSORS_H
#define CRUCIBLE_CORE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef enum StDtype { ST_F64, ST_F32, ST_F16, ST_BF16, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL } StDtype;
#define ST_N_DTYPES 10
#define ST_MAX_DIMS 8

typedef struct StTensor {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const void *data;
    const char *file;   /* path of the file holding it (for messages) */
} StTensor;

typedef struct SafeTensors SafeTensors;

/* A .safetensors file, or (name ending in ".json") a sharded index. NULL + error. */
SafeTensors *st_open(const char *path, CrError *e);
/* Parse a safetensors image already in memory (not copied: buf must outlive the
 * handle); name is used in messages. Same validation as st_open. */
SafeTensors *st_open_memory(const void *buf, size_t len, const char *name, CrError *e);
int st_count(const SafeTensors *s);
/* Tensors in header order (shard order, then header order within a shard). */
const StTensor *st_at(const SafeTensors *s, int i);
/* NULL if absent (binary search over the names). */
const StTensor *st_find(const SafeTensors *s, const char *name);
/* The "__metadata__" value for key in the (first) file, or NULL. */
const char *st_metadata(const SafeTensors *s, const char *key);
/* F64/F32/F16/BF16 -> fp32 into out[n_expected]. Error (naming tensor and file) if the
 * element count differs or the dtype is not a float type. */
int st_read_f32(const StTensor *t, float *out, size_t n_expected, CrError *e);
/* I64/I32/I16/I8/U8/BOOL -> int64 into out[n_expected]; same errors. */
int st_read_i64(const StTensor *t, int64_t *out, size_t n_expected, CrError *e);
void st_close(SafeTensors *s);

/* One tensor to write: data holds numel(shape) elements of dtype, little-endian. */
typedef struct StEntry {
    const char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    const void *data;
} StEntry;
/* Write entries in order (contiguous offsets; header padded with spaces to a multiple
 * of 8 bytes so that data is 8-byte aligned in the file) atomically: PATH is replaced
 * only after the whole file is written and synced. metadata_json is the text of the
 * "__metadata__" object (string values only) or NULL. Duplicate or empty names and
 * bad shapes are errors. */
int st_write(const char *path, const StEntry *entries, int n, const char *metadata_json,
             CrError *e);

const char *st_dtype_name(StDtype d);   /* "F32", "BF16", ... */
size_t st_dtype_size(StDtype d);
/* Product of the dims (1 for ndim 0). */
size_t st_numel(int ndim, const int64_t *shape);

/* Bit-exact half conversions (round to nearest even on the way down; NaN stays NaN). */
float st_bf16_to_f32(uint16_t h);
float st_f16_to_f32(uint16_t h);
uint16_t st_f32_to_bf16(float f);
uint16_t st_f32_to_f16(float f);

#endif
