/* reward/combine.h — named reward functions, their weights, and one completion's rewards.
 * Defines: RewardKind, RewardSpec, RewardConfig, RewardInput, reward_spec_parse,
 *          reward_kind_name, reward_config_default, reward_compute, reward_weighted_sum,
 *          reward_overlong.
 *
 * `--reward compile,tests,format --reward-weights 0.2,1,0.1` -> RewardSpec {3 functions}.
 * Functions (each one value per completion; NaN = no value):
 *   compile  : verdict_reward_compile (1 unless CE)
 *   tests    : verdict_reward_tests (binary / fraction, per-verdict values)
 *   format   : reward_format (a closed ```<language> block)
 *   rm       : the reward model's score, passed in (NaN when absent)
 *   overlong : DAPO soft overlong punishment, reward_overlong (0, linear in the buffer,
 *              -1 beyond)
 * Verdict IE (internal sandbox error) makes EVERY function of that completion NaN: the
 * completion is unscorable and grpo_advantages gives it A = 0 outside the baseline;
 * the trainer logs it. Weights default to 1. The per-function matrix and the weights go
 * to grpo_advantages (sum-then-scale or normalise-per-group). */
#ifndef CRUCIBLE_REWARD_COMBINE_H
#define CRUCIBLE_REWARD_COMBINE_H

#include "core/error.h"
#include "reward/verdict_reward.h"

typedef enum RewardKind { REWARD_COMPILE, REWARD_TESTS, REWARD_FORMAT, REWARD_RM, REWARD_OVERLONG } RewardKind;
#define REWARD_KIND_COUNT 5

typedef struct RewardSpec {
    int n;
    RewardKind kind[REWARD_KIND_COUNT];
    float weight[REWARD_KIND_COUNT];
} RewardSpec;

typedef struct RewardConfig {
    VerdictRewardConfig verdict;
    long overlong_max;   /* L_max (max new tokens) */
    long overlong_cache; /* L_cache, 0 <= L_cache <= L_max */
} RewardConfig;

/* One judged completion. */
typedef struct RewardInput {
    int verdict;            /* RewardVerdict / sandbox Verdict value */
    int passed, total;      /* tests */
    const char *completion; /* the model's text (format reward) */
    const char *language;   /* task language */
    double rm_score;        /* reward model output, NaN if none */
    long n_tokens;          /* completion length in tokens (overlong) */
} RewardInput;

/* names: comma-separated, each once, from compile,tests,format,rm,overlong; weights:
 * NULL/"" (all 1) or as many finite comma-separated numbers. -1 with e naming the flag
 * and the entry. */
int reward_spec_parse(const char *names, const char *weights, RewardSpec *out, CrError *e);
const char *reward_kind_name(RewardKind k);
/* tests binary, failure values 0, overlong_max 0 (the overlong function then needs
 * them set: reward_compute checks them). */
RewardConfig reward_config_default(void);
/* out[k] for k < spec->n. Returns 0, or -1 when the spec asks for overlong with an
 * invalid L_max/L_cache. */
int reward_compute(const RewardSpec *spec, const RewardConfig *cfg, const RewardInput *in, float *out, CrError *e);
/* DAPO soft overlong punishment for a completion of len tokens, max length l_max,
 * buffer l_cache (0 <= l_cache <= l_max, else abort: a config bug checked upstream):
 *   0 if len <= l_max - l_cache; ((l_max - l_cache) - len) / l_cache if len <= l_max; -1 beyond.
 * A truncated completion has len == l_max and gets -1. */
double reward_overlong(long len, long l_max, long l_cache);
/* sum_k w_k v_k over non-NaN v_k; NaN when all are NaN (for logging; the advantage
 * computation takes the matrix itself). */
double reward_weighted_sum(const RewardSpec *spec, const float *v);

#endif
