/* core/strbuf.c — see strbuf.h. */
#include "core/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"

/* Room for `extra` more bytes and the NUL. */
static void reserve(CrBuf *b, size_t extra) {
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    b->p = cr_realloc(b->p, cap);
    b->cap = cap;
}

void cr_buf_add(CrBuf *b, const void *data, size_t n) {
    reserve(b, n);
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = 0;
}

void cr_buf_puts(CrBuf *b, const char *s) { cr_buf_add(b, s, strlen(s)); }

void cr_buf_printf(CrBuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    char tmp[256];
    int k = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (k < 0) CR_DIE("cr_buf_printf: vsnprintf failed");
    if ((size_t)k < sizeof tmp) {
        cr_buf_add(b, tmp, (size_t)k);
        return;
    }
    reserve(b, (size_t)k);
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}
