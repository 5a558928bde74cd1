/* reward/verdict_reward.h — the compiler-feedback reward of one judged completion.
 * Defines: RewardVerdict, REWARD_VERDICT_COUNT, reward_verdict_name, reward_verdict_parse,
 *          TestsRewardMode, VerdictRewardConfig, verdict_reward_config_default,
 *          verdict_reward_tests, verdict_reward_compile, verdict_reward_set_value.
 *
 * RewardVerdict mirrors sandbox/sandbox.h's Verdict value for value (OK WA CE RE TLE MLE
 * OLE SV IE = 0..8) so that callers pass (int)verdict without reward/ including sandbox
 * headers (module dependencies point one way: DESIGN.md §2).
 *
 * "tests" reward (DeepSeek-Coder-V2 §3.5.2), with passed/total tests of the run:
 *   OK                           -> 1 (all tests passed)
 *   CE                           -> value[CE]          (nothing ran)
 *   WA RE TLE MLE OLE SV         -> binary:   value[v]
 *                                   fraction: value[v] + (1 - value[v]) * passed/total
 *                                   (partial credit that interpolates from the verdict's
 *                                   failure value at 0 passed up to 1 at all passed;
 *                                   total = 0 gives value[v])
 *   IE                           -> NaN: an internal sandbox error is never blamed on
 *                                   the program; NaN marks the sample unscorable and
 *                                   grpo_advantages gives it A = 0 and leaves it out of
 *                                   its group's mean/std (reward/combine.h makes every
 *                                   reward of that completion NaN).
 * Defaults: every failure value 0 (the paper's 0/1 signal); set CE = -1 etc. to make
 * failure classes distinguishable.
 * "compile" reward: CE -> value_compile_fail (default 0), IE -> NaN, else 1. */
#ifndef CRUCIBLE_REWARD_VERDICT_REWARD_H
#define CRUCIBLE_REWARD_VERDICT_REWARD_H

#include "core/error.h"

typedef enum RewardVerdict {
    RV_OK, RV_WA, RV_CE, RV_RE, RV_TLE, RV_MLE, RV_OLE, RV_SV, RV_IE
} RewardVerdict;
#define REWARD_VERDICT_COUNT 9

/* "OK", "WA", ...; "?" for an out-of-range value. */
const char *reward_verdict_name(int v);
/* Name (case-insensitive) -> value; -1 with e naming the string. */
int reward_verdict_parse(const char *s, int *v, CrError *e);

typedef enum TestsRewardMode { TESTS_REWARD_BINARY, TESTS_REWARD_FRACTION } TestsRewardMode;

typedef struct VerdictRewardConfig {
    TestsRewardMode mode;
    double value[REWARD_VERDICT_COUNT]; /* failure value per verdict (OK and IE entries unused) */
    double compile_fail;                /* "compile" reward of a CE */
} VerdictRewardConfig;

/* binary mode, all failure values 0, compile_fail 0. */
VerdictRewardConfig verdict_reward_config_default(void);
/* Parse "CE=-1,RE=-0.5,TLE=-0.5" into cfg->value; -1 with e naming the bad entry
 * (unknown verdict, OK/IE, a value that is not a finite number). */
int verdict_reward_set_values(VerdictRewardConfig *cfg, const char *spec, CrError *e);

/* The "tests" reward (see above); NaN for IE or an out-of-range verdict, which the
 * caller must treat like IE. passed is clamped to [0, total]. */
double verdict_reward_tests(const VerdictRewardConfig *cfg, int verdict, int passed, int total);
/* The "compile" reward. */
double verdict_reward_compile(const VerdictRewardConfig *cfg, int verdict);

#endif
