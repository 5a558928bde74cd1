/* data/jsonl.h — JSON Lines input shared by the dataset readers (tasks, SFT).
 * Defines: jsonl_read, JsonlIter, jsonl_next, jsonl_str, jsonl_str_array.
 *
 * Files may be plain or gzip-compressed (detected by content, not by name). Lines are
 * split on '\n' (a trailing '\r' is dropped); blank lines are skipped. Every error
 * message starts with "FILE:LINE:" and, for a field, names it ("field 'tests[2].stdin'"),
 * so that a user can find the problem in a file of 100,000 lines. */
#ifndef CRUCIBLE_DATA_JSONL_H
#define CRUCIBLE_DATA_JSONL_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include "core/error.h"

/* Read a whole .jsonl or .jsonl.gz file into a malloc'd NUL-terminated buffer.
 * A truncated or corrupt gzip stream is an error naming the path. */
char *jsonl_read(const char *path, size_t *len, CrError *e);

typedef struct JsonlIter {
    const char *buf;    /* borrowed */
    size_t len, pos;
    const char *name;   /* file name used in messages (borrowed) */
    int line;           /* 1-based number of the line last returned */
} JsonlIter;

void jsonl_iter_init(JsonlIter *it, const char *buf, size_t len, const char *name);
/* Parse the next non-blank line into *obj (caller frees with cJSON_Delete).
 * Returns 1 with *obj set, 0 at the end, -1 with e = "FILE:LINE: invalid JSON at
 * column C" or "FILE:LINE: expected a JSON object". */
int jsonl_next(JsonlIter *it, cJSON **obj, CrError *e);

/* Field helpers. `where` is the JSON path used in messages ("messages[3]"; "" = top).
 * jsonl_str: *out = malloc'd copy of the string field, or NULL when absent/null and
 * !required. Errors: missing required field, or not a string. */
int jsonl_str(const JsonlIter *it, const cJSON *obj, const char *where, const char *field,
              int required, char **out, CrError *e);
/* Like jsonl_str but a number is accepted and printed as text (ids are often ints). */
int jsonl_str_or_num(const JsonlIter *it, const cJSON *obj, const char *where,
                     const char *field, int required, char **out, CrError *e);
/* Array of strings -> malloc'd array of malloc'd strings (*n entries); NULL/0 when absent. */
int jsonl_str_array(const JsonlIter *it, const cJSON *obj, const char *where, const char *field,
                    int required, char ***out, int *n, CrError *e);
/* Error "FILE:LINE: field 'WHERE.FIELD': MESSAGE"; returns -1. */
int jsonl_field_error(const JsonlIter *it, CrError *e, const char *where, const char *field,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

#endif
