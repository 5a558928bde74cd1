/* grpo/step.c — see step.h (moved out of grpo/trainer.c unchanged, so that the GPU
 * tests run the trainer's own step). */
#include "grpo/step.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "model/schedule.h"

int grpo_step(Model *m, Model *ref, AdamW *opt, GrpoMicro *mb, int n_mb, const GrpoNorm *norm,
              const GrpoLossConfig *lc, long mu, float lr, float max_grad_norm, GrpoStepResult *out, CrError *e) {
    memset(out, 0, sizeof *out);
    out->stats.ratio_min = INFINITY;
    out->stats.ratio_max = -INFINITY;
    if (norm->n_tokens <= 0) return 0;
    for (int b = 0; b < n_mb; b++) {
        float aux;
        if (mu > 1) {
            mb[b].logp_old = cr_malloc(sizeof(float) * (size_t)mb[b].b.n_tokens);
            if (model_forward(m, &mb[b].b, mb[b].logp_old, &aux, e)) return -1;
        }
        if (ref) {
            mb[b].logp_ref = cr_malloc(sizeof(float) * (size_t)mb[b].b.n_tokens);
            if (model_forward(ref, &mb[b].b, mb[b].logp_ref, &aux, e)) return -1;
        }
    }
    for (long pass = 0; pass < mu; pass++) {
        model_zero_grads(m);
        out->loss = 0;
        out->aux = 0;
        for (int b = 0; b < n_mb; b++) {
            int N = mb[b].b.n_tokens;
            float *logp = cr_malloc(sizeof(float) * (size_t)N), *dlogp = cr_malloc(sizeof(float) * (size_t)N);
            float aux = 0, aux_w = grpo_micro_aux_weight(mb, n_mb, b, m->cfg.seq_aux);
            GrpoLossStats s1;
            GrpoMicroBatch g = {N, mb[b].n_comp, mb[b].comp, mb[b].adv, logp, mb[b].logp_old, mb[b].logp_ref,
                                NULL, mb[b].mask};
            int rc = model_forward(m, &mb[b].b, logp, &aux, e) || grpo_loss(lc, norm, &g, dlogp, &s1, e) ||
                     model_backward(m, &mb[b].b, dlogp, aux_w, e);
            if (!rc) {
                out->loss += s1.loss;
                out->aux += aux * aux_w;
                if (pass == mu - 1) grpo_loss_stats_merge(&out->stats, &s1);
            }
            free(logp);
            free(dlogp);
            if (rc) return -1;
        }
        out->grad_norm = grad_clip_global_norm(m, max_grad_norm);
        if (!isfinite(out->grad_norm))
            return cr_error_set(e, "grpo: the gradient norm is not finite (diverged; try a lower --lr): no update made, "
                                   "the last checkpoint kept");
        adamw_step(opt, m, lr);
    }
    return 0;
}
