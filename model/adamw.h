/* model/adamw.h — AdamW with fp32 moments and decoupled weight decay.
 * Defines: AdamWConfig, AdamW, adamw_check_config, adamw_init, adamw_step, adamw_update, adamw_free.
 *
 * Semantics are torch.optim.AdamW's (amsgrad=False, maximize=False), per element, with
 * t = the step count after incrementing:
 *     p <- p * (1 - lr * wd)                          (only tensors with decay on)
 *     m <- beta1 * m + (1 - beta1) * g
 *     v <- beta2 * v + (1 - beta2) * g^2
 *     p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * The bias corrections are computed in double (as torch does in Python) and applied in
 * fp32. Weight decay applies to 2-D tensors (Linear weights and the embedding); 1-D
 * tensors (RMSNorm weights) are not decayed.
 * adamw_step runs on the model's backend (Ops.adamw_update): the moments live in that
 * backend's memory (host memory for the CPU backend), allocated by adamw_init from the
 * model's Ops; adamw_update is the CPU kernel on host buffers. */
#ifndef CRUCIBLE_MODEL_ADAMW_H
#define CRUCIBLE_MODEL_ADAMW_H

#include <stddef.h>

#include "core/error.h"
#include "model/model.h"

struct Ops;

typedef struct AdamWConfig {
    float lr, beta1, beta2, eps, weight_decay;
} AdamWConfig;

typedef struct AdamW {
    AdamWConfig cfg;
    long step;               /* optimizer steps taken */
    float *m, *v;            /* [n] first and second moments, same layout as Model.params,
                                in ops' memory */
    const struct Ops *ops;   /* the backend of the model given to adamw_init */
    size_t n;                /* = Model.n_params */
    unsigned char *decay;    /* [n_tensors]: 1 = weight decay applies to that tensor */
    int n_tensors;
} AdamW;

/* torch's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 0.01. */
AdamWConfig adamw_default_config(void);
/* 0, or -1 with e set naming the field when the config is out of range (lr < 0, betas
 * outside [0, 1), eps <= 0, weight decay < 0, or any of them non-finite). Trainers check
 * their options with it before a run, fresh or resumed (a resumed run takes the
 * command's config over the checkpoint's moments). */
int adamw_check_config(AdamWConfig cfg, CrError *e);
/* Zero moments for m's tensors. Error if adamw_check_config rejects cfg, or for a model
 * without gradients (model_create_infer). */
int adamw_init(AdamW *opt, const Model *m, AdamWConfig cfg, CrError *e);
/* One step on every tensor using m->grads, at learning rate lr (cfg.lr is not used
 * here, so that a schedule can drive it). Increments opt->step first. m must be on the
 * backend opt was initialised for (else the process dies: a programming error). */
void adamw_step(AdamW *opt, Model *m, float lr);
/* The per-element update on raw HOST buffers for step number t (>= 1): the CPU
 * backend's kernel of adamw_step, also usable on a shard of the parameters. */
void adamw_update(const AdamWConfig *cfg, long t, float lr, int decay, float *p, const float *g, float *m,
                  float *v, size_t n);
void adamw_free(AdamW *opt);

#endif
