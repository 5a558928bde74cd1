/* core/strbuf.h — a growing byte buffer, kept NUL-terminated, for building text (JSON,
 * prompts, SVG, rewritten sources) and binary records.
 * Defines: CrBuf, cr_buf_add, cr_buf_puts, cr_buf_printf.
 *
 * CONTRACT
 *  - A zero-initialised CrBuf is empty; after any append p is non-NULL and p[n] == 0, so
 *    text can be taken as a C string. The caller owns p (free(b.p)).
 *  - Appends grow the buffer geometrically and abort on out-of-memory (core/alloc.h). */
#ifndef CRUCIBLE_CORE_STRBUF_H
#define CRUCIBLE_CORE_STRBUF_H

#include <stddef.h>

typedef struct CrBuf {
    char *p;
    size_t n, cap;  /* bytes used (not counting the NUL), bytes allocated */
} CrBuf;

void cr_buf_add(CrBuf *b, const void *data, size_t n);
void cr_buf_puts(CrBuf *b, const char *s);
void cr_buf_printf(CrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
