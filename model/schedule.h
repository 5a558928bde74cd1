/* model/schedule.h — learning-rate schedule and global-norm gradient clipping.
 * Defines: lr_schedule, grad_clip_global_norm, grad_global_norm.
 *
 * lr_schedule(step, ...) is the rate for the optimizer step with 0-based index `step`
 * (the first update uses step 0). It equals transformers'
 * get_cosine_with_min_lr_schedule_with_warmup(num_cycles=0.5, min_lr_rate=min_lr_ratio)
 * times lr_max at scheduler step `step`:
 *     step <  warmup:  lr_max * step / warmup          (so step 0 has lr 0, as in HF)
 *     step >= warmup:  p = (step - warmup) / max(1, total - warmup), clamped to [0, 1]
 *                      lr_max * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + cos(pi p)))
 * The clamp is ours: past total_steps HF's cosine rises again; ours stays at the floor.
 * warmup_steps = 0 starts at lr_max; total_steps <= warmup_steps holds lr_max after warmup. */
#ifndef CRUCIBLE_MODEL_SCHEDULE_H
#define CRUCIBLE_MODEL_SCHEDULE_H

#include "model/model.h"

double lr_schedule(long step, long warmup_steps, long total_steps, double lr_max, double min_lr_ratio);

/* Global L2 norm of m->grads on the model's backend (Ops.sumsq per tensor, summed in
 * double in table order): independent of the thread count. */
double grad_global_norm(const Model *m);
/* torch.nn.utils.clip_grad_norm_: returns the pre-clip global norm; when
 * max_norm / (norm + 1e-6) < 1 every gradient is multiplied by that factor (Ops.scale).
 * max_norm <= 0 or a non-finite norm: gradients are left alone (the caller decides
 * what a NaN/inf norm means, e.g. skip the step). */
float grad_clip_global_norm(Model *m, float max_norm);

#endif
