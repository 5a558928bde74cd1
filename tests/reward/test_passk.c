/* tests/reward/test_passk.c — pass@k against the binomial-coefficient definition. */
#include "tests/test.h"
#include "reward/passk.h"

#include <math.h>

static double binom(int n, int k) {
    if (k < 0 || k > n) return 0;
    double r = 1;
    for (int i = 1; i <= k; i++) r = r * (n - k + i) / i;
    return r;
}

TEST(reward_pass_at_k_matches_definition) {
    for (int n = 1; n <= 20; n++)
        for (int c = 0; c <= n; c++)
            for (int k = 1; k <= n; k++) {
                double want = 1.0 - binom(n - c, k) / binom(n, k);
                CHECK_NEAR(pass_at_k(n, c, k), want, 1e-12);
            }
    CHECK_NEAR(pass_at_k(10, 3, 1), 0.3, 1e-15);   /* pass@1 = c/n */
    CHECK(isnan(pass_at_k(5, 1, 6)) && isnan(pass_at_k(0, 0, 1)));
}
