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

int adamw_check_config(AdamWConfig cfg, CrError *e) {
    if (!isfinite(cfg.lr) || cfg.lr < 0) return cr_error_set(e, "adamw: lr must be >= 0, got %g", cfg.lr);
    if (!(cfg.beta1 >= 0 && cfg.beta1 < 1)) return cr_error_set(e, "adamw: beta1 must be in [0, 1), got %g", cfg.beta1);
    if (!(cfg.beta2 >= 0 && cfg.beta2 < 1)) return cr_error_set(e, "adamw: beta2 must be in [0, 1), got %g", cfg.beta2);
    if (!(cfg.eps > 0) || !isfinite(cfg.eps)) return cr_error_set(e, "adamw: eps must be > 0, got %g", cfg.eps);
    if (!(cfg.weight_decay >= 0) || !isfinite(cfg.weight_decay))
        return cr_error_set(e, "adamw: weight_decay must be >= 0, got %g", cfg.weight_decay);
    return 0;
}

int adamw_init(AdamW *opt, const Model *m, AdamWConfig cfg, CrError *e) {
    memset(opt, 0, sizeof *opt);
    if (adamw_check_config(cfg, e)) return -1;
    if (!m->grads) return cr_error_set(e, "adamw: the model has no gradients (created by model_create_infer)");
    opt->cfg = cfg;
    opt->ops = m->ops ? m->ops : ops_cpu();
    opt->n = m->n_params;
    /* Moments live beside the parameters (Ops.alloc zero-fills). */
    opt->m = opt->ops->alloc(sizeof(float) * (opt->n ? opt->n : 1));
    opt->v = opt->ops->alloc(sizeof(float) * (opt->n ? opt->n : 1));
    opt->n_tensors = m->n_tensors;
    opt->decay = cr_calloc((size_t)(m->n_tensors > 0 ? m->n_tensors : 1), 1);
    for (int i = 0; i < m->n_tensors; i++) opt->decay[i] = m->tensors[i].ndim >= 2;
    return 0;
}

void adamw_update(const AdamWConfig *cfg, long t, float lr, int decay, float *p, const float *g, float *m,
                  float *v, size_t n) {
    /* the CPU backend's kernel (model/cpu/optim.c): one copy of the loop */
    ops_cpu()->adamw_update(cfg->beta1, cfg->beta2, cfg->eps, cfg->weight_decay, t, lr, decay, p, g, m, v, n);
}

void adamw_step(AdamW *opt, Model *m, float lr) {
    CR_CHECK(opt->n == m->n_params && opt->n_tensors == m->n_tensors);
    const Ops *ops = m->ops ? m->ops : ops_cpu();
    if (ops != opt->ops)
        CR_DIE("adamw_step: the optimizer state is on the %s backend but the model is on %s", opt->ops->name,
               ops->name);
    opt->step++;
    const AdamWConfig *c = &opt->cfg;
    for (int i = 0; i < m->n_tensors; i++) {
        const ParamTensor *t = &m->tensors[i];
        ops->adamw_update(c->beta1, c->beta2, c->eps, c->weight_decay, opt->step, lr, opt->decay[i],
                          m->params + t->offset, m->grads + t->offset, opt->m + t->offset, opt->v + t->offset,
                          t->numel);
    }
}

void adamw_free(AdamW *opt) {
    if (!opt) return;
    if (opt->ops) {
        opt->ops->free(opt->m);
        opt->ops->free(opt->v);
    }
    free(opt->decay);
    memset(opt, 0, sizeof *opt);
}
