/* reward/combine.c — parse --reward/--reward-weights and evaluate the named rewards. */
#include "reward/combine.h"
#include "core/alloc.h"
#include "reward/format_reward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[REWARD_KIND_COUNT] = {"compile", "tests", "format", "rm", "overlong"};

const char *reward_kind_name(RewardKind k) { return (unsigned)k < REWARD_KIND_COUNT ? kind_names[k] : "?"; }

int reward_spec_parse(const char *names, const char *weights, RewardSpec *out, CrError *e) {
    memset(out, 0, sizeof *out);
    if (!names || !*names) return cr_error_set(e, "--reward: empty list (use e.g. compile,tests,format)");
    char *buf = cr_strdup(names);
    int rc = 0;
    /* strsep keeps empty fields, so "tests,,format" is reported, not skipped */
    char *s = buf, *tok;
    while (rc == 0 && (tok = strsep(&s, ",")) != NULL) {
        int k = -1;
        for (int i = 0; i < REWARD_KIND_COUNT; i++) if (!strcmp(tok, kind_names[i])) k = i;
        if (k < 0) { rc = cr_error_set(e, "--reward: unknown reward '%s' (compile, tests, format, rm, overlong)", tok); break; }
        for (int i = 0; i < out->n; i++)
            if (out->kind[i] == (RewardKind)k) rc = cr_error_set(e, "--reward: '%s' listed twice", tok);
        if (rc) break;
        out->kind[out->n] = (RewardKind)k;
        out->weight[out->n] = 1.0f;
        out->n++;
    }
    free(buf);
    if (rc) return rc;
    if (!weights || !*weights) return 0;
    buf = cr_strdup(weights);
    s = buf;
    int n = 0;
    while (rc == 0 && (tok = strsep(&s, ",")) != NULL) {
        char *end;
        double w = strtod(tok, &end);
        if (end == tok || *end || !isfinite(w)) rc = cr_error_set(e, "--reward-weights: '%s' is not a finite number", tok);
        else if (n >= out->n) rc = cr_error_set(e, "--reward-weights: more weights than rewards (%d)", out->n);
        else out->weight[n++] = (float)w;
    }
    free(buf);
    if (rc == 0 && n != out->n)
        rc = cr_error_set(e, "--reward-weights: %d weights for %d rewards", n, out->n);
    return rc;
}

RewardConfig reward_config_default(void) {
    RewardConfig c;
    memset(&c, 0, sizeof c);
    c.verdict = verdict_reward_config_default();
    return c;
}

int reward_compute(const RewardSpec *spec, const RewardConfig *cfg, const RewardInput *in, float *out, CrError *e) {
    int ie = in->verdict < 0 || in->verdict >= REWARD_VERDICT_COUNT || in->verdict == RV_IE;
    for (int k = 0; k < spec->n; k++) {
        double v = NAN;
        switch (spec->kind[k]) {
        case REWARD_COMPILE: v = verdict_reward_compile(&cfg->verdict, in->verdict); break;
        case REWARD_TESTS: v = verdict_reward_tests(&cfg->verdict, in->verdict, in->passed, in->total); break;
        case REWARD_FORMAT: v = reward_format(in->completion ? in->completion : "", in->language); break;
        case REWARD_RM: v = in->rm_score; break;
        case REWARD_OVERLONG: {
            long lm = cfg->overlong_max, lc = cfg->overlong_cache;
            if (lm <= 0 || lc < 0 || lc > lm)
                return cr_error_set(e, "overlong reward: need overlong_max > 0 and 0 <= overlong_cache <= overlong_max "
                                       "(got %ld, %ld)", lm, lc);
            v = reward_overlong(in->n_tokens, lm, lc);
            break;
        }
        }
        out[k] = ie ? NAN : (float)v;
    }
    return 0;
}

double reward_overlong(long len, long l_max, long l_cache) {
    CR_CHECK(l_cache >= 0 && l_cache <= l_max);
    if (len <= l_max - l_cache) return 0.0;
    if (len <= l_max) return (double)((l_max - l_cache) - len) / (double)l_cache;
    return -1.0;
}

double reward_weighted_sum(const RewardSpec *spec, const float *v) {
    double s = 0;
    int any = 0;
    for (int k = 0; k < spec->n; k++)
        if (!isnan(v[k])) { s += spec->weight[k] * v[k]; any = 1; }
    return any ? s : NAN;
}
