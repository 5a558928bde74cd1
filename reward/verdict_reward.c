/* reward/verdict_reward.c — rewards from sandbox verdicts (see verdict_reward.h). */
#include "reward/verdict_reward.h"
#include "core/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const names[REWARD_VERDICT_COUNT] = {"OK", "WA", "CE", "RE", "TLE", "MLE", "OLE", "SV", "IE"};

const char *reward_verdict_name(int v) { return v >= 0 && v < REWARD_VERDICT_COUNT ? names[v] : "?"; }

int reward_verdict_parse(const char *s, int *v, CrError *e) {
    for (int i = 0; s && i < REWARD_VERDICT_COUNT; i++)
        if (!strcasecmp(s, names[i])) { *v = i; return 0; }
    return cr_error_set(e, "verdict: '%s' is not one of OK WA CE RE TLE MLE OLE SV IE", s ? s : "(null)");
}

VerdictRewardConfig verdict_reward_config_default(void) {
    VerdictRewardConfig c;
    memset(&c, 0, sizeof c);
    c.mode = TESTS_REWARD_BINARY;
    return c;
}

int verdict_reward_set_values(VerdictRewardConfig *cfg, const char *spec, CrError *e) {
    if (!spec) return 0;
    char *buf = cr_strdup(spec), *save = NULL;
    int rc = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok && rc == 0; tok = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(tok, '=');
        int v;
        if (!eq) { rc = cr_error_set(e, "verdict values: '%s' is not VERDICT=VALUE", tok); break; }
        *eq = 0;
        if (reward_verdict_parse(tok, &v, e) != 0) { rc = cr_error_prefix(e, "verdict values"); break; }
        if (v == RV_OK || v == RV_IE) {
            rc = cr_error_set(e, "verdict values: %s has no configurable value (OK is 1, IE is never scored)", names[v]);
            break;
        }
        char *end;
        double x = strtod(eq + 1, &end);
        if (end == eq + 1 || *end || !isfinite(x)) {
            rc = cr_error_set(e, "verdict values: %s=%s is not a finite number", names[v], eq + 1);
            break;
        }
        cfg->value[v] = x;
    }
    free(buf);
    return rc;
}

double verdict_reward_tests(const VerdictRewardConfig *cfg, int verdict, int passed, int total) {
    if (verdict < 0 || verdict >= REWARD_VERDICT_COUNT || verdict == RV_IE) return NAN;
    if (verdict == RV_OK) return 1.0;
    double f = cfg->value[verdict];
    if (verdict == RV_CE || cfg->mode == TESTS_REWARD_BINARY || total <= 0) return f;
    if (passed < 0) passed = 0;
    if (passed > total) passed = total;
    return f + (1.0 - f) * (double)passed / (double)total;
}

double verdict_reward_compile(const VerdictRewardConfig *cfg, int verdict) {
    if (verdict < 0 || verdict >= REWARD_VERDICT_COUNT || verdict == RV_IE) return NAN;
    return verdict == RV_CE ? cfg->compile_fail : 1.0;
}
