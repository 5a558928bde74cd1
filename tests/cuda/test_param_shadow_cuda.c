/* tests/cuda/test_param_shadow_cuda.c — the bf16 parameter shadows of the bf16 table
 * (Ops.declare_params, CRUCIBLE_CUDA_BF16_WEIGHTS; model/cuda/param_shadow.cu) on a GPU,
 * against the CPU backend on fresh random inputs (seed printed; CRUCIBLE_TEST_SEED=n
 * repeats one):
 *  - cuda_param_shadow_gemm: ops_cuda_bf16()->gemm with a declared weight operand, the
 *    size rule on (=1, Lite-sized shapes, all four transposes, padded strides, weight as B
 *    and as A) within 1e-2 normalised error of ops_cpu()->gemm, each call counted as a
 *    shadow GEMM; unset: not routed. Then (=all, small shapes) each op that can write the
 *    declared range (upload, copy, copy2d, zero, add, scale, adamw_update, a GEMM's C)
 *    changes it on the device and the host alike: the next GEMM refreshes the shadow
 *    exactly once and matches the CPU on the changed weights; a freed range is forgotten.
 *  - cuda_param_shadow_sft_step: a tiny model, =all: forward, backward, AdamW (lr 1e-2),
 *    second forward. The first forward's log-probs within 1e-2 of the CPU step; the
 *    parameters after the step within 2e-2 (normalised) and no element further than
 *    2.2 lr from the CPU's: AdamW's first step moves every element by about lr (here half
 *    the init scale) in the sign of its gradient, so a near-zero gradient whose sign bf16
 *    flips costs that element 2 lr — 4 seeds on the H100 (2026-11-23) gave 0.0069 to
 *    0.0108 normalised, the old 1e-2 bound failed one —; a wrong update would break the
 *    element bound. The second forward's log-probs within 1e-2 of a CPU
 *    forward on the GPU's own post-step parameters (so AdamW's sign flips of near-zero
 *    gradients, which bound the step's own agreement, do not enter); exactly two
 *    refreshes (first forward, after the step): the second forward reads the refreshed
 *    shadow (a stale one would miss by the step's change of the log-probs, ~0.5 on the
 *    CPU, checked to be > 2e-2).
 * Without a GPU both SKIP: not run on a GPU. */
#include "tests/test.h"

#ifdef CRUCIBLE_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "model/adamw.h"
#include "model/cuda/ops_cuda.h"
#include "model/model.h"
#include "model/ops.h"
#include "tests/cuda/buffers.h"
#include "tests/model/model_tiny.h"

static long shadow_gemms(void) {
    long g = 0;
    ops_cuda_param_shadow_counts(NULL, &g);
    return g;
}
static long shadow_refreshes(void) {
    long r = 0;
    ops_cuda_param_shadow_counts(&r, NULL);
    return r;
}

/* C = op(A) op(B) on the GPU (device weight dW, host copy hW, activation act) and the CPU;
 * normalised error of C returned. The weight is B (wb = 1) or A. */
static double gemm_vs_cpu(int ta, int tb, int M, int N, int K, const float *hW, const float *dW, int ldw, const float *act,
                          int ldact, int wb) {
    const Ops *g = ops_cuda_bf16(), *c = ops_cpu();
    int arows = ta ? K : M, brows = tb ? N : K;
    size_t nact = (size_t)(wb ? arows : brows) * ldact;
    float *dact = test_dput(g, act, sizeof(float) * nact);
    float *C = cr_calloc((size_t)M * N, sizeof(float)), *Cg = cr_malloc(sizeof(float) * (size_t)M * N);
    float *dC = g->alloc(sizeof(float) * (size_t)M * N);
    if (wb) {
        c->gemm(ta, tb, M, N, K, 1.0f, act, ldact, hW, ldw, 0.0f, C, N);
        g->gemm(ta, tb, M, N, K, 1.0f, dact, ldact, dW, ldw, 0.0f, dC, N);
    } else {
        c->gemm(ta, tb, M, N, K, 1.0f, hW, ldw, act, ldact, 0.0f, C, N);
        g->gemm(ta, tb, M, N, K, 1.0f, dW, ldw, dact, ldact, 0.0f, dC, N);
    }
    g->download(Cg, dC, sizeof(float) * (size_t)M * N);
    double e = test_rel_err(Cg, C, (size_t)M * N);
    g->free(dact), g->free(dC);
    free(C), free(Cg);
    (void)arows, (void)brows;
    return e;
}

static void body_gemm(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: bf16 parameter shadow GEMMs NOT run on a GPU");
    uint64_t seed = test_random_seed("cuda_param_shadow_gemm");
    CrRng r;
    cr_rng_init(&r, seed, 0x5AD, 0);
    const Ops *g = ops_cuda_bf16(), *c = ops_cpu();
    /* Lite-sized: M tokens, N outputs, K inputs, M N K = 2^31 and weight dims >= 1024 */
    const int M = 1024, N = 2048, K = 1024, pad = 8;
    size_t nw = (size_t)N * (K + pad) + 4096;
    float *hW = test_hrand(&r, nw, 0.05f), *dW = test_dput(g, hW, sizeof(float) * nw);
    g->declare_params(dW, nw);
    float *act = test_hrand(&r, (size_t)2048 * (2048 + 4), 1.0f);
    setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", "1", 1);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            int ldw = (tb ? K : N) + pad, ldact = (ta ? M : K) + 4;
            long g0 = shadow_gemms();
            double e = gemm_vs_cpu(ta, tb, M, N, K, hW + 512, dW + 512, ldw, act, ldact, 1);
            fprintf(stderr, "    weight as B, ta %d tb %d: err %.3g\n", ta, tb, e);
            CHECKF(e <= 1e-2, "ta %d tb %d: normalised error %.3g > 1e-2", ta, tb, e);
            CHECKF(shadow_gemms() == g0 + 1, "ta %d tb %d: not routed through the shadow", ta, tb);
        }
    /* the weight as A: C [N, M] = W [N, K] x act [K, M] */
    long g0 = shadow_gemms();
    double e = gemm_vs_cpu(0, 0, N, M, K, hW, dW, K + pad, act, M + 4, 0);
    CHECKF(e <= 1e-2 && shadow_gemms() == g0 + 1, "weight as A: err %.3g, routed %ld", e, shadow_gemms() - g0);
    unsetenv("CRUCIBLE_CUDA_BF16_WEIGHTS");
    g0 = shadow_gemms();
    e = gemm_vs_cpu(0, 1, M, N, K, hW, dW, K + pad, act, K, 1);
    CHECKF(e <= 1e-2 && shadow_gemms() == g0, "unset: err %.3g, routed %ld (want 0)", e, shadow_gemms() - g0);
    g->free(dW);
    free(hW), free(act);

    /* Every writing op marks the range: small shapes, every GEMM routed (=all). */
    setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", "all", 1);
    const int m = 48, n = 96, k = 80;
    size_t nv = (size_t)n * k;
    hW = test_hrand(&r, nv, 0.1f);
    dW = test_dput(g, hW, sizeof(float) * nv);
    g->declare_params(dW, nv);
    act = test_hrand(&r, (size_t)m * k, 1.0f);
    float *x = test_hrand(&r, nv, 0.1f), *dx = test_dput(g, x, sizeof(float) * nv);
    float *gm = test_hrand(&r, nv, 0.1f), *mm = test_hrand(&r, nv, 0.01f), *vv = test_hrand(&r, nv, 0.0f);
    for (size_t i = 0; i < nv; i++) vv[i] = 1e-4f + fabsf(gm[i]) * 0.1f;
    float *dg = test_dput(g, gm, sizeof(float) * nv), *dm = test_dput(g, mm, sizeof(float) * nv), *dv = test_dput(g, vv, sizeof(float) * nv);
    float *a8 = test_hrand(&r, 8 * 16, 1.0f), *b16 = test_hrand(&r, (size_t)k * 16, 0.1f);
    float *da8 = test_dput(g, a8, sizeof(float) * 8 * 16), *db16 = test_dput(g, b16, sizeof(float) * (size_t)k * 16);
    const char *names[] = {"upload", "copy", "copy2d", "zero", "add", "scale", "adamw_update", "gemm C"};
    (void)gemm_vs_cpu(0, 1, m, n, k, hW, dW, k, act, k, 1);  /* shadow built and clean */
    for (int op = 0; op < 8; op++) {
        switch (op) {
        case 0:
            for (size_t i = 0; i < nv / 2; i++) hW[i] = x[i];
            g->upload(dW, x, sizeof(float) * (nv / 2));
            break;
        case 1:
            memcpy(hW + 1000, x + 7, sizeof(float) * 3000);
            g->copy(dW + 1000, dx + 7, sizeof(float) * 3000);
            break;
        case 2:
            c->copy2d(hW + 5 * k + 3, k, x, 20, 10, 20);
            g->copy2d(dW + 5 * k + 3, k, dx, 20, 10, 20);
            break;
        case 3:
            memset(hW + 2 * k, 0, sizeof(float) * 4 * k);
            g->zero(dW + 2 * k, sizeof(float) * 4 * k);
            break;
        case 4:
            c->add(hW, x, nv);
            g->add(dW, dx, nv);
            break;
        case 5:
            c->scale(hW + 333, -1.5f, nv - 333);
            g->scale(dW + 333, -1.5f, nv - 333);
            break;
        case 6:
            c->adamw_update(0.9f, 0.95f, 1e-8f, 0.1f, 1, 1e-2f, 1, hW, gm, mm, vv, nv);
            g->adamw_update(0.9f, 0.95f, 1e-8f, 0.1f, 1, 1e-2f, 1, dW, dg, dm, dv, nv);
            break;
        case 7: /* rows 8.. of W [n, k] as a GEMM's C (operands not declared) */
            c->gemm(0, 1, 8, k, 16, 1.0f, a8, 16, b16, 16, 0.0f, hW + 8 * k, k);
            g->gemm(0, 1, 8, k, 16, 1.0f, da8, 16, db16, 16, 0.0f, dW + 8 * k, k);
            break;
        }
        /* the device weights equal the host's (so the GEMM check below tests the shadow) */
        float *back = cr_malloc(sizeof(float) * nv);
        g->download(back, dW, sizeof(float) * nv);
        double ew = test_rel_err(back, hW, nv);
        free(back);
        long r0 = shadow_refreshes();
        double eg = gemm_vs_cpu(0, 1, m, n, k, hW, dW, k, act, k, 1);
        long dr = shadow_refreshes() - r0;
        fprintf(stderr, "    after %-13s weights err %.3g, GEMM err %.3g, refreshes %ld\n", names[op], ew, eg, dr);
        CHECKF(ew <= 1e-2, "%s: device weights differ from the host's (%.3g)", names[op], ew);
        CHECKF(eg <= 1e-2, "%s: GEMM on the written weights err %.3g > 1e-2 (stale shadow?)", names[op], eg);
        CHECKF(dr == 1, "%s: %ld refreshes, want exactly 1", names[op], dr);
        r0 = shadow_refreshes();
        (void)gemm_vs_cpu(0, 1, m, n, k, hW, dW, k, act, k, 1);
        CHECKF(shadow_refreshes() == r0, "%s: a second GEMM refreshed again", names[op]);
    }
    g->free(dW);  /* forgotten: a new buffer (maybe at the same address) is not declared */
    float *dW2 = test_dput(g, hW, sizeof(float) * nv);
    long g1 = shadow_gemms();
    e = gemm_vs_cpu(0, 1, m, n, k, hW, dW2, k, act, k, 1);
    CHECKF(e <= 1e-2 && shadow_gemms() == g1, "freed range still routed (%ld), err %.3g", shadow_gemms() - g1, e);
    unsetenv("CRUCIBLE_CUDA_BF16_WEIGHTS");
    void *dbufs[] = {dW2, dx, dg, dm, dv, da8, db16};
    for (size_t i = 0; i < sizeof dbufs / sizeof *dbufs; i++) g->free(dbufs[i]);
    void *hbufs[] = {hW, act, x, gm, mm, vv, a8, b16};
    for (size_t i = 0; i < sizeof hbufs / sizeof *hbufs; i++) free(hbufs[i]);
}

static const TinyOpts k_opts = {.q_lora = 12, .n_shared = 1, .aux_alpha = 0.01f, .seq_aux = 1};
static const AdamWConfig k_adam = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};

/* forward, backward (dlogp = -1/T), AdamW at lr 1e-2, forward: logp1, logp2, params. */
static int sft_twice(const Ops *ops, const Batch *b, float *logp1, float *logp2, float **params, size_t *np, CrError *e) {
    ModelConfig cfg;
    if (tiny_config(&cfg, k_opts)) CR_DIE("tiny config");
    Model *m = model_create_ops(&cfg, ops, e);
    if (!m) return -1;
    model_init_random(m, 31);
    AdamW opt;
    int rc = adamw_init(&opt, m, k_adam, e);
    if (rc) {
        model_free(m);
        return rc;
    }
    int N = b->n_tokens, T = 0;
    for (int t = 0; t < N; t++) T += b->targets[t] >= 0;
    float *dlogp = cr_malloc(sizeof(float) * (size_t)N), aux = 0;
    for (int t = 0; t < N; t++) dlogp[t] = b->targets[t] >= 0 ? -1.0f / (float)T : 0.0f;
    model_zero_grads(m);
    rc = model_forward(m, b, logp1, &aux, e);
    if (!rc) rc = model_backward(m, b, dlogp, 1.0f, e);
    if (!rc) {
        adamw_step(&opt, m, k_adam.lr);
        rc = model_forward(m, b, logp2, &aux, e);
    }
    if (!rc) {
        *np = m->n_params;
        *params = cr_malloc(sizeof(float) * m->n_params);
        ops->download(*params, m->params, sizeof(float) * m->n_params);
    }
    free(dlogp);
    adamw_free(&opt);
    model_free(m);
    return rc;
}

static void body_sft(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: SFT step on bf16 parameter shadows NOT run on a GPU");
    uint64_t seed = test_random_seed("cuda_param_shadow_sft_step");
    CrRng r;
    cr_rng_init(&r, seed, 0x5F8, 0);
    ModelConfig cfg;
    if (tiny_config(&cfg, k_opts)) CR_DIE("tiny config");
    enum { N = 49 };
    int32_t cu[4] = {0, 17, 26, 49}, tok[N], tgt[N];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(cr_rng_u64(&r) % (uint64_t)cfg.vocab_size);
    for (int s = 0; s < 3; s++)
        for (int i = cu[s]; i < cu[s + 1]; i++) tgt[i] = i + 1 < cu[s + 1] && i > cu[s] + 2 ? tok[i + 1] : -1;
    Batch b = {.n_tokens = N, .n_seqs = 3, .tokens = tok, .targets = tgt, .cu_seqlens = cu};
    float c1[N], c2[N], g1[N], g2[N], *pc = NULL, *pg = NULL;
    size_t nc = 0, ng = 0;
    CrError e;
    CHECKF(sft_twice(ops_cpu(), &b, c1, c2, &pc, &nc, &e) == 0, "cpu: %s", e.msg);
    setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", "all", 1);
    long r0 = shadow_refreshes(), gm0 = shadow_gemms();
    int rc = sft_twice(ops_cuda_bf16(), &b, g1, g2, &pg, &ng, &e);
    long dr = shadow_refreshes() - r0, dgm = shadow_gemms() - gm0;
    unsetenv("CRUCIBLE_CUDA_BF16_WEIGHTS");
    CHECKF(rc == 0, "cuda-bf16: %s", e.msg);
    if (FAILED()) return;
    /* the CPU forward on the GPU's post-step parameters */
    float c2g[N], aux = 0;
    Model *mg = model_create_ops(&cfg, ops_cpu(), &e);
    CHECKF(mg != NULL && mg->n_params == ng, "cpu model: %s", e.msg);
    if (FAILED()) return;
    memcpy(mg->params, pg, sizeof(float) * ng);
    CHECKF(model_forward(mg, &b, c2g, &aux, &e) == 0, "cpu forward: %s", e.msg);
    model_free(mg);
    double e1 = test_rel_err(g1, c1, N), e2 = test_rel_err(g2, c2g, N), ep = test_rel_err(pg, pc, nc);
    double moved = test_rel_err(c2, c1, N);
    fprintf(stderr, "    shadow SFT: logp err %.3g then %.3g (the step moved logp by %.3g), params err %.3g, "
            "%ld refreshes, %ld shadow GEMMs\n", e1, e2, moved, ep, dr, dgm);
    CHECKF(moved > 2e-2, "the step moves logp by only %.3g: a stale shadow would pass", moved);
    CHECKF(e1 <= 1e-2, "first forward: logp err %.3g", e1);
    CHECKF(e2 <= 1e-2, "second forward (refreshed shadow): logp err %.3g", e2);
    double worst = 0;
    for (size_t i = 0; ng == nc && i < nc; i++) worst = fmax(worst, fabs((double)pg[i] - pc[i]));
    CHECKF(ng == nc && ep <= 2e-2, "parameters after the step: err %.3g", ep);
    CHECKF(worst <= 2.2 * k_adam.lr, "a parameter after the step differs by %.3g > 2.2 lr", worst);
    CHECKF(dr == 2, "%ld refreshes: want 2 (the first forward, the forward after AdamW)", dr);
    CHECKF(dgm > 0, "no GEMM read a shadow");
    free(pc), free(pg);
}

#define CUDA_BODY(fn) fn(t_)
#else
#define CUDA_BODY(fn) SKIP("CUDA backend not built (no nvcc at build time, or NO_CUDA=1): NOT run on a GPU")
#endif /* CRUCIBLE_CUDA */

TEST(cuda_param_shadow_gemm) { CUDA_BODY(body_gemm); }
TEST(cuda_param_shadow_sft_step) { CUDA_BODY(body_sft); }
