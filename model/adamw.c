/* model/adamw.c — see adamw.h */
#include "model/adamw.h"
#include "core/alloc.h"
#include "model/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

AdamWConfig adamw_default_config(void) {
    return (AdamWConfig){.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
}

int adamw_init(AdamW *opt, const Model *m, AdamWConfig cfg, CrError *e) {
    memset(opt, 0, sizeof *opt);
    if (!isfinite(cfg.lr) || cfg.lr < 0) return cr_error_set(e, "adamw: lr must be >= 0, got %g", cfg.lr);
    if (!(cfg.beta1 >= 0 && cfg.beta1 < 1)) return cr_error_set(e, "adamw: beta1 must be in [0, 1), got %g", cfg.beta1);
    if (!(cfg.beta2 >= 0 && cfg.beta2 < 1)) return cr_error_set(e, "adamw: beta2 must be in [0, 1), got %g", cfg.beta2);
    if (!(cfg.eps > 0) || !isfinite(cfg.eps)) return cr_error_set(e, "adamw: eps must be > 0, got %g", cfg.eps);
    if (!(cfg.weight_decay >= 0) || !isfinite(cfg.weight_decay))
        return cr_error_set(e, "adamw: weight_decay must be >= 0, got %g", cfg.weight_decay);
    if (!m->grads) return cr_error_set(e, "adamw: the model has no gradients (created by model_create_infer)");
    opt->cfg = cfg;
    opt->n = m->n_params;
    opt->m = cr_alloc_aligned(sizeof(float) * (opt->n ? opt->n : 1));
    opt->v = cr_alloc_aligned(sizeof(float) * (opt->n ? opt->n : 1));
    opt->n_tensors = m->n_tensors;
    opt->decay = cr_calloc((size_t)(m->n_tensors > 0 ? m->n_tensors : 1), 1);
    for (int i = 0; i < m->n_tensors; i++) opt->decay[i] = m->tensors[i].ndim >= 2;
    return 0;
}

void adamw_update(const AdamWConfig *cfg, long t, float lr, int decay, float *p, const float *g, float *m,
                  float *v, size_t n) {
    const float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps;
    const double bc1 = 1.0 - pow((double)b1, (double)t), bc2 = 1.0 - pow((double)b2, (double)t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float keep = decay ? 1.0f - lr * cfg->weight_decay : 1.0f;
#pragma omp parallel for schedule(static) if (n > (1 << 15))
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * keep;
        float mi = m[i] + (1.0f - b1) * (gi - m[i]);     /* torch: exp_avg.lerp_(grad, 1 - beta1) */
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

void adamw_step(AdamW *opt, Model *m, float lr) {
    CR_CHECK(opt->n == m->n_params && opt->n_tensors == m->n_tensors);
    if (m->ops && strcmp(m->ops->name, "cpu") != 0)
        CR_DIE("adamw_step: parameters live on the %s backend; this optimizer needs host memory", m->ops->name);
    opt->step++;
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        adamw_update(&opt->cfg, opt->step, lr, opt->decay[i], m->params + t->offset, m->grads + t->offset,
                     opt->m + t->offset, opt->v + t->offset, t->numel);
    }
}

void adamw_free(AdamW *opt) {
    if (!opt) return;
    cr_free_aligned(opt->m);
    cr_free_aligned(opt->v);
    free(opt->decay);
    memset(opt, 0, sizeof *opt);
}
