/* grpo/advantage.c — group-relative advantages (see advantage.h for the formulas). */
#include "grpo/advantage.h"
#include "core/alloc.h"
#include "reward/combine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int grpo_scale_parse(const char *s, GrpoScale *out, CrError *e) {
    if (s && !strcmp(s, "group")) *out = GRPO_SCALE_GROUP;
    else if (s && !strcmp(s, "batch")) *out = GRPO_SCALE_BATCH;
    else if (s && !strcmp(s, "none")) *out = GRPO_SCALE_NONE;
    else return cr_error_set(e, "scale_rewards: '%s' is not one of group, batch, none", s ? s : "(null)");
    return 0;
}

int grpo_combine_parse(const char *s, GrpoCombine *out, CrError *e) {
    if (s && !strcmp(s, "sum")) *out = GRPO_COMBINE_SUM;
    else if (s && !strcmp(s, "normalize")) *out = GRPO_COMBINE_NORMALIZE;
    else return cr_error_set(e, "reward_combine: '%s' is not one of sum, normalize", s ? s : "(null)");
    return 0;
}

/* Mean and Bessel std over the non-NaN x[0], x[stride], ... (n values). Returns the
 * count of non-NaN values; *all_equal = 1 when they are all identical (or < 2). */
static int nan_stats(const double *x, int n, int stride, double *mean, double *std, int *all_equal) {
    int c = 0;
    double s = 0, first = NAN;
    *all_equal = 1;
    for (int i = 0; i < n; i++) {
        double v = x[(size_t)i * stride];
        if (isnan(v)) continue;
        if (c == 0) first = v;
        else if (v != first) *all_equal = 0;
        s += v;
        c++;
    }
    *mean = c ? s / c : NAN;
    double ss = 0;
    for (int i = 0; i < n; i++) {
        double v = x[(size_t)i * stride];
        if (!isnan(v)) ss += (v - *mean) * (v - *mean);
    }
    *std = c > 1 ? sqrt(ss / (c - 1)) : NAN;
    return c;
}

int grpo_advantages(const float *rewards, int n_groups, int G, int K, const float *weights,
                    GrpoScale scale, GrpoCombine combine, float *adv, float *combined, CrError *e) {
    if (n_groups < 0 || G < 1 || K < 1)
        return cr_error_set(e, "advantages: bad shape n_groups=%d G=%d K=%d", n_groups, G, K);
    for (int k = 0; k < K && weights; k++)
        if (!isfinite(weights[k])) return cr_error_set(e, "advantages: reward weight %d is not finite", k);
    size_t n = (size_t)n_groups * G;
    for (size_t i = 0; i < n * K; i++)
        if (isinf(rewards[i]))
            return cr_error_set(e, "advantages: reward %zu of completion %zu is infinite", i % K, i / K);
    if (n == 0) return 0;

    double *x = cr_malloc(n * K * sizeof *x); /* per-function values entering the sum */
    double *r = cr_malloc(n * sizeof *r);
    for (size_t i = 0; i < n * K; i++) x[i] = rewards[i];
    if (combine == GRPO_COMBINE_NORMALIZE) {
        for (int g = 0; g < n_groups; g++)
            for (int k = 0; k < K; k++) {
                double *col = x + (size_t)g * G * K + k, m, s;
                int eq;
                nan_stats(col, G, K, &m, &s, &eq);
                for (int j = 0; j < G; j++) {
                    double *v = col + (size_t)j * K;
                    if (!isnan(*v)) *v = isnan(s) ? NAN : (eq ? 0.0 : (*v - m) / (s + GRPO_ADV_EPS));
                }
            }
    }
    for (size_t i = 0; i < n; i++) {
        double s = 0;
        int any = 0;
        for (int k = 0; k < K; k++) {
            double v = x[i * K + k];
            if (isnan(v)) continue;
            s += (weights ? weights[k] : 1.0) * v;
            any = 1;
        }
        /* unscorable only when every function gave NaN for the raw reward */
        int scorable = 0;
        for (int k = 0; k < K; k++) scorable |= !isnan(rewards[i * K + k]);
        r[i] = scorable ? (any ? s : 0.0) : NAN;
        if (combined) combined[i] = (float)r[i];
    }

    double bmean, bstd;
    int beq;
    int bcount = nan_stats(r, (int)n, 1, &bmean, &bstd, &beq);
    for (int g = 0; g < n_groups; g++) {
        const double *rg = r + (size_t)g * G;
        double m, s;
        int eq;
        int c = nan_stats(rg, G, 1, &m, &s, &eq);
        for (int j = 0; j < G; j++) {
            double v = rg[j], a;
            if (isnan(v)) a = 0;
            else if (combine == GRPO_COMBINE_NORMALIZE)
                a = (bcount < 2 || beq) ? 0 : (v - bmean) / (bstd + GRPO_ADV_EPS);
            else if (c < 2 || eq) a = 0; /* the group teaches nothing */
            else if (scale == GRPO_SCALE_GROUP) a = (v - m) / (s + GRPO_ADV_EPS);
            else if (scale == GRPO_SCALE_BATCH) a = (v - m) / (bstd + GRPO_ADV_EPS);
            else a = v - m;
            adv[(size_t)g * G + j] = (float)a;
        }
    }
    free(x);
    free(r);
    return 0;
}

int grpo_zero_variance_groups(const float *r, int n_groups, int G, unsigned char *zero) {
    int count = 0;
    for (int g = 0; g < n_groups; g++) {
        int c = 0, eq = 1;
        float first = 0;
        for (int j = 0; j < G; j++) {
            float v = r[(size_t)g * G + j];
            if (isnan(v)) continue;
            if (c == 0) first = v;
            else if (v != first) eq = 0;
            c++;
        }
        int z = c < 2 || eq;
        if (zero) zero[g] = (unsigned char)z;
        count += z;
    }
    return count;
}

double grpo_overlong_penalty(long len, long l_max, long l_cache) { return reward_overlong(len, l_max, l_cache); }

long grpo_mask_truncated(const int *comp, long n_tokens, const unsigned char *truncated, float *mask) {
    long c = 0;
    for (long t = 0; t < n_tokens; t++)
        if (truncated[comp[t]] && mask[t] != 0) { mask[t] = 0; c++; }
    return c;
}
