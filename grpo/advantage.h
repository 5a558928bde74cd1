/* grpo/advantage.h — group-relative advantages and the sample filters around them.
 * Defines: GrpoScale, GrpoCombine, GRPO_ADV_EPS, grpo_advantages, grpo_zero_variance_groups,
 *          grpo_overlong_penalty, grpo_mask_truncated, grpo_scale_parse, grpo_combine_parse.
 *
 * Layout: a step holds n_groups prompts x G completions; completion i = g*G + j.
 * rewards[i*K + k] is reward function k of completion i. NaN means "no reward"
 * (e.g. the sandbox failed internally, verdict IE: reward/verdict_reward.h): a
 * completion whose K rewards are all NaN is unscorable — left out of every mean and
 * std and given A = 0 exactly, so it never moves the policy (TRL does the same).
 * A NaN in some but not all functions counts as 0 in the weighted sum (TRL: nansum).
 *
 * Combination (spec/grpo.md "Advantages"):
 *  GRPO_COMBINE_SUM (default): r_i = sum_k w_k r_ik, then
 *    GRPO_SCALE_GROUP: A_i = (r_i - mean_g r) / (std_g r + eps)
 *    GRPO_SCALE_BATCH: A_i = (r_i - mean_g r) / (std_batch r + eps)  (group mean, batch std)
 *    GRPO_SCALE_NONE:  A_i =  r_i - mean_g r                         (Dr. GRPO)
 *    eps = GRPO_ADV_EPS = 1e-4; std uses Bessel's correction (n - 1), over the
 *    scorable completions only.
 *  GRPO_COMBINE_NORMALIZE: each function is first z-scored within its group,
 *    z_ik = (r_ik - mean_g r_k) / (std_g r_k + eps) (a group with < 2 scorable values
 *    gives z = NaN, i.e. 0 in the sum), r_i = sum_k w_k z_ik, and then A is r
 *    standardised over the whole batch: A_i = (r_i - mean_batch r) / (std_batch r + eps).
 *    `scale` is ignored in this mode. This is TRL's "normalize_then_sum" exactly.
 *
 * Edge cases (all modes): a group with fewer than 2 scorable completions, or whose
 * scorable r_i are all equal, has A = 0 exactly (computed, not left to rounding: the
 * mean of G equal floats need not equal them). Batch scaling with < 2 scorable
 * completions in the whole batch: A = 0. A non-constant group inside a batch whose
 * std is 0 cannot occur. With scale none, A is unbounded (it is in reward units).
 *
 * Memory: the caller owns every array; nothing is kept. */
#ifndef CRUCIBLE_GRPO_ADVANTAGE_H
#define CRUCIBLE_GRPO_ADVANTAGE_H

#include "core/error.h"

#define GRPO_ADV_EPS 1e-4

typedef enum GrpoScale { GRPO_SCALE_GROUP, GRPO_SCALE_BATCH, GRPO_SCALE_NONE } GrpoScale;
typedef enum GrpoCombine { GRPO_COMBINE_SUM, GRPO_COMBINE_NORMALIZE } GrpoCombine;

/* "group" | "batch" | "none" -> 0, else -1 with e naming the value. */
int grpo_scale_parse(const char *s, GrpoScale *out, CrError *e);
/* "sum" | "normalize" -> 0, else -1. */
int grpo_combine_parse(const char *s, GrpoCombine *out, CrError *e);

/* Fill adv[n_groups*G] (and, if combined != NULL, combined[n_groups*G] = the combined
 * reward r_i, NaN when unscorable). weights[K] (NULL = all 1). Returns 0, or -1 with e
 * set when n_groups < 0, G < 1, K < 1 or a weight is not finite. Rewards may be any
 * finite value or NaN; +-inf is an error (a reward function bug, not a sample). */
int grpo_advantages(const float *rewards, int n_groups, int G, int K, const float *weights,
                    GrpoScale scale, GrpoCombine combine, float *adv, float *combined, CrError *e);

/* Dynamic sampling (DAPO): zero[g] = 1 when group g teaches nothing (fewer than 2
 * scorable combined rewards, or all equal). r is the combined reward (NaN =
 * unscorable), e.g. grpo_advantages' `combined`. Returns the number of such groups;
 * zero may be NULL to only count. The trainer drops these groups and, optionally,
 * samples more prompts until the batch is full. */
int grpo_zero_variance_groups(const float *r, int n_groups, int G, unsigned char *zero);

/* DAPO soft overlong punishment for a completion of len tokens, with max length
 * l_max and buffer l_cache (0 <= l_cache <= l_max):
 *   0                              if len <= l_max - l_cache
 *   ((l_max - l_cache) - len) / l_cache   if l_max - l_cache < len <= l_max
 *   -1                             if len > l_max
 * (a truncated completion has len == l_max and gets -1). Same as reward_overlong: it
 * enters the reward as its own function ("overlong", reward/combine.h). */
double grpo_overlong_penalty(long len, long l_max, long l_cache);

/* Overlong filtering (DAPO's alternative to the penalty): set mask[t] = 0 for every
 * token t whose completion comp[t] is truncated (truncated[comp[t]] != 0). Apply
 * before computing the loss normalisers (grpo/loss.h), which count masked tokens.
 * Returns the number of tokens masked. */
long grpo_mask_truncated(const int *comp, long n_tokens, const unsigned char *truncated, float *mask);

#endif
