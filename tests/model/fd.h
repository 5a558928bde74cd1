/* tests/model/fd.h — finite-difference helpers for the op and model gradient tests.
 * Defines: FdFn, fd_objective, fd_check.
 * An op test writes a forward function that reads its inputs from a context and writes
 * outputs; the objective is L = sum_i R[i] * out[i] (accumulated in double). The check
 * perturbs sampled input entries by +-h (central difference) and compares with the
 * analytic gradient: |fd - an| <= atol + rtol * max(|an|, |fd|). */
#ifndef CRUCIBLE_TESTS_MODEL_FD_H
#define CRUCIBLE_TESTS_MODEL_FD_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/rng.h"

typedef double (*FdFn)(void *ctx);  /* runs the forward, returns the objective */

static inline void fd_fill(float *x, size_t n, uint64_t seed, float scale) {
    CrRng r;
    cr_rng_init(&r, seed, 77, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(cr_rng_normal(&r) * scale);
}

static inline double fd_dot(const float *r, const float *y, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * y[i];
    return s;
}

/* Returns the number of failing entries (printing the first few). Checks every entry
 * when n <= max_checks, otherwise max_checks entries spread over the array. */
static inline int fd_check(const char *what, FdFn f, void *ctx, float *x, const float *an, size_t n, double h,
                           double atol, double rtol, size_t max_checks) {
    int bad = 0;
    size_t stride = n <= max_checks ? 1 : n / max_checks;
    for (size_t i = 0; i < n; i += stride) {
        float x0 = x[i];
        x[i] = (float)(x0 + h);
        double fp = f(ctx);
        x[i] = (float)(x0 - h);
        double fm = f(ctx);
        x[i] = x0;
        double fd = (fp - fm) / (2 * h), a = an[i];
        double m = fabs(a) > fabs(fd) ? fabs(a) : fabs(fd);
        if (!(fabs(fd - a) <= atol + rtol * m)) {
            if (bad < 5) fprintf(stderr, "    %s[%zu]: analytic %.7g, finite difference %.7g\n", what, i, a, fd);
            bad++;
        }
    }
    f(ctx);  /* leave outputs consistent with the unperturbed inputs */
    return bad;
}

#endif
