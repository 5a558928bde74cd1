/* rollout/sampler.h — turning one row of logits into one token.
 * Defines: SamplerCfg, SamplerScratch, sampler_keep_set, sampler_sample, sampler_log_softmax_at.
 *
 * The sampling distribution is built in this fixed order (the order of Hugging Face
 * `generate`'s warpers): temperature -> top-k -> top-p -> min-p, each step acting on the
 * distribution left by the previous one (renormalised over the kept tokens).
 *  - temperature T: p ∝ exp(logit / T). T == 0 means greedy: the distribution is the point
 *    mass on the argmax (lowest token id on ties), so the sampled log-prob is 0.
 *  - top-k (k > 0): keep the k most probable tokens (ties broken by lower token id).
 *  - top-p (0 < p < 1): in descending-probability order keep token r while the mass of the
 *    tokens before it is < p (the most probable token is always kept). This is HF's rule
 *    "drop a token when the mass of it and all less probable tokens is <= 1 - p".
 *  - min-p (m > 0): keep tokens whose probability >= m * (largest probability).
 * Draws consume exactly one uniform from the caller's stream per token (none when greedy),
 * so a sample's tokens depend only on its own stream and its own logits. */
#ifndef CRUCIBLE_ROLLOUT_SAMPLER_H
#define CRUCIBLE_ROLLOUT_SAMPLER_H

#include <stdint.h>

#include "core/rng.h"

struct CrError;  /* core/error.h (not included: C++ simulator programs include this header) */

typedef struct SamplerCfg {
    float temperature;   /* 0 = greedy; must be >= 0 */
    int top_k;           /* <= 0: off */
    float top_p;         /* >= 1 or <= 0: off */
    float min_p;         /* <= 0: off */
} SamplerCfg;

/* Per-thread work space for a vocabulary of n_vocab tokens (caller allocates via
 * sampler_scratch_new; freed with sampler_scratch_free). */
typedef struct SamplerScratch {
    int n_vocab;
    double *prob;        /* [n_vocab] */
    int32_t *idx;        /* [n_vocab] */
    unsigned char *kept; /* [n_vocab] */
    struct ProbId *order;/* [n_vocab] */
} SamplerScratch;

/* 0 when the settings are in range — temperature finite >= 0, top_k >= 0, top_p in
 * [0, 1] (0 and 1 = off: 0 is a zeroed SampleParams' default; the CLIs refuse 0 from
 * users), min_p in [0, 1] (0 = off) —, else -1 with e naming the field as a flag
 * (--top-p ...): min_p above 1 would keep no token, top_p above 1 is not a mass. */
int sampler_cfg_check(const SamplerCfg *c, struct CrError *e);
/* The same for settings a user gave as flags: top_p must be > 0 too (--top-p 0 is refused,
 * not taken as "off"). */
int sampler_flags_check(const SamplerCfg *c, struct CrError *e);

SamplerScratch *sampler_scratch_new(int n_vocab);
void sampler_scratch_free(SamplerScratch *s);

/* The tokens of the final sampling distribution for these logits: their ids in
 * ascending id order into keep[] (capacity n_vocab) and their probabilities into
 * prob_out[] (may be NULL; renormalised to sum 1). Returns the number kept (>= 1). */
int sampler_keep_set(const SamplerCfg *c, const float *logits, int n_vocab, SamplerScratch *s,
                     int32_t *keep, double *prob_out);

/* Sample one token. *logp_sampled = log-probability of the token under the final sampling
 * distribution (0 when greedy); *logp_model = log softmax(logits)[token] (untempered,
 * unfiltered). rng may be NULL when temperature == 0. */
int32_t sampler_sample(const SamplerCfg *c, const float *logits, int n_vocab, SamplerScratch *s,
                       CrRng *rng, float *logp_sampled, float *logp_model);

/* log softmax(logits)[token], computed in double. */
double sampler_log_softmax_at(const float *logits, int n_vocab, int32_t token);

#endif
