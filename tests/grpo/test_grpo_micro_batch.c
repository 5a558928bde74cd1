/* tests/grpo/test_grpo_micro_batch.c — the GRPO training batch: targets and mask cover
 * exactly the completion tokens (final EOS included) and no prompt token; completions
 * are never split; empty completions are skipped without shifting the advantages; and
 * splitting a step into micro-batches gives the same loss and dL/dlogp per token as one
 * big batch for grpo / dapo / dr_grpo (global normalisers). */
#include "tests/test.h"
#include "core/rng.h"
#include "grpo/micro_batch.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EOS 99

TEST(grpo_micro_targets_cover_exactly_the_completion) {
    int32_t p0[3] = {1, 2, 3}, c0[3] = {10, 11, EOS};
    int32_t p1[2] = {1, 4}, c1[1] = {EOS};
    int32_t p2[4] = {1, 5, 6, 7}, c2[4] = {12, 13, 14, 15};   /* truncated, overlong-masked */
    int32_t c3[1] = {0};
    GrpoSeq seqs[5] = {
        {p0, 3, c0, 3, 0.5f, 0},
        {p1, 2, c3, 0, 9.0f, 0},   /* nothing generated: skipped */
        {p1, 2, c1, 1, -1.0f, 0},
        {p2, 4, c2, 4, 2.0f, 1},
        {p0, 3, c0, 3, 0.25f, 0},
    };
    GrpoMicro *mb;
    int n = grpo_build_micros(seqs, 5, 9, &mb);
    /* lengths 6, 3 | 8 | 6 with at most 9 tokens each */
    CHECK(n == 3);
    if (FAILED()) return;
    CHECK(mb[0].n_comp == 2 && mb[0].b.n_tokens == 9 && mb[0].b.n_seqs == 2);
    CHECK(mb[0].cu[0] == 0 && mb[0].cu[1] == 6 && mb[0].cu[2] == 9);
    CHECK(mb[1].n_comp == 1 && mb[1].b.n_tokens == 8);
    CHECK(mb[2].n_comp == 1 && mb[2].b.n_tokens == 6);
    int32_t want_t0[9] = {-1, -1, 10, 11, EOS, -1, -1, EOS, -1};
    float want_m0[9] = {0, 0, 1, 1, 1, 0, 0, 1, 0};
    int want_c0[9] = {0, 0, 0, 0, 0, 0, 1, 1, 1};
    for (int t = 0; t < 9; t++) {
        CHECKF(mb[0].targets[t] == want_t0[t], "t=%d target %d want %d", t, mb[0].targets[t], want_t0[t]);
        CHECKF(mb[0].mask[t] == want_m0[t], "t=%d mask %g", t, mb[0].mask[t]);
        CHECKF(mb[0].comp[t] == want_c0[t], "t=%d comp %d", t, mb[0].comp[t]);
    }
    int32_t want_x0[9] = {1, 2, 3, 10, 11, EOS, 1, 4, EOS};
    CHECK(memcmp(mb[0].tokens, want_x0, sizeof want_x0) == 0);
    /* the skipped empty completion did not shift the advantages */
    CHECK(mb[0].adv[0] == 0.5f && mb[0].adv[1] == -1.0f && mb[1].adv[0] == 2.0f && mb[2].adv[0] == 0.25f);
    /* the masked completion: targets still name its tokens (logp is computed), mask 0 */
    int32_t want_t1[8] = {-1, -1, -1, 12, 13, 14, 15, -1};
    for (int t = 0; t < 8; t++) {
        CHECKF(mb[1].targets[t] == want_t1[t], "masked t=%d target %d", t, mb[1].targets[t]);
        CHECK(mb[1].mask[t] == 0.0f);
    }
    /* every unmasked completion's tokens are targets exactly once, in order */
    int32_t seen[16];
    int ns = 0;
    for (int b = 0; b < n; b++)
        for (int t = 0; t < mb[b].b.n_tokens; t++)
            if (mb[b].mask[t] > 0) seen[ns++] = mb[b].targets[t];
    int32_t want_seen[7] = {10, 11, EOS, EOS, 10, 11, EOS};
    CHECK(ns == 7 && memcmp(seen, want_seen, sizeof want_seen) == 0);
    GrpoNorm nm = grpo_micro_norm(mb, n, 4);
    CHECK(nm.n_completions == 4 && nm.n_tokens == 7 && nm.n_micro == 3 && nm.max_new_tokens == 4);
    CHECK_NEAR(grpo_micro_aux_weight(mb, n, 0, 1), 0.5, 1e-7);
    CHECK_NEAR(grpo_micro_aux_weight(mb, n, 1, 1), 0.25, 1e-7);
    CHECK_NEAR(grpo_micro_aux_weight(mb, n, 2, 0), 1.0 / 3, 1e-7);
    grpo_micro_free(mb, n);
    /* one sequence longer than batch_tokens still gets its own micro-batch; none usable -> 0 */
    n = grpo_build_micros(seqs + 3, 1, 2, &mb);
    CHECK(n == 1 && mb[0].b.n_tokens == 8);
    grpo_micro_free(mb, n);
    n = grpo_build_micros(seqs + 1, 1, 64, &mb);
    CHECK(n == 0 && mb == NULL);
}

/* Loss and dL/dlogp of the step with the sequences packed at batch_tokens. */
static double step_loss(const GrpoLossConfig *cfg, const GrpoSeq *seqs, int n, long bt, const float *logp_all,
                        const float *old_all, const float *ref_all, float *dl_all, int *n_micro) {
    GrpoMicro *mb;
    int nm = grpo_build_micros(seqs, n, bt, &mb);
    GrpoNorm norm = grpo_micro_norm(mb, nm, 8);
    double loss = 0;
    long off = 0;
    CrError e;
    for (int b = 0; b < nm; b++) {
        long N = mb[b].b.n_tokens;
        GrpoMicroBatch g = {N, mb[b].n_comp, mb[b].comp, mb[b].adv, logp_all + off, old_all + off, ref_all + off,
                            NULL, mb[b].mask};
        GrpoLossStats st;
        if (grpo_loss(cfg, &norm, &g, dl_all + off, &st, &e)) { loss = NAN; break; }
        loss += st.loss;
        off += N;
    }
    *n_micro = nm;
    grpo_micro_free(mb, nm);
    return loss;
}

TEST(grpo_micro_split_equals_one_batch) {
    enum { NS = 7 };
    int32_t prompt[5] = {1, 2, 3, 4, 5}, comp[8] = {6, 7, 8, 9, 10, 11, 12, EOS};
    GrpoSeq seqs[NS];
    CrRng r;
    cr_rng_init(&r, 5, 0, 0);
    long total = 0;
    for (int i = 0; i < NS; i++) {
        seqs[i] = (GrpoSeq){prompt, 2 + i % 3, comp + i % 4, 8 - i % 4, (float)(cr_rng_uniform(&r) * 2 - 1), i == 4};
        total += seqs[i].P + seqs[i].L;
    }
    float *lp = malloc(sizeof(float) * (size_t)total), *old = malloc(sizeof(float) * (size_t)total);
    float *ref = malloc(sizeof(float) * (size_t)total);
    float *d1 = calloc((size_t)total, sizeof(float)), *d2 = calloc((size_t)total, sizeof(float));
    for (long t = 0; t < total; t++) {
        lp[t] = (float)(-0.1 - 2 * cr_rng_uniform(&r));
        old[t] = lp[t] + (float)(0.6 * cr_rng_uniform(&r) - 0.3);   /* some ratios clip */
        ref[t] = lp[t] + (float)(0.4 * cr_rng_uniform(&r) - 0.2);
    }
    const GrpoLossType types[3] = {GRPO_LOSS_GRPO, GRPO_LOSS_DAPO, GRPO_LOSS_DR_GRPO};
    for (int k = 0; k < 3; k++) {
        GrpoLossConfig cfg = grpo_loss_config_default();
        cfg.type = types[k];
        cfg.beta = 0.05;
        int n1, n2;
        double l1 = step_loss(&cfg, seqs, NS, 1 << 20, lp, old, ref, d1, &n1);
        double l2 = step_loss(&cfg, seqs, NS, 14, lp, old, ref, d2, &n2);
        CHECK(n1 == 1 && n2 >= 4);
        CHECKF(isfinite(l1) && fabs(l1 - l2) <= 1e-6 * fmax(1, fabs(l1)), "%s: one batch %.9g, split %.9g",
               grpo_loss_type_name(types[k]), l1, l2);
        double md = 0;
        for (long t = 0; t < total; t++) md = fmax(md, fabs((double)d1[t] - d2[t]));
        CHECKF(md <= 1e-7, "%s: dlogp differs by %g", grpo_loss_type_name(types[k]), md);
    }
    free(lp); free(old); free(ref); free(d1); free(d2);
}
