/* tests/grpo/test_grpo_options.c — `crucible grpo` flags end to end on a tiny random
 * model whose completions end at varied lengths (test_make_eos_happy) on tasks they pass
 * or fail at random (test_write_comment_tasks).
 * What each run records is recomputed independently from the run store's rollouts
 * (rewards, lengths, advantages):
 *  - --scale-rewards group|batch|none: the stored advantages are the spec's formulas;
 *  - --loss-type grpo|dapo|dr_grpo|bnpo with mu = 1, beta = 0 (rho = 1): the logged loss
 *    is -sum_i A_i w_i with the aggregation's weights (grpo 1/B', dapo |o_i|/N,
 *    dr_grpo |o_i|/(B' L_max); bnpo = dapo in one micro-batch);
 *  - --dynamic-sampling: groups_kept = the non-constant groups, dropped groups have A = 0,
 *    more prompts are drawn;
 *  - --overlong-buffer: reward = tests + DAPO penalty(|o|); --overlong-mask: counted;
 *  - --ref-reset-every 1 (mu = 1): KL is exactly 0 at every step, and > 0 without reset;
 *  - --reward rm,tests --rm RM with a reward model trained on a run store;
 *  - --reward-combine normalize: advantages standardised over the batch;
 *  - --batch-tokens (micro-batches) does not change the step's loss, gradient norm, KL
 *    or aux loss (grpo, dapo, dr_grpo; mu = 2, beta > 0). */
#include "tests/test.h"
#include "tests/util.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/safetensors.h"
#include "data/runstore.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BASE "--group 4 --prompts-per-step 2 --max-new-tokens 3 --lr 1e-3 --sandbox-workers 2"

typedef struct {
    long step, group;
    double reward, adv;
    int passed, n_tokens;
} Row;

typedef struct { Row *r; int n, cap; } Rows;

static int row_cb(void *ctx, const RsExample *x) {
    Rows *rs = ctx;
    if (rs->n == rs->cap) { rs->cap = rs->cap ? rs->cap * 2 : 64; rs->r = cr_realloc(rs->r, sizeof(Row) * (size_t)rs->cap); }
    rs->r[rs->n++] = (Row){(long)x->step, (long)x->group_id, x->reward, x->advantage, x->passed, x->n_tokens};
    return 0;
}

/* Rollouts and one metric series of the latest run in DIR/run.db. */
static RunStore *open_run(const char *dir, int64_t *run) {
    char p[1024];
    snprintf(p, sizeof p, "%s/run.db", dir);
    CrError e;
    RunStore *rs = runstore_open_readonly(p, &e);
    if (rs) *run = runstore_latest_run(rs, &e);
    return rs;
}

static Rows load_rows(RunStore *rs, int64_t run) {
    Rows r = {0};
    CrError e;
    runstore_each_execution(rs, run, -1, -1, 0, row_cb, &r, &e);
    return r;
}

static int metric(RunStore *rs, int64_t run, const char *name, double *v, int max) {
    int64_t *st;
    double *val;
    int n;
    CrError e;
    if (runstore_metric_series(rs, run, name, &st, &val, &n, &e)) return -1;
    for (int i = 0; i < n && i < max; i++) v[i] = val[i];
    free(st);
    free(val);
    return n;
}

/* Rows [a, b) of one group: mean and Bessel std of the reward. */
static void group_stats(const Row *r, int a, int b, double *mean, double *sd) {
    double s = 0, q = 0;
    for (int i = a; i < b; i++) s += r[i].reward;
    *mean = s / (b - a);
    for (int i = a; i < b; i++) q += (r[i].reward - *mean) * (r[i].reward - *mean);
    *sd = b - a > 1 ? sqrt(q / (b - a - 1)) : 0;
}

static int group_end(const Rows *r, int a) {
    int b = a;
    while (b < r->n && r->r[b].group == r->r[a].group && r->r[b].step == r->r[a].step) b++;
    return b;
}

static int step_end(const Rows *r, int a) {
    int b = a;
    while (b < r->n && r->r[b].step == r->r[a].step) b++;
    return b;
}

static char *setup(void) {
    char *d = test_tmpdir();
    char tasks[1024];
    snprintf(tasks, sizeof tasks, "%s/tasks.jsonl", d);
    if (test_make_tiny_model(d, 5) || test_make_eos_happy(d) || test_write_comment_tasks(tasks, 6)) {
        free(d);
        return NULL;
    }
    return d;
}

static int grpo(const char *d, const char *out, const char *flags) {
    return test_run("%s grpo --model %s/model --tasks %s/tasks.jsonl --out %s/%s " BASE " %s 2>%s/%s.log",
                    test_crucible_bin(), d, d, d, out, flags, d, out);
}

static void check_loss_type(TestCtx *t_, const char *d, const char *name, const char *scale) {
    char flags[256], out[64];
    snprintf(out, sizeof out, "%s_%s", name, scale);
    snprintf(flags, sizeof flags, "--steps 2 --beta 0 --mu 1 --loss-type %s --scale-rewards %s", name, scale);
    CHECKF(grpo(d, out, flags) == 0, "grpo %s", flags);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", d, out);
    int64_t run;
    RunStore *rs = open_run(dir, &run);
    CHECK(rs != NULL);
    if (!rs) return;
    Rows r = load_rows(rs, run);
    double loss[4] = {0};
    CHECK(metric(rs, run, "loss", loss, 4) == 2);
    CHECK(r.n == 2 * 2 * 4);
    int nonzero = 0;
    for (int a = 0, s = 0; a < r.n && s < 2; a = step_end(&r, a), s++) {
        int b = step_end(&r, a);
        /* batch std over the step's completions (rewards as stored) */
        double bm, bsd;
        group_stats(r.r, a, b, &bm, &bsd);
        double sumA = 0, sumAL = 0, sumL = 0;
        for (int g0 = a; g0 < b; g0 = group_end(&r, g0)) {
            int g1 = group_end(&r, g0);
            double m, sd;
            group_stats(r.r, g0, g1, &m, &sd);
            for (int i = g0; i < g1; i++) {
                double want = sd == 0 ? 0
                              : !strcmp(scale, "group") ? (r.r[i].reward - m) / (sd + 1e-4)
                              : !strcmp(scale, "batch") ? (r.r[i].reward - m) / (bsd + 1e-4)
                                                         : r.r[i].reward - m;
                CHECKF(fabs(r.r[i].adv - want) <= 1e-5, "%s/%s step %ld: advantage %.7g, want %.7g", name, scale,
                       r.r[i].step, r.r[i].adv, want);
                nonzero += r.r[i].adv != 0;
                sumA += r.r[i].adv;
                sumAL += r.r[i].adv * r.r[i].n_tokens;
                sumL += r.r[i].n_tokens;
            }
        }
        double Bp = b - a, want_loss = !strcmp(name, "grpo") ? -sumA / Bp
                                      : !strcmp(name, "dr_grpo") ? -sumAL / (Bp * 3)
                                                                  : -sumAL / sumL;
        CHECKF(fabs(loss[s] - want_loss) <= 1e-5, "%s step %d: loss %.8g, want %.8g", name, s + 1, loss[s], want_loss);
    }
    CHECKF(nonzero > 0, "%s/%s: every advantage is 0: the check is vacuous", name, scale);
    CHECKF(strcmp(name, "grpo") == 0 || fabs(loss[0]) + fabs(loss[1]) > 1e-3,
           "%s: loss %g %g: too close to 0 for the check to mean anything", name, loss[0], loss[1]);
    free(r.r);
    runstore_close(rs);
}

TEST(grpo_options_loss_types_and_reward_scaling) {
    char *d = setup();
    CHECK(d != NULL);
    if (!d) return;
    check_loss_type(t_, d, "grpo", "group");
    check_loss_type(t_, d, "dapo", "batch");
    check_loss_type(t_, d, "dr_grpo", "none");
    check_loss_type(t_, d, "bnpo", "group");
    free(d);
}

TEST(grpo_options_dynamic_sampling) {
    char *d = setup();
    CHECK(d != NULL);
    if (!d) return;
    CHECK(grpo(d, "dyn", "--steps 3 --dynamic-sampling --seed 2") == 0);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/dyn", d);
    int64_t run;
    RunStore *rs = open_run(dir, &run);
    CHECK(rs != NULL);
    if (!rs) return;
    Rows r = load_rows(rs, run);
    double kept[3] = {0}, zfrac[3] = {0};
    CHECK(metric(rs, run, "groups_kept", kept, 3) == 3 && metric(rs, run, "zero_std_frac", zfrac, 3) == 3);
    int dropped_total = 0, s = 0;
    for (int a = 0; a < r.n && s < 3; a = step_end(&r, a), s++) {
        int b = step_end(&r, a), groups = 0, nonconst = 0;
        for (int g0 = a; g0 < b; g0 = group_end(&r, g0)) {
            int g1 = group_end(&r, g0);
            double m, sd;
            group_stats(r.r, g0, g1, &m, &sd);
            groups++;
            nonconst += sd > 0;
            for (int i = g0; i < g1 && sd == 0; i++) CHECKF(r.r[i].adv == 0, "dropped group with A = %g", r.r[i].adv);
        }
        CHECKF(kept[s] == nonconst && nonconst <= 2, "step %d: groups_kept %g, non-constant groups %d", s + 1, kept[s], nonconst);
        CHECK_NEAR(zfrac[s], (double)(groups - nonconst) / groups, 1e-9);
        /* every drawn group is kept or dropped; fewer than B kept only after 4 rounds,
         * each of which dropped at least one group */
        CHECKF(nonconst == 2 || groups - nonconst >= 4, "step %d: %d groups drawn, %d kept", s + 1, groups, nonconst);
        dropped_total += groups - nonconst;
    }
    CHECKF(dropped_total > 0, "no group was dropped in 3 steps: the check is vacuous (change the seed)");
    free(r.r);
    runstore_close(rs);
    /* without the flag every group is kept */
    CHECK(grpo(d, "nodyn", "--steps 1 --seed 2") == 0);
    snprintf(dir, sizeof dir, "%s/nodyn", d);
    rs = open_run(dir, &run);
    CHECK(rs != NULL);
    if (rs) {
        CHECK(metric(rs, run, "groups_kept", kept, 1) == 1 && kept[0] == 2);
        runstore_close(rs);
    }
    free(d);
}

static double overlong(int len, int lmax, int cache) {
    if (len <= lmax - cache) return 0;
    if (len <= lmax) return (double)((lmax - cache) - len) / cache;
    return -1;
}

TEST(grpo_options_overlong_shaping_and_mask) {
    char *d = setup();
    CHECK(d != NULL);
    if (!d) return;
    CHECK(grpo(d, "olb", "--steps 2 --overlong-buffer 2") == 0);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/olb", d);
    int64_t run;
    RunStore *rs = open_run(dir, &run);
    CHECK(rs != NULL);
    if (!rs) return;
    Rows r = load_rows(rs, run);
    double olm[2] = {0}, ols[2] = {0};
    CHECK(metric(rs, run, "reward_overlong_mean", olm, 2) == 2 && metric(rs, run, "reward_overlong_std", ols, 2) == 2);
    int s = 0;
    for (int a = 0; a < r.n && s < 2; a = step_end(&r, a), s++) {
        int b = step_end(&r, a);
        double sum = 0, sq = 0;
        for (int i = a; i < b; i++) {
            double pen = overlong(r.r[i].n_tokens, 3, 2);
            sum += pen;
            sq += pen * pen;
            CHECKF(fabs(r.r[i].reward - (r.r[i].passed + pen)) < 1e-6, "reward %g = passed %d + overlong %g?",
                   r.r[i].reward, r.r[i].passed, pen);
        }
        CHECK_NEAR(olm[s], sum / (b - a), 1e-6);
        double m = sum / (b - a);
        CHECK_NEAR(ols[s], sqrt(fmax(0, (sq - (b - a) * m * m) / (b - a - 1))), 1e-6);
    }
    free(r.r);
    runstore_close(rs);
    CHECK(grpo(d, "olm", "--steps 2 --overlong-mask") == 0);
    snprintf(dir, sizeof dir, "%s/olm", d);
    rs = open_run(dir, &run);
    CHECK(rs != NULL);
    if (!rs) return;
    double masked[2] = {0}, trunc[2] = {0};
    CHECK(metric(rs, run, "overlong_masked", masked, 2) == 2 && metric(rs, run, "truncated_frac", trunc, 2) == 2);
    for (int i = 0; i < 2; i++) CHECKF(masked[i] == trunc[i] * 8, "masked %g, truncated %g", masked[i], trunc[i] * 8);
    CHECKF(masked[0] + masked[1] > 0, "no truncated completion: the check is vacuous");
    runstore_close(rs);
    free(d);
}

TEST(grpo_options_reference_reset) {
    char *d = setup();
    CHECK(d != NULL);
    if (!d) return;
    CHECK(grpo(d, "reset", "--steps 3 --beta 0.1 --ref-reset-every 1") == 0);
    CHECK(grpo(d, "noreset", "--steps 3 --beta 0.1") == 0);
    char dir[1024];
    double kl[3] = {0};
    int64_t run;
    snprintf(dir, sizeof dir, "%s/reset", d);
    RunStore *rs = open_run(dir, &run);
    CHECK(rs && metric(rs, run, "kl_mean", kl, 3) == 3);
    for (int i = 0; i < 3; i++) CHECKF(kl[i] == 0, "reset every step: kl at step %d = %g", i + 1, kl[i]);
    runstore_close(rs);
    snprintf(dir, sizeof dir, "%s/noreset", d);
    rs = open_run(dir, &run);
    CHECK(rs && metric(rs, run, "kl_mean", kl, 3) == 3);
    CHECKF(kl[0] == 0 && kl[1] > 0 && kl[2] > 0, "no reset: kl %g %g %g", kl[0], kl[1], kl[2]);
    runstore_close(rs);
    free(d);
}

TEST(grpo_options_reward_model_reward) {
    char *d = setup();
    CHECK(d != NULL);
    if (!d) return;
    CHECK(grpo(d, "src", "--steps 3 --group 6 --prompts-per-step 3") == 0);
    CHECK(test_run("%s rm train --db %s/src/run.db --model %s/model --out %s/rm --epochs 1 --holdout 0.3 >%s/rm.json 2>%s/rm.log",
                   test_crucible_bin(), d, d, d, d, d) == 0);
    /* without --rm it is a usage error */
    CHECK(grpo(d, "norm", "--steps 1 --reward rm") == 1);
    char flags[1024];
    snprintf(flags, sizeof flags, "--steps 2 --reward tests,rm --rm %s/rm", d);
    CHECK(grpo(d, "withrm", flags) == 0);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/withrm", d);
    int64_t run;
    RunStore *rs = open_run(dir, &run);
    CHECK(rs != NULL);
    if (!rs) return;
    double rmm[2] = {0, 0};
    CHECK(metric(rs, run, "reward_rm_mean", rmm, 2) == 2);
    Rows r = load_rows(rs, run);
    CHECK(r.n == 16);
    double lo = 1, hi = 0;
    for (int i = 0; i < r.n; i++) {
        double p = r.r[i].reward - r.r[i].passed;   /* reward = tests + P(pass) */
        CHECKF(p > 0 && p < 1, "rm part %g", p);
        lo = fmin(lo, p);
        hi = fmax(hi, p);
    }
    CHECKF(hi > lo, "the reward model gave every completion the same score %g", lo);
    CHECK(rmm[0] > 0 && rmm[0] < 1);
    free(r.r);
    runstore_close(rs);
    free(d);
}

TEST(grpo_options_reward_combine_normalize) {
    char *d = setup();
    CHECK(d != NULL);
    if (!d) return;
    CHECK(grpo(d, "bad", "--steps 1 --reward-combine sometimes") == 1);
    /* a task path with a quote and a backslash is recorded (escaped) in the provenance */
    CHECK(test_run("cp %s/tasks.jsonl '%s/ta\"s\\ks.jsonl' && %s grpo --model %s/model --tasks '%s/ta\"s\\ks.jsonl' "
                   "--out %s/quoted --steps 1 --group 2 --prompts-per-step 1 --max-new-tokens 2 2>/dev/null",
                   d, d, test_crucible_bin(), d, d, d) == 0);
    /* normalize: each function z-scored per group, the sum standardised over the batch:
     * the step's advantages have mean 0 and (Bessel) std 1 unless all are 0 */
    CHECK(grpo(d, "norm", "--steps 2 --reward tests,overlong --overlong-buffer 2 --reward-combine normalize") == 0);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/norm", d);
    int64_t run;
    RunStore *rs = open_run(dir, &run);
    CHECK(rs != NULL);
    if (!rs) return;
    Rows r = load_rows(rs, run);
    int checked = 0;
    for (int a = 0; a < r.n; a = step_end(&r, a)) {
        int b = step_end(&r, a);
        double s = 0, q = 0;
        int nz = 0;
        for (int i = a; i < b; i++) { s += r.r[i].adv; nz += r.r[i].adv != 0; }
        double m = s / (b - a);
        for (int i = a; i < b; i++) q += (r.r[i].adv - m) * (r.r[i].adv - m);
        if (!nz) continue;
        double sd = sqrt(q / (b - a - 1));
        CHECKF(fabs(m) < 1e-5 && fabs(sd - 1) < 1e-3, "step %ld: advantages mean %g std %g",
               r.r[a].step, m, sd);
        checked++;
    }
    CHECKF(checked > 0, "every advantage was 0: nothing checked");
    free(r.r);
    runstore_close(rs);
    free(d);
}

TEST(grpo_options_micro_batches_equal_one_batch) {
    char *d = setup();
    CHECK(d != NULL);
    if (!d) return;
    /* --batch-tokens 85 packs 3, 3 and 2 completions per micro-batch, the default all 8 in one:
     * the step's loss and gradient (norm) must not depend on it (global normalisers,
     * aux weight by sequence share), with mu = 2 (old log-probs) and beta > 0 */
    const char *types[3] = {"grpo", "dapo", "dr_grpo"};
    for (int k = 0; k < 3; k++) {
        char fa[256], fb[256], oa[64], ob[64];
        snprintf(fa, sizeof fa, "--steps 2 --mu 2 --beta 0.05 --loss-type %s", types[k]);
        snprintf(fb, sizeof fb, "%s --batch-tokens 85", fa);
        snprintf(oa, sizeof oa, "one_%s", types[k]);
        snprintf(ob, sizeof ob, "many_%s", types[k]);
        CHECK(grpo(d, oa, fa) == 0 && grpo(d, ob, fb) == 0);
        const char *names[4] = {"loss", "grad_norm", "kl_mean", "aux_loss"};
        for (int q = 0; q < 4; q++) {
            double va[2] = {0}, vb[2] = {0};
            char da[1024], db[1024];
            snprintf(da, sizeof da, "%s/%s", d, oa);
            snprintf(db, sizeof db, "%s/%s", d, ob);
            int64_t ra, rb;
            RunStore *sa = open_run(da, &ra), *sb = open_run(db, &rb);
            CHECK(sa && sb && metric(sa, ra, names[q], va, 2) == 2 && metric(sb, rb, names[q], vb, 2) == 2);
            /* step 1 exactly the same samples; step 2 after (nearly) the same update */
            CHECKF(fabs(va[0] - vb[0]) <= 1e-5 * fmax(1e-3, fabs(va[0])), "%s %s step 1: one batch %.9g, micro-batches %.9g",
                   types[k], names[q], va[0], vb[0]);
            runstore_close(sa);
            runstore_close(sb);
        }
    }
    free(d);
}

/* --beta1 / --beta2 reach AdamW: after one step from zero moments, exp_avg = (1 - beta1) g
 * and exp_avg_sq = (1 - beta2) g^2, so against the defaults (0.9, 0.99) on the same samples
 * (same seed, so the same gradient) every moment's ratio is (1 - b)/(1 - b_default). */
TEST(grpo_options_adamw_betas) {
    char *d = setup();
    CHECK(d != NULL);
    if (!d) return;
    CHECK(grpo(d, "betas_default", "--steps 1 --beta 0") == 0);
    CHECK(grpo(d, "betas_custom", "--steps 1 --beta 0 --beta1 0.5 --beta2 0.6") == 0);
    char pa[1024], pb[1024];
    snprintf(pa, sizeof pa, "%s/betas_default/final/optimizer.safetensors", d);
    snprintf(pb, sizeof pb, "%s/betas_custom/final/optimizer.safetensors", d);
    CrError e = {0};
    SafeTensors *sa = st_open(pa, &e), *sb = st_open(pb, &e);
    CHECKF(sa && sb, "%s", e.msg);
    if (sa && sb) {
        const char *b1 = st_metadata(sb, "beta1"), *b2 = st_metadata(sb, "beta2");
        CHECKF(b1 && fabs(atof(b1) - 0.5) < 1e-6 && b2 && fabs(atof(b2) - 0.6) < 1e-6, "metadata beta1 %s beta2 %s",
               b1 ? b1 : "-", b2 ? b2 : "-");
        long checked = 0, bad = 0;
        for (int i = 0; i < st_count(sa); i++) {
            const StTensor *ta = st_at(sa, i), *tb = st_find(sb, ta->name);
            CHECKF(tb != NULL, "%s missing in the custom run", ta->name);
            if (!tb) continue;
            int sq = strncmp(ta->name, "exp_avg_sq.", 11) == 0;
            double want = sq ? (1 - 0.6) / (1 - 0.99) : (1 - 0.5) / (1 - 0.9);
            size_t n = st_numel(ta->ndim, ta->shape);
            float *a = cr_malloc(sizeof(float) * n), *b = cr_malloc(sizeof(float) * n);
            if (st_read_f32(ta, a, n, &e) == 0 && st_read_f32(tb, b, n, &e) == 0)
                for (size_t k = 0; k < n; k++) {
                    if (fabsf(a[k]) < 1e-20f) continue;  /* no gradient there */
                    checked++;
                    bad += fabs(b[k] / a[k] - want) > 1e-4 * want;
                }
            free(a);
            free(b);
        }
        CHECKF(checked > 1000 && bad == 0, "%ld of %ld moments off the (1 - beta) ratio", bad, checked);
    }
    if (sa) st_close(sa);
    if (sb) st_close(sb);
    /* out of range: an error naming the flags, nothing written */
    CHECK(grpo(d, "betas_bad", "--steps 1 --beta 0 --beta2 1") != 0);
    char log[1024];
    snprintf(log, sizeof log, "%s/betas_bad.log", d);
    char *txt = cr_read_file(log, NULL, NULL);
    CHECKF(txt && strstr(txt, "--beta2"), "stderr: %s", txt ? txt : "(none)");
    free(txt);
    free(d);
}
