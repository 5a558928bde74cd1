/* grpo/loss.h — the GRPO policy loss and its closed-form gradient w.r.t. log-probs.
 * Defines: GrpoLossType, GrpoLossConfig, GrpoNorm, GrpoMicroBatch, GrpoLossStats,
 *          grpo_loss_config_default, grpo_loss_type_parse, grpo_loss_type_name, grpo_loss,
 *          grpo_loss_stats_merge.
 *
 * The seam (DESIGN.md §3): the model gives logp_t = log pi(token_t); this module returns
 * the loss and writes dlogp_t = dL/dlogp_t, which model_backward turns into parameter
 * gradients. Contract: spec/grpo.md. Per masked completion token t of completion i:
 *
 *   rho_t = exp(logp_t - logp_old_t)                 (logp_old NULL: mu = 1, rho = 1
 *                                                      exactly, as a detached copy of logp)
 *   S_t   = -min(rho_t A_i, clip(rho_t, 1-eps_low, 1+eps_high) A_i)        surrogate
 *   dual clip (option, A_i < 0 only): S_t = min(S_t, -c A_i)              (c = 3)
 *   w_t   = min(exp(logp_old_t - logp_sampler_t), C)  truncated IS (option; else 1)
 *   x_t   = logp_ref_t - logp_t,  k3_t = exp(x_t) - x_t - 1                (beta > 0 only)
 *   L_t   = w_t S_t + beta k3_t
 *   loss  = sum_t a_t L_t          with the aggregation weight a_t (m_t = mask):
 *     grpo:    a_t = m_t / (|o_i| B')        |o_i| = sum of m over completion i (>= 1)
 *     dapo:    a_t = m_t / N                 N = masked tokens of the whole step
 *     dr_grpo: a_t = m_t / (B' max_new_tokens)
 *     bnpo:    a_t = m_t / (n_mb n_micro)    n_mb = masked tokens of THIS micro-batch
 *   B', N, max_new_tokens, n_micro are GLOBAL (all micro-batches of the step on all
 *   ranks, all-reduced before the backward pass), so summing grpo_loss over the
 *   micro-batches and summing their parameter gradients over ranks gives exactly the
 *   loss and gradient of one big batch (bnpo is by definition per micro-batch: it
 *   equals dapo only with one micro-batch).
 *
 * Gradient (w_t, A_i, logp_old, logp_ref are constants; d rho / d logp = rho):
 *   dS/dlogp = -A rho   when the unclipped term is the min (ties included):
 *                        A > 0 and rho <= 1+eps_high, or A < 0 and rho >= 1-eps_low
 *            = 0        when the clip binds: A > 0 and rho > 1+eps_high ("clip high"),
 *                        A < 0 and rho < 1-eps_low ("clip low"),
 *                        or dual clip with A < 0 and rho > c (S = -c A, constant);
 *            = 0        when A = 0.
 *   d(beta k3)/dlogp = beta (1 - exp(x))
 *   dlogp_t = a_t (w_t dS/dlogp + beta (1 - exp(x_t)));  0 where m_t = 0.
 * This equals TRL's GRPOTrainer._compute_loss for loss_type grpo/dapo/dr_grpo/bnpo
 * with equal-sized micro-batches, delta = c for the dual clip (identical for A < 0 when
 * c > 1+eps_high, and a no-op for A > 0), and vLLM token_truncate IS correction
 * (which, like here, weights the surrogate but not the KL term):
 * tests/reference/make_grpo_fixtures.py, tests/grpo/test_grpo_loss.c.
 *
 * Completions are never split across micro-batches (|o_i| is computed locally).
 * Memory: caller owns all arrays. All arithmetic in double; inputs/outputs float. */
#ifndef CRUCIBLE_GRPO_LOSS_H
#define CRUCIBLE_GRPO_LOSS_H

#include "core/error.h"

typedef enum GrpoLossType { GRPO_LOSS_GRPO, GRPO_LOSS_DAPO, GRPO_LOSS_DR_GRPO, GRPO_LOSS_BNPO } GrpoLossType;

typedef struct GrpoLossConfig {
    GrpoLossType type;
    double eps_low, eps_high; /* clip range [1-eps_low, 1+eps_high]; 0.2/0.2 (DAPO: 0.2/0.28) */
    double beta;              /* k3 KL coefficient; 0 = no reference model */
    int dual_clip;            /* 1: cap the loss of A < 0 tokens at -c A */
    double dual_clip_c;       /* c > 1 + eps_high; 3 */
    int tis;                  /* 1: truncated importance sampling from logp_sampler */
    double tis_cap;           /* C; 3 */
} GrpoLossConfig;

/* Step-global normalisers (sum over every micro-batch on every rank). */
typedef struct GrpoNorm {
    long n_completions;  /* B' (grpo, dr_grpo) */
    double n_tokens;     /* N = sum of the mask over the step (dapo) */
    long max_new_tokens; /* dr_grpo */
    long n_micro;        /* micro-batches in the step, all ranks (bnpo) */
} GrpoNorm;

/* One packed micro-batch: n_tokens completion tokens of n_comp whole completions. */
typedef struct GrpoMicroBatch {
    long n_tokens;
    int n_comp;
    const int *comp;           /* [n_tokens] completion of token t, 0..n_comp-1 */
    const float *adv;          /* [n_comp] advantage A_i */
    const float *logp;         /* [n_tokens] current policy */
    const float *logp_old;     /* [n_tokens] or NULL (mu = 1) */
    const float *logp_ref;     /* [n_tokens]; required iff beta > 0 */
    const float *logp_sampler; /* [n_tokens]; required iff tis */
    const float *mask;         /* [n_tokens] in [0,1], NULL = all 1 */
} GrpoMicroBatch;

/* Sums over the micro-batch's masked tokens (weighted by m_t): merge, then divide by tokens. */
typedef struct GrpoLossStats {
    double loss;       /* this micro-batch's contribution sum_t a_t L_t */
    double tokens;     /* sum m_t */
    double clip_low;   /* A < 0 and rho < 1-eps_low */
    double clip_high;  /* A > 0 and rho > 1+eps_high */
    double dual_clip;  /* A < 0 and rho > c (dual clip on) */
    double kl_sum;     /* sum m k3 (0 when beta = 0) */
    double ratio_sum;  /* sum m rho */
    double ratio_min, ratio_max;
    double tis_sum;    /* sum m w (tokens when tis is off) */
} GrpoLossStats;

/* eps 0.2/0.2, beta 0.04, dual clip off (c = 3), tis off (C = 3), type grpo. */
GrpoLossConfig grpo_loss_config_default(void);
/* "grpo" | "dapo" | "dr_grpo" | "bnpo" */
int grpo_loss_type_parse(const char *s, GrpoLossType *out, CrError *e);
const char *grpo_loss_type_name(GrpoLossType t);

/* Compute the micro-batch's loss contribution (returned in st->loss) and write
 * dlogp[n_tokens]. st may be NULL. Returns 0, or -1 with e set for an invalid config,
 * a normaliser that the loss type needs but is <= 0, a missing logp_ref/logp_sampler,
 * a completion index out of range, a non-finite input on a masked token, or a
 * non-finite per-token loss (exp overflow). dlogp is then unspecified. */
int grpo_loss(const GrpoLossConfig *cfg, const GrpoNorm *norm, const GrpoMicroBatch *mb,
              float *dlogp, GrpoLossStats *st, CrError *e);

/* acc += s: sums add; ratio min/max combine over micro-batches with tokens (acc may
 * start as all zeros). Means: kl = kl_sum/tokens, clip fractions = clip_x/tokens. */
void grpo_loss_stats_merge(GrpoLossStats *acc, const GrpoLossStats *s);

#endif
