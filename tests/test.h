/* tests/test.h — the test harness.
 * Defines: TEST, CHECK, CHECKF, CHECK_NEAR, SKIP, TestCtx, test_rel_err, test_repo_path,
 *          test_random_seed.
 *
 * Each test is `TEST(module_name) { ... }` in tests/<module>/test_*.c; the Makefile
 * collects every TEST(...) into the runner. Names are global: prefix them with the
 * module. Each test runs in its own forked process with a time limit, so a crash
 * or hang fails that test only. */
#ifndef CRUCIBLE_TESTS_TEST_H
#define CRUCIBLE_TESTS_TEST_H

#include <stdio.h>
#include <stddef.h>

typedef struct TestCtx {
    int failed;
    int skipped;
    const char *name;
} TestCtx;

#define TEST(name) void test_##name(TestCtx *t_)

#define CHECK(cond) CHECKF((cond), "%s", #cond)
#define CHECKF(cond, ...)                                                        \
    do {                                                                         \
        if (!(cond)) {                                                           \
            t_->failed++;                                                        \
            fprintf(stderr, "    FAIL %s:%d: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
        }                                                                        \
    } while (0)
/* |a-b| <= tol * max(1, |b|) */
#define CHECK_NEAR(a, b, tol)                                                    \
    do {                                                                         \
        double a_ = (a), b_ = (b), m_ = b_ < 0 ? -b_ : b_;                       \
        double d_ = a_ - b_;                                                     \
        if (d_ < 0) d_ = -d_;                                                    \
        CHECKF(d_ <= (tol) * (m_ > 1 ? m_ : 1), "%s = %.9g, expected %s = %.9g (tol %g)", \
               #a, a_, #b, b_, (double)(tol));                                   \
    } while (0)
/* Mark the test skipped with a reason (printed) and return. */
#define SKIP(...)                                                                \
    do {                                                                         \
        t_->skipped = 1;                                                         \
        fprintf(stderr, "    SKIP: ");                                           \
        fprintf(stderr, __VA_ARGS__);                                            \
        fputc('\n', stderr);                                                     \
        return;                                                                  \
    } while (0)
#define FAILED() (t_->failed > 0)

/* ||a-b|| / max(||b||, tiny) */
double test_rel_err(const float *a, const float *b, size_t n);
/* 1 when CRUCIBLE_CHECK_ALL=1 (make check-all): heavy tests run only then. */
int test_check_all(void);
/* Path of the built CLI binary (build/crucible unless CRUCIBLE_BIN is set). */
const char *test_crucible_bin(void);
/* A fresh temporary directory (malloc'd path), removed by the runner after the test. */
char *test_tmpdir(void);
/* A fresh seed for a randomised test (CRUCIBLE_TEST_SEED=n repeats one run), printed
 * as "    NAME: seed N (CRUCIBLE_TEST_SEED to repeat)". */
unsigned long long test_random_seed(const char *name);

#endif
