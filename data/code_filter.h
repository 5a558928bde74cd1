/* data/code_filter.h — source-file language detection and the DeepSeek-Coder(-V2)
 * quality filters used by git ingestion. Defines: code_language, code_filter.
 *
 * Filters (DeepSeek-Coder paper §2.1, kept by DeepSeek-Coder-V2):
 *   every file: average line length <= 100, maximum line length <= 1000, at least 25%
 *               of its characters alphabetic (ASCII letters; bytes of multi-byte UTF-8
 *               characters count as non-alphabetic);
 *   html:       visible text (outside tags, <script> and <style>; whitespace excluded)
 *               >= 20% of the file and >= 100 characters;
 *   json, yaml: 50 <= characters <= 5000 (longer ones are mostly data).
 * Also refused: empty files, files with a NUL byte (binary) or invalid UTF-8. */
#ifndef CRUCIBLE_DATA_CODE_FILTER_H
#define CRUCIBLE_DATA_CODE_FILTER_H

#include <stddef.h>

/* Language name ("c", "cpp", "python", ...) from a path's extension or base name
 * (Makefile, Dockerfile, CMakeLists.txt), or NULL when not a known source language. */
const char *code_language(const char *path);

/* NULL when the file passes, else a short reason ("max line length 1500 > 1000"), valid
 * until the next call in the same thread. */
const char *code_filter(const char *language, const char *text, size_t len);

#endif
