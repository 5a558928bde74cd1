/* core/error.c — see error.h */
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cr_error_set(CrError *e, const char *fmt, ...) {
    if (!e) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof e->msg, fmt, ap);
    va_end(ap);
    return -1;
}

int cr_error_prefix(CrError *e, const char *fmt, ...) {
    if (!e) return -1;
    char pre[CR_ERR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    char old[CR_ERR_MAX];
    memcpy(old, e->msg, sizeof old);
    /* a message longer than the buffer keeps its start (newer gcc warns when the
     * truncation is not looked at) */
    if (snprintf(e->msg, sizeof e->msg, "%s: %s", pre, old) >= (int)sizeof e->msg)
        e->msg[sizeof e->msg - 1] = '\0';
    return -1;
}

void cr_die(const char *file, int line, const char *fmt, ...) {
    fflush(stdout);
    fprintf(stderr, "crucible: fatal at %s:%d: ", file, line);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    abort();
}
