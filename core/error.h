/* core/error.h — error reporting shared by every module.
 * Defines: CrError, cr_error_set, cr_error_prefix, cr_die, CR_DIE, CR_CHECK.
 *
 * Contract: a function that can fail on user input returns 0 on success and -1 on
 * failure after filling a CrError whose message names the file / line / field and
 * the problem. Programming errors and failed system/CUDA calls that cannot be
 * recovered abort through cr_die with file and line. */
#ifndef CRUCIBLE_CORE_ERROR_H
#define CRUCIBLE_CORE_ERROR_H

#include <stdarg.h>

#define CR_ERR_MAX 1024

typedef struct CrError {
    char msg[CR_ERR_MAX];
} CrError;

/* Fill e (may be NULL) with a printf-style message; always returns -1. */
int cr_error_set(CrError *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepend "prefix: " to an existing message (e.g. the file name); returns -1. */
int cr_error_prefix(CrError *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

_Noreturn void cr_die(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define CR_DIE(...) cr_die(__FILE__, __LINE__, __VA_ARGS__)
/* Abort with location if an invariant does not hold (not for user input). */
#define CR_CHECK(cond) \
    do { if (!(cond)) cr_die(__FILE__, __LINE__, "check failed: %s", #cond); } while (0)

#endif
