/* model/schedule.c — see schedule.h */
#include "model/schedule.h"

#include "model/ops.h"

#include <math.h>

double lr_schedule(long step, long warmup_steps, long total_steps, double lr_max, double min_lr_ratio) {
    if (step < 0) step = 0;
    if (warmup_steps > 0 && step < warmup_steps) return lr_max * (double)step / (double)warmup_steps;
    if (total_steps <= warmup_steps) return lr_max;
    long span = total_steps - warmup_steps;
    double p = (double)(step - warmup_steps) / (double)(span > 1 ? span : 1);
    if (p > 1) p = 1;
    double f = 0.5 * (1.0 + cos(M_PI * p));
    return lr_max * (min_lr_ratio + (1.0 - min_lr_ratio) * f);
}

double grad_global_norm(const Model *m) {
    const Ops *ops = m->ops ? m->ops : ops_cpu();
    /* per tensor, tensors summed in table order (the CPU sumsq blocks each tensor in
     * fixed 64K chunks: independent of the thread count) */
    double total = 0;
    for (int i = 0; i < m->n_tensors; i++) total += ops->sumsq(m->grads + m->tensors[i].offset, m->tensors[i].numel);
    return sqrt(total);
}

float grad_clip_global_norm(Model *m, float max_norm) {
    double norm = grad_global_norm(m);
    if (max_norm <= 0 || !isfinite(norm)) return (float)norm;
    double coef = (double)max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        const Ops *ops = m->ops ? m->ops : ops_cpu();
        float c = (float)coef;
        for (int i = 0; i < m->n_tensors; i++) ops->scale(m->grads + m->tensors[i].offset, c, m->tensors[i].numel);
    }
    return (float)norm;
}
