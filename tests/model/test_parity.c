/* tests/model/test_parity.c — the CPU model against PyPI transformers' DeepseekV2 (plus the
 * spec §6.4 aux loss in torch autograd), on the fixtures that
 * tests/reference/make_model_fixtures.py writes to tests/fixtures/model/<name>/:
 *   lite  no q-LoRA, greedy routing, dense lead layer, 2 shared experts, YaRN
 *   v2    q-LoRA, group-limited routing, routed_scaling_factor 16, qk_nope != v_head_dim, YaRN
 * Both batches are packed (4 sequences of 5, 9, 17, 7 tokens; the last starts at position
 * 1000; two targets are -1). Required:
 *   forward   logp within 1e-4 relative per token (exactly 0 where target < 0), aux within 1e-4
 *   backward  every parameter: ||g - g_ref|| / ||g_ref|| < 1e-3 for
 *             L = sum_t dlogp[t] logp[t] + sum_l aux_l (aux_weight 1)
 *   adamw     3 x (forward, backward, AdamW step) vs torch.optim.AdamW: per tensor
 *             ||p - p_ref|| / ||p_ref - p0|| < 1e-3 (error relative to the update itself)
 * The same three checks run on the guarded CPU backend (tests/guarded_ops.h: the model's
 * memory traps host access, as device memory would) and, with a GPU, on the CUDA fp32
 * table (ops_cuda(), the parity mode) with the same limits; without one those SKIP. */
#include "tests/test.h"
#include "core/safetensors.h"
#include "model/adamw.h"
#include "model/model.h"
#include "model/ops.h"
#include "tests/guarded_ops.h"
#ifdef CRUCIBLE_CUDA
#include "model/cuda/ops_cuda.h"
#endif

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Fixture {
    Model *m;
    SafeTensors *data;
    Batch b;
    int32_t *tokens, *targets, *cu, *pos;
    float *logp_ref, *dlogp, aux_ref;
    char dir[256];
} Fixture;

static int32_t *read_i32(SafeTensors *s, const char *name, size_t n, CrError *e) {
    const StTensor *t = st_find(s, name);
    if (!t) { cr_error_set(e, "data.safetensors: tensor \"%s\" missing", name); return NULL; }
    int64_t *tmp = malloc(n * sizeof *tmp);
    int32_t *out = malloc(n * sizeof *out);
    if (!tmp || !out || st_read_i64(t, tmp, n, e)) { free(tmp); free(out); return NULL; }
    for (size_t i = 0; i < n; i++) out[i] = (int32_t)tmp[i];
    free(tmp);
    return out;
}

static float *read_f32(SafeTensors *s, const char *name, size_t n, CrError *e) {
    const StTensor *t = st_find(s, name);
    if (!t) { cr_error_set(e, "data.safetensors: tensor \"%s\" missing", name); return NULL; }
    float *out = malloc((n ? n : 1) * sizeof *out);
    if (!out || st_read_f32(t, out, n, e)) { free(out); return NULL; }
    return out;
}

static void fixture_free(Fixture *f) {
    if (f->m) model_free(f->m);
    if (f->data) st_close(f->data);
    free(f->tokens); free(f->targets); free(f->cu); free(f->pos);
    free(f->logp_ref); free(f->dlogp);
    memset(f, 0, sizeof *f);
}

/* n floats of backend memory to a malloc'd host copy */
static float *host_of(const Model *m, const float *x, size_t n) {
    float *h = malloc((n ? n : 1) * sizeof *h);
    if (h) m->ops->download(h, x, n * sizeof *h);
    return h;
}

static int fixture_load(Fixture *f, const char *name, const Ops *ops, CrError *e) {
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "tests/fixtures/model/%s", name);
    char path[300];
    snprintf(path, sizeof path, "%s/data.safetensors", f->dir);
    if (!(f->m = model_load_ops(f->dir, ops, e))) return -1;
    if (!(f->data = st_open(path, e))) return -1;
    const StTensor *tk = st_find(f->data, "tokens"), *cu = st_find(f->data, "cu_seqlens");
    if (!tk || !cu || tk->ndim != 1 || cu->ndim != 1)
        return cr_error_set(e, "%s: tokens / cu_seqlens missing or not 1-D", path);
    size_t n = (size_t)tk->shape[0], s = (size_t)cu->shape[0] - 1;
    f->tokens = read_i32(f->data, "tokens", n, e);
    f->targets = f->tokens ? read_i32(f->data, "targets", n, e) : NULL;
    f->pos = f->targets ? read_i32(f->data, "pos", n, e) : NULL;
    f->cu = f->pos ? read_i32(f->data, "cu_seqlens", s + 1, e) : NULL;
    f->logp_ref = f->cu ? read_f32(f->data, "logp", n, e) : NULL;
    f->dlogp = f->logp_ref ? read_f32(f->data, "dlogp", n, e) : NULL;
    float *aux = f->dlogp ? read_f32(f->data, "aux", 1, e) : NULL;
    if (!aux) return -1;
    f->aux_ref = aux[0];
    free(aux);
    f->b = (Batch){.n_tokens = (int)n, .n_seqs = (int)s, .tokens = f->tokens, .targets = f->targets,
                   .cu_seqlens = f->cu, .pos = f->pos};
    return 0;
}

static void parity_forward(TestCtx *t_, const char *name, const Ops *ops) {
    Fixture f;
    CrError e = {{0}};
    CHECKF(fixture_load(&f, name, ops, &e) == 0, "%s", e.msg);
    if (FAILED()) { fixture_free(&f); return; }
    int n = f.b.n_tokens;
    float *logp = calloc((size_t)n, sizeof *logp), aux = -1;
    CHECK(logp);
    CHECKF(model_forward(f.m, &f.b, logp, &aux, &e) == 0, "%s", e.msg);
    if (!FAILED()) {
        double worst = 0;
        for (int i = 0; i < n; i++) {
            if (f.targets[i] < 0) { CHECKF(logp[i] == 0.0f, "logp[%d] = %g for target -1", i, logp[i]); continue; }
            double r = fabs((double)logp[i] - f.logp_ref[i]) / fabs((double)f.logp_ref[i]);
            if (r > worst) worst = r;
            CHECKF(r < 1e-4, "%s: logp[%d] = %.7g, transformers %.7g (rel %.2e)", name, i, logp[i], f.logp_ref[i], r);
        }
        double ra = fabs((double)aux - f.aux_ref) / fabs((double)f.aux_ref);
        CHECKF(ra < 1e-4, "%s: aux = %.7g, reference %.7g (rel %.2e)", name, aux, f.aux_ref, ra);
        fprintf(stderr, "    %s (%s): worst logp rel err %.2e over %d tokens, aux rel err %.2e\n", name, ops->name, worst, n,
                ra);
    }
    free(logp);
    fixture_free(&f);
}

static void parity_backward(TestCtx *t_, const char *name, const Ops *ops) {
    Fixture f;
    CrError e = {{0}};
    CHECKF(fixture_load(&f, name, ops, &e) == 0, "%s", e.msg);
    if (FAILED()) { fixture_free(&f); return; }
    float *logp = calloc((size_t)f.b.n_tokens, sizeof *logp), aux;
    CHECK(logp);
    model_zero_grads(f.m);
    CHECKF(model_forward(f.m, &f.b, logp, &aux, &e) == 0, "%s", e.msg);
    if (!FAILED()) CHECKF(model_backward(f.m, &f.b, f.dlogp, 1.0f, &e) == 0, "%s", e.msg);
    if (!FAILED()) {
        /* every reference gradient names a model tensor, and every tensor has one */
        int n_ref = 0;
        for (int i = 0; i < st_count(f.data); i++) n_ref += !strncmp(st_at(f.data, i)->name, "grad.", 5);
        CHECKF(n_ref == f.m->n_tensors, "%s: %d reference gradients, model has %d tensors", name, n_ref, f.m->n_tensors);
        double worst = 0;
        const char *worst_name = "";
        float *grads = host_of(f.m, f.m->grads, f.m->n_params);
        CHECK(grads);
        for (int i = 0; grads && i < f.m->n_tensors; i++) {
            const ParamTensor *p = &f.m->tensors[i];
            char key[128];
            snprintf(key, sizeof key, "grad.%s", p->name);
            float *ref = read_f32(f.data, key, p->numel, &e);
            CHECKF(ref, "%s", e.msg);
            if (!ref) continue;
            double r = test_rel_err(grads + p->offset, ref, p->numel);
            if (r > worst) { worst = r; worst_name = p->name; }
            CHECKF(r < 1e-3, "%s: grad %s rel err %.3e", name, p->name, r);
            free(ref);
        }
        free(grads);
        fprintf(stderr, "    %s (%s): %d gradients, worst rel err %.2e (%s)\n", name, ops->name, f.m->n_tensors, worst,
                worst_name);
    }
    free(logp);
    fixture_free(&f);
}

static void parity_adamw(TestCtx *t_, const char *name, const Ops *ops) {
    Fixture f;
    CrError e = {{0}};
    CHECKF(fixture_load(&f, name, ops, &e) == 0, "%s", e.msg);
    if (FAILED()) { fixture_free(&f); return; }
    float hp[5];
    static const char *hk[5] = {"adamw.lr", "adamw.beta1", "adamw.beta2", "adamw.eps", "adamw.weight_decay"};
    for (int i = 0; i < 5; i++) {
        float *v = read_f32(f.data, hk[i], 1, &e);
        CHECKF(v, "%s", e.msg);
        hp[i] = v ? v[0] : 0;
        free(v);
    }
    float *p0 = malloc(f.m->n_params * sizeof *p0);
    float *logp = calloc((size_t)f.b.n_tokens, sizeof *logp), aux;
    CHECK(p0 && logp);
    if (FAILED()) { free(p0); free(logp); fixture_free(&f); return; }
    f.m->ops->download(p0, f.m->params, f.m->n_params * sizeof *p0);
    AdamW opt;
    AdamWConfig cfg = {.lr = hp[0], .beta1 = hp[1], .beta2 = hp[2], .eps = hp[3], .weight_decay = hp[4]};
    CHECKF(adamw_init(&opt, f.m, cfg, &e) == 0, "%s", e.msg);
    if (FAILED()) { free(p0); free(logp); fixture_free(&f); return; }
    for (int step = 0; step < 3 && !FAILED(); step++) {
        model_zero_grads(f.m);
        CHECKF(model_forward(f.m, &f.b, logp, &aux, &e) == 0, "step %d: %s", step, e.msg);
        if (!FAILED()) CHECKF(model_backward(f.m, &f.b, f.dlogp, 1.0f, &e) == 0, "step %d: %s", step, e.msg);
        if (!FAILED()) adamw_step(&opt, f.m, hp[0]);
    }
    float *params = FAILED() ? NULL : host_of(f.m, f.m->params, f.m->n_params);
    if (params) {
        double worst = 0;
        const char *worst_name = "";
        for (int i = 0; i < f.m->n_tensors; i++) {
            const ParamTensor *p = &f.m->tensors[i];
            char key[128];
            snprintf(key, sizeof key, "adamw3.%s", p->name);
            float *ref = read_f32(f.data, key, p->numel, &e);
            CHECKF(ref, "%s", e.msg);
            if (!ref) continue;
            /* error of our update relative to the reference update */
            double num = 0, den = 0;
            for (size_t j = 0; j < p->numel; j++) {
                double d = (double)params[p->offset + j] - ref[j];
                double u = (double)ref[j] - p0[p->offset + j];
                num += d * d;
                den += u * u;
            }
            double r = den > 0 ? sqrt(num / den) : sqrt(num);
            if (r > worst) { worst = r; worst_name = p->name; }
            CHECKF(r < 1e-3, "%s: after 3 AdamW steps %s: rel err of the update %.3e", name, p->name, r);
            free(ref);
        }
        fprintf(stderr, "    %s (%s): 3 AdamW steps, worst update rel err %.2e (%s)\n", name, ops->name, worst,
                worst_name);
    }
    free(params);
    adamw_free(&opt);
    free(p0);
    free(logp);
    fixture_free(&f);
}

TEST(model_parity_lite_forward) { parity_forward(t_, "lite", ops_cpu()); }
TEST(model_parity_v2_forward) { parity_forward(t_, "v2", ops_cpu()); }
TEST(model_parity_lite_backward) { parity_backward(t_, "lite", ops_cpu()); }
TEST(model_parity_v2_backward) { parity_backward(t_, "v2", ops_cpu()); }
TEST(model_parity_lite_adamw) { parity_adamw(t_, "lite", ops_cpu()); }
TEST(model_parity_v2_adamw) { parity_adamw(t_, "v2", ops_cpu()); }

/* the backend-generic path (uploads, downloads, AdamW and its moments through the table) */
TEST(model_parity_guarded_backend) {
    parity_forward(t_, "v2", guarded_ops());
    parity_backward(t_, "lite", guarded_ops());
    parity_adamw(t_, "v2", guarded_ops());
}

/* the committed transformers fixtures on the GPU (fp32 table) */
static const Ops *cuda_fp32_or_null(void) {
#ifdef CRUCIBLE_CUDA
    return ops_cuda();
#else
    return NULL;
#endif
}
#define CUDA_PARITY(call)                                                                            \
    do {                                                                                             \
        const Ops *o_ = cuda_fp32_or_null();                                                         \
        if (!o_) SKIP("no CUDA device visible (or CUDA not built): fixture parity NOT run on a GPU"); \
        call;                                                                                        \
    } while (0)
TEST(cuda_parity_lite_forward) { CUDA_PARITY(parity_forward(t_, "lite", o_)); }
TEST(cuda_parity_v2_forward) { CUDA_PARITY(parity_forward(t_, "v2", o_)); }
TEST(cuda_parity_lite_backward) { CUDA_PARITY(parity_backward(t_, "lite", o_)); }
TEST(cuda_parity_v2_backward) { CUDA_PARITY(parity_backward(t_, "v2", o_)); }
TEST(cuda_parity_lite_adamw) { CUDA_PARITY(parity_adamw(t_, "lite", o_)); }
TEST(cuda_parity_v2_adamw) { CUDA_PARITY(parity_adamw(t_, "v2", o_)); }
