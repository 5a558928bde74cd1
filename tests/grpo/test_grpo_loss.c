/* tests/grpo/test_grpo_loss.c — the GRPO loss: hand-derived cases, finite differences of
 * the closed-form dlogp for every loss type x dual clip x beta x TIS, micro-batch split
 * invariance with global normalisers, and input errors. TRL parity: test_grpo_trl.c. */
#include "tests/test.h"
#include "core/alloc.h"
#include "core/rng.h"
#include "grpo/loss.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A random packed micro-batch with its own storage. */
typedef struct RandBatch {
    GrpoMicroBatch mb;
    int *comp;
    float *adv, *logp, *old, *ref, *smp, *mask;
} RandBatch;

static void rb_free(RandBatch *b) {
    free(b->comp); free(b->adv); free(b->logp); free(b->old); free(b->ref); free(b->smp); free(b->mask);
}

/* rho kept >= 0.02 away (relative) from 1-eps_low, 1+eps_high and c so that finite
 * differences with h = 1e-3 never straddle a kink. */
static int near_kink(double rho, const GrpoLossConfig *c) {
    double k[3] = {1 - c->eps_low, 1 + c->eps_high, c->dual_clip_c};
    for (int i = 0; i < 3; i++) if (fabs(rho / k[i] - 1) < 0.02) return 1;
    return 0;
}

static void rb_make(RandBatch *b, CrRng *r, int n_comp, const GrpoLossConfig *c) {
    int *lens = cr_malloc(n_comp * sizeof *lens);
    long T = 0;
    for (int i = 0; i < n_comp; i++) { lens[i] = 1 + (int)(cr_rng_uniform(r) * 12); T += lens[i]; }
    b->comp = cr_malloc(T * sizeof *b->comp);
    b->adv = cr_malloc(n_comp * sizeof *b->adv);
    b->logp = cr_malloc(T * sizeof(float));
    b->old = cr_malloc(T * sizeof(float));
    b->ref = cr_malloc(T * sizeof(float));
    b->smp = cr_malloc(T * sizeof(float));
    b->mask = cr_malloc(T * sizeof(float));
    long t = 0;
    for (int i = 0; i < n_comp; i++) {
        double u = cr_rng_uniform(r);
        b->adv[i] = u < 0.1 ? 0.0f : (float)cr_rng_normal(r);
        for (int j = 0; j < lens[i]; j++, t++) {
            b->comp[t] = i;
            b->logp[t] = (float)(-0.05 - 3 * cr_rng_uniform(r));
            double rho;
            do {
                /* log-ratios: most in the clip range, 15% at rho in [2.5, 5.5] (around c = 3) */
                double d = cr_rng_uniform(r) < 0.15 ? 0.9 + 0.8 * cr_rng_uniform(r) : 0.35 * cr_rng_normal(r);
                b->old[t] = (float)(b->logp[t] - d);
                rho = exp((double)b->logp[t] - (double)b->old[t]);
            } while (near_kink(rho, c));
            b->ref[t] = (float)(b->logp[t] + 0.5 * cr_rng_normal(r));
            b->smp[t] = (float)(b->old[t] + 0.8 * cr_rng_normal(r));
            b->mask[t] = cr_rng_uniform(r) < 0.15 ? 0.0f : 1.0f;
        }
    }
    free(lens);
    b->mb = (GrpoMicroBatch){.n_tokens = T, .n_comp = n_comp, .comp = b->comp, .adv = b->adv, .logp = b->logp,
                             .logp_old = b->old, .logp_ref = b->ref, .logp_sampler = b->smp, .mask = b->mask};
}

static GrpoNorm norm_of(const GrpoMicroBatch *mb, long max_new) {
    GrpoNorm n = {.n_completions = mb->n_comp, .n_tokens = 0, .max_new_tokens = max_new, .n_micro = 1};
    for (long t = 0; t < mb->n_tokens; t++) n.n_tokens += mb->mask ? mb->mask[t] : 1;
    return n;
}

static double loss_only(const GrpoLossConfig *c, const GrpoNorm *n, const GrpoMicroBatch *mb, float *scratch) {
    GrpoLossStats st;
    CrError e;
    CR_CHECK(grpo_loss(c, n, mb, scratch, &st, &e) == 0);
    return st.loss;
}

TEST(grpo_loss_finite_differences_all_variants) {
    CrRng r;
    int configs = 0, checked = 0;
    double saw_low = 0, saw_high = 0, saw_dual = 0; /* every gradient case must be exercised */
    for (int type = 0; type < 4; type++)
        for (int dual = 0; dual < 2; dual++)
            for (int kl = 0; kl < 2; kl++)
                for (int tis = 0; tis < 2; tis++) {
                    GrpoLossConfig c = grpo_loss_config_default();
                    c.type = (GrpoLossType)type;
                    c.eps_low = 0.2; c.eps_high = 0.28;
                    c.dual_clip = dual; c.beta = kl ? 0.04 : 0.0; c.tis = tis;
                    cr_rng_init(&r, 7, (uint64_t)configs, 1);
                    RandBatch b;
                    rb_make(&b, &r, 8, &c);
                    if (!kl) b.mb.logp_ref = NULL; /* beta = 0: no reference model at all */
                    if (!tis) b.mb.logp_sampler = NULL;
                    GrpoNorm n = norm_of(&b.mb, 16);
                    n.n_completions = 11; /* as if other micro-batches existed */
                    n.n_tokens += 17;
                    n.n_micro = 2;
                    long T = b.mb.n_tokens;
                    float *g = cr_malloc(T * sizeof *g), *scratch = cr_malloc(T * sizeof *scratch);
                    GrpoLossStats st;
                    CrError e;
                    CHECKF(grpo_loss(&c, &n, &b.mb, g, &st, &e) == 0, "%s", e.msg);
                    saw_low += st.clip_low; saw_high += st.clip_high; saw_dual += st.dual_clip;
                    double gmax = 0;
                    for (long t = 0; t < T; t++) gmax = fmax(gmax, fabs(g[t]));
                    CHECK(gmax > 0);
                    for (long t = 0; t < T; t++) {
                        float x0 = b.logp[t];
                        float xp = x0 + 1e-3f, xm = x0 - 1e-3f;
                        b.logp[t] = xp;
                        double lp = loss_only(&c, &n, &b.mb, scratch);
                        b.logp[t] = xm;
                        double lm = loss_only(&c, &n, &b.mb, scratch);
                        b.logp[t] = x0;
                        double fd = (lp - lm) / ((double)xp - (double)xm);
                        CHECKF(fabs(fd - g[t]) <= 1e-4 * fabs(g[t]) + 1e-6 * gmax,
                               "%s dual=%d beta=%g tis=%d token %ld: dlogp %.9g vs finite difference %.9g",
                               grpo_loss_type_name(c.type), dual, c.beta, tis, t, g[t], fd);
                        if (b.mask[t] == 0) CHECK(g[t] == 0);
                        checked++;
                        if (FAILED()) break;
                    }
                    free(g); free(scratch);
                    rb_free(&b);
                    configs++;
                    if (FAILED()) return;
                }
    CHECK(configs == 32 && checked > 32 * 30);
    CHECKF(saw_low > 0 && saw_high > 0 && saw_dual > 0, "clip low %g high %g dual %g", saw_low, saw_high, saw_dual);
}

/* One token per case, hand-derived from spec/grpo.md. */
TEST(grpo_loss_hand_cases) {
    struct { double A, d /* logp - logp_old */; int dual; double loss, grad; int cl, ch, dc; } cs[] = {
        {1.0, log(1.1), 0, -1.1, -1.1, 0, 0, 0},   /* inside: -A rho, grad -A rho */
        {1.0, log(1.5), 0, -1.2, 0.0, 0, 1, 0},    /* A > 0, rho > 1+eps: clipped, no grad */
        {1.0, log(0.5), 0, -0.5, -0.5, 0, 0, 0},   /* A > 0, rho < 1-eps: unclipped term is min */
        {-1.0, log(0.5), 0, 0.8, 0.0, 1, 0, 0},    /* A < 0, rho < 1-eps: clipped */
        {-1.0, log(1.5), 0, 1.5, 1.5, 0, 0, 0},    /* A < 0, rho > 1+eps: unclipped, grows */
        {-2.0, log(4.0), 0, 8.0, 8.0, 0, 0, 0},    /* no dual clip: unbounded */
        {-2.0, log(4.0), 1, 6.0, 0.0, 0, 0, 1},    /* dual clip: -c A = 6, no grad */
        {-2.0, log(2.5), 1, 5.0, 5.0, 0, 0, 0},    /* dual clip not binding below c */
        {2.0, log(4.0), 1, -2.4, 0.0, 0, 1, 0},    /* dual clip never acts for A > 0 */
        {0.0, log(2.0), 1, 0.0, 0.0, 0, 0, 0},
    };
    for (size_t k = 0; k < sizeof cs / sizeof cs[0]; k++) {
        GrpoLossConfig c = grpo_loss_config_default();
        c.type = GRPO_LOSS_DAPO; c.beta = 0; c.dual_clip = cs[k].dual;
        float adv = (float)cs[k].A, lp = -1.0f, old = (float)(-1.0 - cs[k].d);
        int comp = 0;
        GrpoMicroBatch mb = {.n_tokens = 1, .n_comp = 1, .comp = &comp, .adv = &adv, .logp = &lp, .logp_old = &old};
        GrpoNorm n = {.n_completions = 1, .n_tokens = 1, .max_new_tokens = 1, .n_micro = 1};
        float g;
        GrpoLossStats st;
        CrError e;
        CHECK(grpo_loss(&c, &n, &mb, &g, &st, &e) == 0);
        CHECKF(fabs(st.loss - cs[k].loss) < 1e-6 && fabs(g - cs[k].grad) < 1e-6,
               "case %zu: loss %g grad %g, expected %g %g", k, st.loss, g, cs[k].loss, cs[k].grad);
        CHECK(st.clip_low == cs[k].cl && st.clip_high == cs[k].ch && st.dual_clip == cs[k].dc);
    }
    /* k3 KL: x = ref - logp = 0.5 -> k3 = e^0.5 - 1.5, grad beta (1 - e^0.5); mu = 1 (no logp_old): rho = 1 */
    GrpoLossConfig c = grpo_loss_config_default();
    c.type = GRPO_LOSS_DAPO; c.beta = 0.1;
    float adv = 0.5f, lp = -2.0f, ref = -1.5f, g;
    int comp = 0;
    GrpoMicroBatch mb = {.n_tokens = 1, .n_comp = 1, .comp = &comp, .adv = &adv, .logp = &lp, .logp_ref = &ref};
    GrpoNorm n = {.n_completions = 1, .n_tokens = 1, .max_new_tokens = 1, .n_micro = 1};
    GrpoLossStats st;
    CrError e;
    CHECK(grpo_loss(&c, &n, &mb, &g, &st, &e) == 0);
    CHECK_NEAR(st.loss, -0.5 + 0.1 * (exp(0.5) - 1.5), 1e-7);
    CHECK_NEAR(g, -0.5 + 0.1 * (1 - exp(0.5)), 1e-6);
    CHECK_NEAR(st.kl_sum, exp(0.5) - 1.5, 1e-7);
    CHECK(st.ratio_min == 1 && st.ratio_max == 1);
    /* TIS: w = min(exp(old - sampler), C) scales the surrogate only */
    c.beta = 0; c.tis = 1; c.tis_cap = 3;
    float old = -2.0f, smp[2] = {-2.5f, -4.0f};
    mb.logp_old = &old;
    for (int k = 0; k < 2; k++) {
        mb.logp_sampler = &smp[k];
        CHECK(grpo_loss(&c, &n, &mb, &g, &st, &e) == 0);
        double w = fmin(exp(-2.0 - smp[k]), 3.0);
        CHECK_NEAR(st.loss, -0.5 * w, 1e-6);
        CHECK_NEAR(g, -0.5 * w, 1e-6);
    }
}

/* Aggregation weights by hand: two completions of 1 and 3 tokens. */
TEST(grpo_loss_aggregation_weights) {
    int comp[4] = {0, 1, 1, 1};
    float adv[2] = {1.0f, -1.0f}, lp[4] = {-1, -1, -1, -1}, mask[4] = {1, 1, 0, 1};
    GrpoMicroBatch mb = {.n_tokens = 4, .n_comp = 2, .comp = comp, .adv = adv, .logp = lp, .mask = mask};
    GrpoNorm n = {.n_completions = 4, .n_tokens = 10, .max_new_tokens = 8, .n_micro = 3};
    /* rho = 1: L_t = -A; masked tokens: c0:1 (A=1), c1:2 (A=-1) */
    double want[4] = {
        -1.0 / (1 * 4) + 2 * (1.0 / (2 * 4)),   /* grpo: per-completion mean / B' */
        (-1.0 + 2) / 10,                        /* dapo: / global tokens */
        (-1.0 + 2) / (4.0 * 8),                 /* dr_grpo: / (B' max_new) */
        (-1.0 + 2) / (3.0 * 3),                 /* bnpo: local token mean / n_micro */
    };
    for (int type = 0; type < 4; type++) {
        GrpoLossConfig c = grpo_loss_config_default();
        c.type = (GrpoLossType)type; c.beta = 0;
        float g[4];
        GrpoLossStats st;
        CrError e;
        CHECK(grpo_loss(&c, &n, &mb, g, &st, &e) == 0);
        CHECKF(fabs(st.loss - want[type]) < 1e-9, "%s: %g vs %g", grpo_loss_type_name(c.type), st.loss, want[type]);
        CHECK(g[2] == 0 && st.tokens == 3);
    }
}

/* Gradient accumulation / data parallelism: splitting the step into micro-batches with
 * global normalisers gives the same total loss and the same dlogp. */
TEST(grpo_loss_microbatch_split_invariance) {
    for (int type = 0; type < 3; type++)
        for (int variant = 0; variant < 2; variant++) {
            GrpoLossConfig c = grpo_loss_config_default();
            c.type = (GrpoLossType)type;
            c.beta = variant ? 0.04 : 0; c.dual_clip = variant; c.tis = variant;
            CrRng r;
            cr_rng_init(&r, 11, (uint64_t)type, (uint64_t)variant);
            RandBatch b;
            rb_make(&b, &r, 10, &c);
            GrpoNorm n = norm_of(&b.mb, 16);
            long T = b.mb.n_tokens;
            float *g1 = cr_malloc(T * sizeof(float)), *g2 = cr_malloc(T * sizeof(float));
            GrpoLossStats whole, part, acc = {0};
            CrError e;
            CHECK(grpo_loss(&c, &n, &b.mb, g1, &whole, &e) == 0);
            /* micro-batches of completions [0,3), [3,4), [4,10) */
            int cuts[4] = {0, 3, 4, 10};
            long t0 = 0;
            for (int k = 0; k < 3; k++) {
                long t1 = t0;
                while (t1 < T && b.comp[t1] < cuts[k + 1]) t1++;
                int nc = cuts[k + 1] - cuts[k];
                int *lc = cr_malloc((t1 - t0 + 1) * sizeof *lc);
                for (long t = t0; t < t1; t++) lc[t - t0] = b.comp[t] - cuts[k];
                GrpoMicroBatch m = {.n_tokens = t1 - t0, .n_comp = nc, .comp = lc, .adv = b.adv + cuts[k],
                                    .logp = b.logp + t0, .logp_old = b.old + t0, .logp_ref = b.ref + t0,
                                    .logp_sampler = b.smp + t0, .mask = b.mask + t0};
                CHECK(grpo_loss(&c, &n, &m, g2 + t0, &part, &e) == 0);
                grpo_loss_stats_merge(&acc, &part);
                free(lc);
                t0 = t1;
            }
            CHECK(t0 == T);
            CHECK_NEAR(acc.loss, whole.loss, 1e-12);
            CHECK(test_rel_err(g2, g1, T) < 1e-7);
            CHECK(acc.tokens == whole.tokens && acc.clip_low == whole.clip_low && acc.clip_high == whole.clip_high);
            CHECK_NEAR(acc.kl_sum, whole.kl_sum, 1e-9);
            CHECK(acc.ratio_min == whole.ratio_min && acc.ratio_max == whole.ratio_max);
            free(g1); free(g2);
            rb_free(&b);
        }
    /* bnpo with one micro-batch is dapo */
    GrpoLossConfig c = grpo_loss_config_default();
    CrRng r;
    cr_rng_init(&r, 12, 0, 0);
    RandBatch b;
    rb_make(&b, &r, 6, &c);
    GrpoNorm n = norm_of(&b.mb, 16);
    float *g1 = cr_malloc(b.mb.n_tokens * sizeof(float)), *g2 = cr_malloc(b.mb.n_tokens * sizeof(float));
    GrpoLossStats s1, s2;
    CrError e;
    c.type = GRPO_LOSS_BNPO;
    CHECK(grpo_loss(&c, &n, &b.mb, g1, &s1, &e) == 0);
    c.type = GRPO_LOSS_DAPO;
    CHECK(grpo_loss(&c, &n, &b.mb, g2, &s2, &e) == 0);
    CHECK_NEAR(s1.loss, s2.loss, 1e-12);
    CHECK(test_rel_err(g1, g2, b.mb.n_tokens) < 1e-7);
    free(g1); free(g2);
    rb_free(&b);
}

TEST(grpo_loss_rejects_bad_inputs) {
    int comp[2] = {0, 1};
    float adv[2] = {1, -1}, lp[2] = {-1, -2}, g[2];
    GrpoMicroBatch mb = {.n_tokens = 2, .n_comp = 2, .comp = comp, .adv = adv, .logp = lp};
    GrpoNorm n = {.n_completions = 2, .n_tokens = 2, .max_new_tokens = 4, .n_micro = 1};
    GrpoLossConfig c = grpo_loss_config_default();
    CrError e;
    CHECK(grpo_loss(&c, &n, &mb, g, NULL, &e) == -1 && strstr(e.msg, "logp_ref")); /* beta > 0, no ref */
    c.beta = 0;
    CHECK(grpo_loss(&c, &n, &mb, g, NULL, &e) == 0);
    c.tis = 1;
    CHECK(grpo_loss(&c, &n, &mb, g, NULL, &e) == -1 && strstr(e.msg, "logp_sampler"));
    c.tis = 0;
    c.dual_clip = 1; c.dual_clip_c = 1.1;
    CHECK(grpo_loss(&c, &n, &mb, g, NULL, &e) == -1 && strstr(e.msg, "dual clip"));
    c.dual_clip = 0;
    c.type = GRPO_LOSS_DAPO; n.n_tokens = 0;
    CHECK(grpo_loss(&c, &n, &mb, g, NULL, &e) == -1 && strstr(e.msg, "dapo"));
    n.n_tokens = 2;
    comp[1] = 2;
    CHECK(grpo_loss(&c, &n, &mb, g, NULL, &e) == -1 && strstr(e.msg, "completion index"));
    comp[1] = 1;
    lp[1] = NAN;
    CHECK(grpo_loss(&c, &n, &mb, g, NULL, &e) == -1 && strstr(e.msg, "non-finite"));
    lp[1] = -2;
    /* an exp overflow is an error, not a silent inf */
    float old[2] = {-1, -900};
    mb.logp_old = old;
    c.type = GRPO_LOSS_DAPO;
    adv[1] = -1;
    CHECK(grpo_loss(&c, &n, &mb, g, NULL, &e) == -1 && strstr(e.msg, "non-finite loss"));
    GrpoLossType t;
    CHECK(grpo_loss_type_parse("dr_grpo", &t, &e) == 0 && t == GRPO_LOSS_DR_GRPO);
    CHECK(grpo_loss_type_parse("ppo", &t, &e) == -1 && strstr(e.msg, "ppo"));
}
