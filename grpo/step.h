/* grpo/step.h — the optimisation part of one GRPO step (grpo/trainer.c), on packed
 * micro-batches of (prompt, completion) sequences whose rewards are already advantages.
 * Defines: GrpoStepResult, grpo_step.
 *
 * Order (spec/grpo.md): when mu > 1 the old-policy log-probabilities of every
 * micro-batch with the current weights (mu = 1: rho = 1 exactly, nothing recomputed);
 * when ref is given its log-probabilities; then mu passes, each: zero the gradients,
 * per micro-batch model_forward -> grpo_loss -> model_backward (MoE aux loss weighted by
 * grpo_micro_aux_weight), global-norm clipping at max_grad_norm, one AdamW step at lr.
 * Everything runs on the model's backend (m, ref and opt on the same Ops); log-probs go
 * through the host (the model_forward contract). The statistics are those of the last
 * pass; loss and aux are that pass's sums over the micro-batches.
 * Memory: fills mb[b].logp_old / logp_ref (malloc'd; grpo_micro_free frees them). */
#ifndef CRUCIBLE_GRPO_STEP_H
#define CRUCIBLE_GRPO_STEP_H

#include "core/error.h"
#include "grpo/loss.h"
#include "grpo/micro_batch.h"
#include "model/adamw.h"
#include "model/model.h"

typedef struct GrpoStepResult {
    double loss;           /* sum over micro-batches of grpo_loss (last pass) */
    double aux;            /* sum of aux loss x its weight (last pass) */
    float grad_norm;       /* pre-clip global norm of the last pass */
    GrpoLossStats stats;   /* merged over the last pass's micro-batches */
} GrpoStepResult;

/* Returns 0, or -1 with e set (bad batch, non-finite loss or outputs): the parameters
 * may then have been updated by earlier passes. norm->n_tokens <= 0: nothing is done
 * (result zeroed, stats.ratio_min = +inf, ratio_max = -inf). */
int grpo_step(Model *m, Model *ref, AdamW *opt, GrpoMicro *mb, int n_mb, const GrpoNorm *norm,
              const GrpoLossConfig *lc, long mu, float lr, float max_grad_norm, GrpoStepResult *out, CrError *e);

#endif
