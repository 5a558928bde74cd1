/* core/alloc.h — checked allocation.
 * Defines: cr_malloc, cr_calloc, cr_realloc, cr_strdup, cr_alloc_aligned, cr_free_aligned.
 * Out of memory is fatal (reported with file and line): callers never check for NULL. */
#ifndef CRUCIBLE_CORE_ALLOC_H
#define CRUCIBLE_CORE_ALLOC_H

#include <stddef.h>

void *cr_malloc_at(size_t n, const char *file, int line);
void *cr_calloc_at(size_t n, size_t size, const char *file, int line);
void *cr_realloc_at(void *p, size_t n, const char *file, int line);
char *cr_strdup_at(const char *s, const char *file, int line);
/* 64-byte aligned, zero-filled; free with cr_free_aligned. */
void *cr_alloc_aligned_at(size_t n, const char *file, int line);
void cr_free_aligned(void *p);

#define cr_malloc(n) cr_malloc_at((n), __FILE__, __LINE__)
#define cr_calloc(n, s) cr_calloc_at((n), (s), __FILE__, __LINE__)
#define cr_realloc(p, n) cr_realloc_at((p), (n), __FILE__, __LINE__)
#define cr_strdup(s) cr_strdup_at((s), __FILE__, __LINE__)
#define cr_alloc_aligned(n) cr_alloc_aligned_at((n), __FILE__, __LINE__)

#endif
