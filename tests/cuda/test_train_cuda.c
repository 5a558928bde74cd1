/* tests/cuda/test_train_cuda.c — the trainers' optimizer path on the CUDA backend
 * against the CPU backend, on tiny models with the same initial weights:
 *  - one SFT step (forward, backward, global-norm clipping, AdamW through Ops.sumsq /
 *    Ops.scale / Ops.adamw_update): parameters after the step within 1e-5 normalised
 *    error on ops_cuda() (fp32, lr 1e-4) and 1e-2 on ops_cuda_bf16() (lr 1e-2, so that
 *    the step moves the parameters by ~5% and 1e-2 is not met by an arbitrary update);
 *    the AdamW first moment (= 0.1 x the clipped gradient), the loss and the pre-clip
 *    norm within the same tolerances. AdamW's first update is ~lr sign(g): elements
 *    whose gradient lies inside the GEMM rounding noise may flip, which bounds the
 *    usable precision of the update itself (bf16: update within 0.2, about 1% of the
 *    elements flipped; a wrong update is >= 1). Then the CUDA
 *    model and optimizer are saved and reloaded on the CPU (checkpoint download path)
 *    and must equal the device copies bit for bit;
 *  - one GRPO step through the trainer's grpo_step (mu = 2: old log-probs, the frozen
 *    reference copied on the device with Ops.copy, k3 KL, clipped surrogate through
 *    grpo_loss, two optimizer passes) on fixed completions: parameters within 1e-5
 *    (fp32, lr 1e-4) and 1e-2 (bf16, lr 1e-2), each against the CPU step at its lr.
 * Without a GPU every test here SKIPs saying it was not run on a GPU. */
#include "tests/test.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/file.h"
#include "core/rng.h"
#include "grpo/loss.h"
#include "grpo/micro_batch.h"
#include "grpo/step.h"
#include "model/adamw.h"
#include "model/checkpoint.h"
#ifdef CRUCIBLE_CUDA
#include "model/cuda/ops_cuda.h"
#endif
#include "model/model.h"
#include "model/ops.h"
#include "model/schedule.h"
#include "tests/guarded_ops.h"
#include "tests/model/model_tiny.h"

static const TinyOpts k_opts = {.q_lora = 12, .n_shared = 1, .aux_alpha = 0.01f, .seq_aux = 1};
static const AdamWConfig k_adam = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};

static Model *make_model(const Ops *ops, uint64_t seed) {
    ModelConfig c;
    if (tiny_config(&c, k_opts)) CR_DIE("tiny config");
    CrError e;
    Model *m = model_create_ops(&c, ops, &e);
    if (!m) CR_DIE("%s", e.msg);
    model_init_random(m, seed);
    return m;
}

static float *host_copy(const Ops *ops, const float *x, size_t n) {
    float *h = cr_malloc(sizeof(float) * (n ? n : 1));
    ops->download(h, x, sizeof(float) * n);
    return h;
}

/* ---- SFT ------------------------------------------------------------------------- */

typedef struct SftOut {
    float *params, *m1;  /* host copies after the step */
    float gnorm;
    double loss;
} SftOut;

/* One SFT optimizer step as sft/trainer.c takes it: dlogp = -1/T on targets, aux weight
 * 1, clip to 0.5 (the tiny model's norm is larger: clipping scales), AdamW. */
static int sft_step(Model *m, AdamW *opt, const Batch *b, float lr, SftOut *o, CrError *e) {
    int N = b->n_tokens, T = 0;
    for (int t = 0; t < N; t++) T += b->targets[t] >= 0;
    float *logp = cr_malloc(sizeof(float) * (size_t)N), *dlogp = cr_malloc(sizeof(float) * (size_t)N), aux = 0;
    model_zero_grads(m);
    int rc = model_forward(m, b, logp, &aux, e);
    o->loss = 0;
    for (int t = 0; t < N && !rc; t++) {
        dlogp[t] = b->targets[t] >= 0 ? -1.0f / (float)T : 0.0f;
        if (b->targets[t] >= 0) o->loss -= logp[t] / T;
    }
    if (!rc) rc = model_backward(m, b, dlogp, 1.0f, e);
    if (!rc) {
        o->gnorm = grad_clip_global_norm(m, 0.5f);
        adamw_step(opt, m, lr);
        o->params = host_copy(m->ops, m->params, m->n_params);
        o->m1 = host_copy(m->ops, opt->m, opt->n);
    }
    free(logp);
    free(dlogp);
    return rc;
}

static void sft_case(TestCtx *t_, const Ops *gpu, double tol, float lr, double update_tol, const char *label) {
    CrError e;
    CrRng r;
    cr_rng_init(&r, 77, 0x5F7, 0);
    Model *mc = make_model(ops_cpu(), 31), *mg = make_model(gpu, 31);
    int lens[3] = {17, 9, 23}, N = 49;
    int32_t cu[4] = {0, 17, 26, 49}, tok[49], tgt[49];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)(cr_rng_u64(&r) % (uint64_t)mc->cfg.vocab_size);
    for (int s = 0; s < 3; s++)
        for (int i = cu[s]; i < cu[s + 1]; i++) tgt[i] = i + 1 < cu[s + 1] && i - cu[s] >= lens[s] / 3 ? tok[i + 1] : -1;
    Batch b = {.n_tokens = N, .n_seqs = 3, .tokens = tok, .targets = tgt, .cu_seqlens = cu};
    AdamW oc, og;
    CHECK(adamw_init(&oc, mc, k_adam, &e) == 0 && adamw_init(&og, mg, k_adam, &e) == 0);
    CHECK(og.ops == gpu);
    float *p0 = host_copy(ops_cpu(), mc->params, mc->n_params);
    SftOut c = {0}, g = {0};
    CHECKF(sft_step(mc, &oc, &b, lr, &c, &e) == 0, "cpu: %s", e.msg);
    CHECKF(sft_step(mg, &og, &b, lr, &g, &e) == 0, "%s: %s", label, e.msg);
    if (FAILED()) return;
    size_t n = mc->n_params;
    double ep = test_rel_err(g.params, c.params, n), em = test_rel_err(g.m1, c.m1, n);
    float *dc = cr_malloc(sizeof(float) * n), *dg = cr_malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) dc[i] = c.params[i] - p0[i], dg[i] = g.params[i] - p0[i];
    double ed = test_rel_err(dg, dc, n);
    double moved = test_rel_err(c.params, p0, n);
    CHECKF(tol < 1e-3 || moved > 2e-2, "%s: the step moves the parameters by only %.3g: %g would not test it", label,
           moved, tol);
    fprintf(stderr, "    sft %-10s loss %.7f vs %.7f, grad norm %.7g vs %.7g, params err %.3g (moved %.3g), m err %.3g, update err %.3g\n",
            label, g.loss, c.loss, g.gnorm, c.gnorm, ep, moved, em, ed);
    CHECKF(c.gnorm > 0.5f, "the step did not clip (norm %.4g): the test would not cover Ops.scale", c.gnorm);
    CHECK_NEAR(g.loss, c.loss, tol);
    CHECK_NEAR(g.gnorm, c.gnorm, tol);
    CHECKF(ep <= tol, "%s: parameters after the step normalised error %.3g > %g", label, ep, tol);
    CHECKF(em <= tol, "%s: AdamW first moment normalised error %.3g > %g", label, em, tol);
    CHECKF(ed <= update_tol, "%s: parameter update normalised error %.3g > %g", label, ed, update_tol);
    /* the CUDA model and optimizer through a checkpoint onto the CPU: the same values */
    char *dir = test_tmpdir(), *ck = cr_path_join(dir, "ck");
    CHECKF(checkpoint_save(ck, mg, &og, "{\"step\":1}", &e) == 0, "%s", e.msg);
    AdamW ol;
    Model *ml = checkpoint_load(ck, &ol, NULL, &e);
    CHECKF(ml != NULL, "%s", e.msg);
    if (ml) {
        float *v1 = host_copy(gpu, og.v, og.n);
        CHECK(memcmp(ml->params, g.params, sizeof(float) * n) == 0);
        CHECK(ol.step == 1 && memcmp(ol.m, g.m1, sizeof(float) * n) == 0 && memcmp(ol.v, v1, sizeof(float) * n) == 0);
        /* and back onto the GPU */
        AdamW o2;
        Model *m2 = checkpoint_load_ops(ck, gpu, &o2, NULL, &e);
        CHECKF(m2 != NULL, "%s", e.msg);
        if (m2) {
            float *p2 = host_copy(gpu, m2->params, n), *m2h = host_copy(gpu, o2.m, n);
            CHECK(memcmp(p2, g.params, sizeof(float) * n) == 0 && memcmp(m2h, g.m1, sizeof(float) * n) == 0);
            free(p2), free(m2h);
            adamw_free(&o2);
            model_free(m2);
        }
        free(v1);
        adamw_free(&ol);
        model_free(ml);
    }
    free(ck), free(dir), free(dc), free(dg), free(p0);
    free(c.params), free(c.m1), free(g.params), free(g.m1);
    adamw_free(&oc);
    adamw_free(&og);
    model_free(mc);
    model_free(mg);
}

#ifdef CRUCIBLE_CUDA
static void body_cuda_sft_step_matches_cpu(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: CUDA SFT step test NOT run on a GPU");
    /* fp32: a flipped first update of one element costs ~2 lr / ||p|| ~ 5e-6 at lr 1e-4 */
    sft_case(t_, ops_cuda(), 1e-5, 1e-4f, 0.05, "fp32");
    sft_case(t_, ops_cuda_bf16(), 1e-2, 1e-2f, 0.2, "bf16");
}

#endif

/* ---- GRPO ------------------------------------------------------------------------ */

/* Parameters of the k_opts tiny model (the length of grpo_case's result). */
static size_t tiny_param_count(void) {
    ModelConfig c;
    tiny_config(&c, k_opts);
    CrError e;
    Model *shape = model_create(&c, &e);
    if (!shape) return 0;
    size_t n = shape->n_params;
    model_free(shape);
    return n;
}

static float *grpo_case(TestCtx *t_, const Ops *ops, float lr, double *loss) {
    static const int32_t p0[] = {1, 5, 9, 2}, p1[] = {1, 7, 3, 3, 8, 6};
    static const int32_t c00[] = {11, 12, 13, 2}, c01[] = {20, 2}, c10[] = {4, 4, 4, 4, 30, 2}, c11[] = {41, 17, 2};
    GrpoSeq seqs[4] = {{p0, 4, c00, 4, 1.0f, 0}, {p0, 4, c01, 2, -1.0f, 0},
                       {p1, 6, c10, 6, -0.7f, 0}, {p1, 6, c11, 3, 0.7f, 0}};
    Model *m = make_model(ops, 8), *ref = NULL;
    CrError e;
    ref = model_create_ops(&m->cfg, ops, &e);
    CHECKF(ref != NULL, "%s", e.msg);
    if (!ref) return NULL;
    ops->copy(ref->params, m->params, sizeof(float) * m->n_params);   /* the trainer's reference reset */
    AdamW opt;
    CHECK(adamw_init(&opt, m, k_adam, &e) == 0);
    GrpoMicro *mb = NULL;
    int n_mb = grpo_build_micros(seqs, 4, 24, &mb);   /* two micro-batches */
    CHECK(n_mb == 2);
    GrpoNorm norm = grpo_micro_norm(mb, n_mb, 8);
    GrpoLossConfig lc = grpo_loss_config_default();   /* beta 0.04: the KL to ref counts */
    GrpoStepResult r;
    CHECKF(grpo_step(m, ref, &opt, mb, n_mb, &norm, &lc, 2, lr, 1.0f, &r, &e) == 0, "%s: %s", ops->name, e.msg);
    *loss = r.loss;
    float *p = host_copy(ops, m->params, m->n_params);
    grpo_micro_free(mb, n_mb);
    adamw_free(&opt);
    model_free(ref);
    model_free(m);
    return p;
}

#ifdef CRUCIBLE_CUDA
static void body_cuda_grpo_step_matches_cpu(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: CUDA GRPO step test NOT run on a GPU");
    double lc = 0, lc16 = 0, l32 = 0, l16 = 0;
    float *pc = grpo_case(t_, ops_cpu(), 1e-4f, &lc), *p32 = grpo_case(t_, ops_cuda(), 1e-4f, &l32);
    float *pc16 = grpo_case(t_, ops_cpu(), 1e-2f, &lc16), *p16 = grpo_case(t_, ops_cuda_bf16(), 1e-2f, &l16);
    if (!pc || !p32 || !pc16 || !p16) return;
    size_t n = tiny_param_count();
    double e32 = test_rel_err(p32, pc, n), e16 = test_rel_err(p16, pc16, n), moved = test_rel_err(pc16, pc, n);
    fprintf(stderr, "    grpo step (mu 2, beta 0.04): loss cpu %.7g fp32 %.7g | cpu %.7g bf16 %.7g; params err fp32 %.3g "
            "bf16 %.3g (lr 1e-2 moved them by %.3g)\n", lc, l32, lc16, l16, e32, e16, moved);
    CHECK_NEAR(l32, lc, 1e-5);
    CHECK_NEAR(l16, lc16, 1e-2);
    CHECKF(moved > 2e-2, "the bf16 case's step moves the parameters by only %.3g: 1e-2 would not test it", moved);
    CHECKF(e32 <= 1e-5, "fp32: GRPO step parameters normalised error %.3g", e32);
    CHECKF(e16 <= 1e-2, "bf16: GRPO step parameters normalised error %.3g", e16);
    free(pc), free(p32), free(pc16), free(p16);
}
#endif

#ifdef CRUCIBLE_CUDA
#define CUDA_BODY(name) body_##name(t_)
#else
#define CUDA_BODY(name) SKIP("CUDA backend not built (no nvcc at build time, or NO_CUDA=1): NOT run on a GPU")
#endif
TEST(cuda_sft_step_matches_cpu) { CUDA_BODY(cuda_sft_step_matches_cpu); }
TEST(cuda_grpo_step_matches_cpu) { CUDA_BODY(cuda_grpo_step_matches_cpu); }

/* The same SFT and GRPO steps, checkpoint save and reloads on the guarded CPU backend
 * (tests/guarded_ops.h): its memory traps any host access outside its own ops, so these
 * run everywhere and fail where the trainer's GPU path would dereference device memory
 * on the host. Same kernels as ops_cpu(): results must be bit-identical. */
TEST(cuda_host_sft_step_on_guarded_backend) { sft_case(t_, guarded_ops(), 0, 1e-2f, 0, "guarded"); }
TEST(cuda_host_grpo_step_on_guarded_backend) {
    double lc = 0, lg = 0;
    float *pc = grpo_case(t_, ops_cpu(), 1e-2f, &lc), *pg = grpo_case(t_, guarded_ops(), 1e-2f, &lg);
    if (!pc || !pg) return;
    size_t n = tiny_param_count();
    CHECKF(lg == lc, "guarded GRPO loss %.9g vs cpu %.9g", lg, lc);
    CHECKF(memcmp(pg, pc, sizeof(float) * n) == 0, "guarded GRPO step parameters differ from the CPU step's");
    CHECKF(guarded_ops_live_allocations() == 0, "%d backend buffers leaked", guarded_ops_live_allocations());
    free(pc), free(pg);
}
