/* reward/passk.c — see passk.h */
#include "reward/passk.h"

#include <math.h>

double pass_at_k(int n, int c, int k) {
    if (n <= 0 || k <= 0 || k > n || c < 0 || c > n) return NAN;
    if (n - c < k) return 1.0;
    /* 1 - prod_{i=n-c+1}^{n} (1 - k/i) */
    double prod = 1.0;
    for (int i = n - c + 1; i <= n; i++) prod *= 1.0 - (double)k / i;
    return 1.0 - prod;
}
