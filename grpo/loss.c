/* grpo/loss.c — per-token clipped surrogate + k3 KL, aggregation, closed-form dL/dlogp.
 * The formulas and every gradient case are derived in loss.h. */
#include "grpo/loss.h"
#include "core/alloc.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

GrpoLossConfig grpo_loss_config_default(void) {
    GrpoLossConfig c = {.type = GRPO_LOSS_GRPO, .eps_low = 0.2, .eps_high = 0.2, .beta = 0.04,
                        .dual_clip = 0, .dual_clip_c = 3.0, .tis = 0, .tis_cap = 3.0};
    return c;
}

static const char *const type_names[] = {"grpo", "dapo", "dr_grpo", "bnpo"};

int grpo_loss_type_parse(const char *s, GrpoLossType *out, CrError *e) {
    for (int i = 0; i < 4; i++)
        if (s && !strcmp(s, type_names[i])) { *out = (GrpoLossType)i; return 0; }
    return cr_error_set(e, "loss_type: '%s' is not one of grpo, dapo, dr_grpo, bnpo", s ? s : "(null)");
}

const char *grpo_loss_type_name(GrpoLossType t) {
    return (unsigned)t < 4 ? type_names[t] : "?";
}

static int check_config(const GrpoLossConfig *c, const GrpoNorm *n, const GrpoMicroBatch *mb, CrError *e) {
    if ((unsigned)c->type >= 4) return cr_error_set(e, "grpo loss: unknown loss type %d", (int)c->type);
    if (!(c->eps_low >= 0 && c->eps_low < 1) || !(c->eps_high >= 0) || !isfinite(c->eps_high))
        return cr_error_set(e, "grpo loss: clip range eps_low=%g eps_high=%g (need 0 <= eps_low < 1, eps_high >= 0)",
                            c->eps_low, c->eps_high);
    if (!(c->beta >= 0) || !isfinite(c->beta)) return cr_error_set(e, "grpo loss: beta=%g must be >= 0", c->beta);
    if (c->dual_clip && !(c->dual_clip_c > 1 + c->eps_high) )
        return cr_error_set(e, "grpo loss: dual clip c=%g must exceed 1+eps_high=%g", c->dual_clip_c, 1 + c->eps_high);
    if (c->tis && !(c->tis_cap > 0)) return cr_error_set(e, "grpo loss: tis cap C=%g must be > 0", c->tis_cap);
    if (c->beta > 0 && !mb->logp_ref) return cr_error_set(e, "grpo loss: beta=%g > 0 needs logp_ref", c->beta);
    if (c->tis && !mb->logp_sampler) return cr_error_set(e, "grpo loss: truncated IS needs logp_sampler");
    if (mb->n_tokens < 0 || mb->n_comp < 0) return cr_error_set(e, "grpo loss: negative micro-batch size");
    if ((c->type == GRPO_LOSS_GRPO || c->type == GRPO_LOSS_DR_GRPO) && n->n_completions <= 0)
        return cr_error_set(e, "grpo loss: %s needs the step's completion count B' > 0", type_names[c->type]);
    if (c->type == GRPO_LOSS_DAPO && !(n->n_tokens > 0))
        return cr_error_set(e, "grpo loss: dapo needs the step's masked token count > 0");
    if (c->type == GRPO_LOSS_DR_GRPO && n->max_new_tokens <= 0)
        return cr_error_set(e, "grpo loss: dr_grpo needs max_new_tokens > 0");
    if (c->type == GRPO_LOSS_BNPO && n->n_micro <= 0)
        return cr_error_set(e, "grpo loss: bnpo needs the step's micro-batch count > 0");
    return 0;
}

int grpo_loss(const GrpoLossConfig *cfg, const GrpoNorm *norm, const GrpoMicroBatch *mb,
              float *dlogp, GrpoLossStats *st, CrError *e) {
    if (check_config(cfg, norm, mb, e) != 0) return -1;
    long T = mb->n_tokens;
    /* per-completion masked token counts (|o_i|) and the micro-batch total */
    double *len = cr_calloc((size_t)mb->n_comp + 1, sizeof *len);
    double n_mb = 0;
    for (long t = 0; t < T; t++) {
        int i = mb->comp[t];
        if (i < 0 || i >= mb->n_comp) {
            free(len);
            return cr_error_set(e, "grpo loss: token %ld has completion index %d (micro-batch has %d)", t, i, mb->n_comp);
        }
        double m = mb->mask ? mb->mask[t] : 1.0;
        if (!(m >= 0 && m <= 1)) {
            free(len);
            return cr_error_set(e, "grpo loss: mask[%ld] = %g is not in [0,1]", t, m);
        }
        len[i] += m;
        n_mb += m;
    }
    GrpoLossStats s = {.ratio_min = INFINITY, .ratio_max = -INFINITY};
    const double lo = 1.0 - cfg->eps_low, hi = 1.0 + cfg->eps_high;
    double loss = 0;
    int rc = 0;
    for (long t = 0; t < T; t++) {
        int i = mb->comp[t];
        double m = mb->mask ? mb->mask[t] : 1.0;
        dlogp[t] = 0;
        if (m == 0) continue;
        double a; /* aggregation weight */
        switch (cfg->type) {
        case GRPO_LOSS_GRPO: a = m / (fmax(len[i], 1.0) * (double)norm->n_completions); break;
        case GRPO_LOSS_DAPO: a = m / norm->n_tokens; break;
        case GRPO_LOSS_DR_GRPO: a = m / ((double)norm->n_completions * (double)norm->max_new_tokens); break;
        default: a = m / (n_mb * (double)norm->n_micro); break;
        }
        double A = mb->adv[i], lp = mb->logp[t];
        double lp_old = mb->logp_old ? mb->logp_old[t] : lp;
        if (!isfinite(A) || !isfinite(lp) || !isfinite(lp_old)) {
            rc = cr_error_set(e, "grpo loss: non-finite input at token %ld (A=%g logp=%g logp_old=%g)", t, A, lp, lp_old);
            break;
        }
        double rho = mb->logp_old ? exp(lp - lp_old) : 1.0;
        double rho_c = rho < lo ? lo : (rho > hi ? hi : rho);
        /* surrogate S = -min(rho A, rho_c A) and its derivative */
        double S, dS;
        if (A > 0 && rho > hi) { S = -rho_c * A; dS = 0; s.clip_high += m; }
        else if (A < 0 && rho < lo) { S = -rho_c * A; dS = 0; s.clip_low += m; }
        else { S = -rho * A; dS = -rho * A; }
        if (cfg->dual_clip && A < 0 && rho > cfg->dual_clip_c) { S = -cfg->dual_clip_c * A; dS = 0; s.dual_clip += m; }
        double w = 1.0;
        if (cfg->tis) {
            double ls = mb->logp_sampler[t];
            if (!isfinite(ls)) { rc = cr_error_set(e, "grpo loss: non-finite logp_sampler at token %ld", t); break; }
            w = fmin(exp(lp_old - ls), cfg->tis_cap);
        }
        double L = w * S, dL = w * dS;
        if (cfg->beta > 0) {
            double lr = mb->logp_ref[t];
            if (!isfinite(lr)) { rc = cr_error_set(e, "grpo loss: non-finite logp_ref at token %ld", t); break; }
            double x = lr - lp, ex = exp(x);
            double k3 = ex - x - 1;
            L += cfg->beta * k3;
            dL += cfg->beta * (1 - ex);
            s.kl_sum += m * k3;
        }
        if (!isfinite(L)) { /* e.g. exp overflow from a wildly off-policy token: stop, never poison the step */
            rc = cr_error_set(e, "grpo loss: non-finite loss at token %ld (rho=%g, A=%g)", t, rho, A);
            break;
        }
        loss += a * L;
        dlogp[t] = (float)(a * dL);
        s.tokens += m;
        s.ratio_sum += m * rho;
        s.tis_sum += m * w;
        if (rho < s.ratio_min) s.ratio_min = rho;
        if (rho > s.ratio_max) s.ratio_max = rho;
    }
    free(len);
    if (rc != 0) return rc;
    s.loss = loss;
    if (st) *st = s;
    return 0;
}

void grpo_loss_stats_merge(GrpoLossStats *acc, const GrpoLossStats *s) {
    if (s->tokens > 0) { /* min/max only over micro-batches that had tokens */
        if (acc->tokens == 0 || s->ratio_min < acc->ratio_min) acc->ratio_min = s->ratio_min;
        if (acc->tokens == 0 || s->ratio_max > acc->ratio_max) acc->ratio_max = s->ratio_max;
    }
    acc->loss += s->loss;
    acc->tokens += s->tokens;
    acc->clip_low += s->clip_low;
    acc->clip_high += s->clip_high;
    acc->dual_clip += s->dual_clip;
    acc->kl_sum += s->kl_sum;
    acc->ratio_sum += s->ratio_sum;
    acc->tis_sum += s->tis_sum;
}
