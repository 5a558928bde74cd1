/* reward/passk.h — the unbiased pass@k estimator (Chen et al. 2021, HumanEval paper):
 * with n samples of which c pass, pass@k = 1 - C(n-c, k) / C(n, k), evaluated as a
 * numerically stable product. Defined for 1 <= k <= n; returns NaN otherwise. */
#ifndef CRUCIBLE_REWARD_PASSK_H
#define CRUCIBLE_REWARD_PASSK_H

double pass_at_k(int n, int c, int k);

#endif
