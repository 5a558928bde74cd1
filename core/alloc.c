/* core/alloc.c — see alloc.h */
#include "core/alloc.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

void *cr_malloc_at(size_t n, const char *file, int line) {
    void *p = malloc(n ? n : 1);
    if (!p) cr_die(file, line, "out of memory allocating %zu bytes", n);
    return p;
}

void *cr_calloc_at(size_t n, size_t size, const char *file, int line) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) cr_die(file, line, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *cr_realloc_at(void *p, size_t n, const char *file, int line) {
    void *q = realloc(p, n ? n : 1);
    if (!q) cr_die(file, line, "out of memory reallocating %zu bytes", n);
    return q;
}

char *cr_strdup_at(const char *s, const char *file, int line) {
    size_t n = strlen(s) + 1;
    char *d = cr_malloc_at(n, file, line);
    memcpy(d, s, n);
    return d;
}

void *cr_alloc_aligned_at(size_t n, const char *file, int line) {
    size_t rounded = (n + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) cr_die(file, line, "out of memory allocating %zu aligned bytes", n);
    memset(p, 0, rounded ? rounded : 64);
    return p;
}

void cr_free_aligned(void *p) { free(p); }
