/* tests/model/test_device.c — choosing the backend (model/device.h) and the training
 * path through the Ops table:
 *  - --device values: parse, the errors name the flag, cuda without a GPU fails cleanly;
 *  - AdamW (adamw_step -> Ops.adamw_update) and clipping (Ops.sumsq, Ops.scale) on the
 *    CPU table give bit for bit what the previous host-only code gave (copied here
 *    verbatim as the reference);
 *  - the non-CPU code paths of model_load_ops / checkpoint save and load (host scratch,
 *    upload, download of parameters and AdamW moments) run on a "shadow" backend: the
 *    CPU ops under another name with counted transfers, so that no GPU is needed; the
 *    results must equal the CPU backend's bit for bit. */
#include "tests/test.h"
#include "tests/util.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/rng.h"
#include "model/adamw.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/schedule.h"
#include "tests/model/model_tiny.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TEST(model_device_parse_values) {
    CrError e;
    DeviceKind k = DEVICE_AUTO;
    CHECK(device_parse("cpu", &k, &e) == 0 && k == DEVICE_CPU);
    CHECK(device_parse("cuda", &k, &e) == 0 && k == DEVICE_CUDA);
    CHECK(device_parse("cuda-fp32", &k, &e) == 0 && k == DEVICE_CUDA_FP32);
    CHECK(device_parse("auto", &k, &e) == 0 && k == DEVICE_AUTO);
    CHECK(device_parse(NULL, &k, &e) == 0 && k == DEVICE_CPU);   /* library default */
    const char *bad[] = {"bogus", "CPU", "", "cuda:0", "gpu"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECKF(device_parse(bad[i], &k, &e) == -1, "\"%s\" accepted", bad[i]);
        CHECKF(strstr(e.msg, "--device") && strstr(e.msg, bad[i]), "error does not name the flag/value: %s", e.msg);
    }
    CHECK(device_open("bogus", &e) == NULL && strstr(e.msg, "--device"));
    CHECK(device_open("cpu", &e) == ops_cpu());
}

TEST(model_device_cuda_without_gpu_fails_cleanly) {
    if (test_gpu_visible()) SKIP("a CUDA device is visible: the no-GPU error path is not exercised here");
    CrError e;
    CHECK(device_open("cuda", &e) == NULL);
    CHECKF(strstr(e.msg, "--device cuda") != NULL, "%s", e.msg);
    CHECK(device_open("cuda-fp32", &e) == NULL);
    CHECKF(strstr(e.msg, "--device cuda-fp32") != NULL, "%s", e.msg);
    CHECK(device_open("auto", &e) == ops_cpu());   /* auto falls back to the CPU */
}

TEST(model_device_default_from_env) {
    CHECK(unsetenv("CRUCIBLE_DEVICE") == 0);
    CHECK(strcmp(device_default(), "auto") == 0);
    CHECK(setenv("CRUCIBLE_DEVICE", "", 1) == 0);
    CHECK(strcmp(device_default(), "auto") == 0);
    CHECK(setenv("CRUCIBLE_DEVICE", "cuda-fp32", 1) == 0);
    CHECK(strcmp(device_default(), "cuda-fp32") == 0);
}

/* ---- the previous host-only optimizer code, verbatim (model/adamw.c, model/schedule.c
 * before the Ops entries): the reference for bit-exactness ---------------------------- */

static void old_adamw_update(const AdamWConfig *cfg, long t, float lr, int decay, float *p, const float *g, float *m,
                             float *v, size_t n) {
    const float b1 = cfg->beta1, b2 = cfg->beta2, eps = cfg->eps;
    const double bc1 = 1.0 - pow((double)b1, (double)t), bc2 = 1.0 - pow((double)b2, (double)t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float keep = decay ? 1.0f - lr * cfg->weight_decay : 1.0f;
#pragma omp parallel for schedule(static) if (n > (1 << 15))
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * keep;
        float mi = m[i] + (1.0f - b1) * (gi - m[i]);
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

#define OLD_NORM_BLOCK (1u << 16)
static double old_sumsq(const float *g, size_t n) {
    size_t nb = (n + OLD_NORM_BLOCK - 1) / OLD_NORM_BLOCK;
    if (nb <= 1) {
        double s = 0;
        for (size_t j = 0; j < n; j++) s += (double)g[j] * g[j];
        return s;
    }
    double *part = cr_malloc(sizeof(double) * nb);
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * OLD_NORM_BLOCK, hi = lo + OLD_NORM_BLOCK < n ? lo + OLD_NORM_BLOCK : n;
        double s = 0;
        for (size_t j = lo; j < hi; j++) s += (double)g[j] * g[j];
        part[b] = s;
    }
    double s = 0;
    for (size_t b = 0; b < nb; b++) s += part[b];
    free(part);
    return s;
}
static float old_clip(const Model *m, float *grads, float max_norm) {
    double total = 0;
    for (int i = 0; i < m->n_tensors; i++) total += old_sumsq(grads + m->tensors[i].offset, m->tensors[i].numel);
    double norm = sqrt(total);
    if (max_norm <= 0 || !isfinite(norm)) return (float)norm;
    double coef = (double)max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
        for (int i = 0; i < m->n_tensors; i++) {
            float *g = grads + m->tensors[i].offset;
            size_t n = m->tensors[i].numel;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
            for (size_t j = 0; j < n; j++) g[j] *= c;
        }
    }
    return (float)norm;
}

/* A tiny model whose vocabulary is widened so that the embedding and LM head have
 * 3000 x 32 = 96000 elements: past the 64K block of the norm and the parallel thresholds. */
static Model *wide_model(const Ops *ops, uint64_t seed) {
    ModelConfig c;
    if (tiny_config(&c, (TinyOpts){.n_shared = 1, .aux_alpha = 0.01f})) CR_DIE("tiny config");
    c.vocab_size = 3000;
    CrError e;
    Model *m = model_create_ops(&c, ops, &e);
    if (!m) CR_DIE("%s", e.msg);
    model_init_random(m, seed);
    return m;
}

static void fill_normal(float *x, size_t n, uint64_t seed, double scale) {
    CrRng r;
    cr_rng_init(&r, seed, 0xD0, 0);
    for (size_t i = 0; i < n; i++) x[i] = (float)(cr_rng_normal(&r) * scale);
}

TEST(model_device_adamw_and_clip_equal_previous_host_path) {
    Model *m = wide_model(ops_cpu(), 5);
    size_t n = m->n_params;
    AdamWConfig cfg = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    AdamW opt;
    CrError e;
    CHECK(adamw_init(&opt, m, cfg, &e) == 0);
    CHECK(opt.ops == ops_cpu());
    float *p = cr_malloc(sizeof(float) * n), *g = cr_malloc(sizeof(float) * n);
    float *mm = cr_calloc(n, sizeof(float)), *vv = cr_calloc(n, sizeof(float));
    memcpy(p, m->params, sizeof(float) * n);
    int clipped = 0;
    for (long step = 1; step <= 3; step++) {
        /* large gradients (norm >> 1) so that clipping scales them */
        fill_normal(m->grads, n, 100 + (uint64_t)step, 0.5);
        memcpy(g, m->grads, sizeof(float) * n);
        float na = grad_clip_global_norm(m, 1.0f), nb = old_clip(m, g, 1.0f);
        clipped += na > 1.0f;
        CHECKF(memcmp(&na, &nb, sizeof na) == 0, "step %ld: grad norm %.9g vs previous %.9g", step, na, nb);
        CHECKF(memcmp(m->grads, g, sizeof(float) * n) == 0, "step %ld: clipped gradients differ", step);
        float lr = (float)(1e-2 / (double)step);
        adamw_step(&opt, m, lr);
        for (int i = 0; i < m->n_tensors; i++) {
            const ParamTensor *t = &m->tensors[i];
            old_adamw_update(&cfg, step, lr, t->ndim >= 2, p + t->offset, g + t->offset, mm + t->offset,
                             vv + t->offset, t->numel);
        }
        CHECKF(memcmp(m->params, p, sizeof(float) * n) == 0, "step %ld: parameters differ from the previous path", step);
        CHECKF(memcmp(opt.m, mm, sizeof(float) * n) == 0 && memcmp(opt.v, vv, sizeof(float) * n) == 0,
               "step %ld: moments differ from the previous path", step);
    }
    CHECK(clipped == 3);
    /* the host entry point (the reward model's head uses it) is the same kernel */
    float hp[5] = {1, -2, 3, 0.5f, 0}, hg[5] = {0.1f, 0.2f, -0.3f, 0, 4}, hm[5] = {0}, hv[5] = {0};
    float rp[5], rg[5], rm_[5] = {0}, rv[5] = {0};
    memcpy(rp, hp, sizeof hp);
    memcpy(rg, hg, sizeof hg);
    adamw_update(&cfg, 2, 1e-3f, 1, hp, hg, hm, hv, 5);
    old_adamw_update(&cfg, 2, 1e-3f, 1, rp, rg, rm_, rv, 5);
    CHECK(memcmp(hp, rp, sizeof hp) == 0 && memcmp(hm, rm_, sizeof hm) == 0 && memcmp(hv, rv, sizeof hv) == 0);
    adamw_free(&opt);
    free(p), free(g), free(mm), free(vv);
    model_free(m);
}

/* ---- the shadow backend: CPU ops, another name, counted transfers ------------------ */

static Ops g_shadow;
static long g_uploads, g_downloads, g_allocs, g_frees;
static void shadow_upload(void *dst, const void *src, size_t bytes) {
    g_uploads++;
    ops_cpu()->upload(dst, src, bytes);
}
static void shadow_download(void *dst, const void *src, size_t bytes) {
    g_downloads++;
    ops_cpu()->download(dst, src, bytes);
}
static void *shadow_alloc(size_t bytes) {
    g_allocs++;
    return ops_cpu()->alloc(bytes);
}
static void shadow_free(void *p) {
    if (p) g_frees++;
    ops_cpu()->free(p);
}
static const Ops *shadow_ops(void) {
    g_shadow = *ops_cpu();
    g_shadow.name = "test-shadow";
    g_shadow.upload = shadow_upload;
    g_shadow.download = shadow_download;
    g_shadow.alloc = shadow_alloc;
    g_shadow.free = shadow_free;
    return &g_shadow;
}

static const int32_t k_tok[10] = {3, 17, 5, 40, 2, 9, 9, 11, 30, 1};
static const int32_t k_tgt[10] = {17, 5, 40, 2, -1, 9, 11, 30, 1, -1};
static const int32_t k_cu[3] = {0, 5, 10};

static void train_step(TestCtx *t_, Model *m, AdamW *opt, float lr) {
    Batch b = {.n_tokens = 10, .n_seqs = 2, .tokens = k_tok, .targets = k_tgt, .cu_seqlens = k_cu};
    float logp[10], aux, dlogp[10];
    CrError e;
    CHECKF(model_forward(m, &b, logp, &aux, &e) == 0, "%s", e.msg);
    for (int t = 0; t < 10; t++) dlogp[t] = k_tgt[t] >= 0 ? -1.0f / 8 : 0;
    model_zero_grads(m);
    CHECKF(model_backward(m, &b, dlogp, 1.0f, &e) == 0, "%s", e.msg);
    grad_clip_global_norm(m, 0.5f);
    adamw_step(opt, m, lr);
}

static int same_files(const char *a, const char *b, const char *name) {
    char *pa = cr_path_join(a, name), *pb = cr_path_join(b, name);
    CrError e;
    size_t la = 0, lb = 0;
    char *x = cr_read_file(pa, &la, &e), *y = cr_read_file(pb, &lb, &e);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x), free(y), free(pa), free(pb);
    return same;
}

TEST(model_device_shadow_backend_checkpoint_and_training_bit_exact) {
    const Ops *sh = shadow_ops();
    CrError e;
    char *dir = test_tmpdir();
    char *ck = cr_path_join(dir, "ck"), *ck_cpu = cr_path_join(dir, "ck_cpu"), *ck_sh = cr_path_join(dir, "ck_sh");
    ModelConfig c;
    CHECK(tiny_config(&c, (TinyOpts){.n_shared = 1, .aux_alpha = 0.01f, .seq_aux = 1}) == 0);
    Model *a = model_create(&c, &e);
    model_init_random(a, 9);
    AdamWConfig cfg = {.lr = 3e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    AdamW oa;
    CHECK(adamw_init(&oa, a, cfg, &e) == 0);
    train_step(t_, a, &oa, 3e-2f);
    train_step(t_, a, &oa, 2e-2f);
    CHECKF(checkpoint_save(ck, a, &oa, "{\"step\":2}", &e) == 0, "%s", e.msg);
    /* the same checkpoint loaded onto the CPU and onto the shadow backend */
    AdamW oc, os;
    char *js = NULL;
    Model *mc = checkpoint_load(ck, &oc, NULL, &e);
    CHECKF(mc != NULL, "%s", e.msg);
    g_uploads = g_downloads = 0;
    Model *ms = checkpoint_load_ops(ck, sh, &os, &js, &e);
    CHECKF(ms != NULL, "%s", e.msg);
    if (!mc || !ms) return;
    CHECK(ms->ops == sh && os.ops == sh);
    CHECK(js && strstr(js, "\"step\":2"));
    /* parameters and both moments went through upload, tensor by tensor */
    CHECKF(g_uploads >= 3L * ms->n_tensors, "%ld uploads for %d tensors", g_uploads, ms->n_tensors);
    CHECK(memcmp(mc->params, ms->params, sizeof(float) * mc->n_params) == 0);
    CHECK(memcmp(a->params, ms->params, sizeof(float) * mc->n_params) == 0);
    CHECK(os.step == 2 && memcmp(oa.m, os.m, sizeof(float) * oa.n) == 0 && memcmp(oa.v, os.v, sizeof(float) * oa.n) == 0);
    /* two more steps on each backend and on the uninterrupted model: identical */
    for (int s = 0; s < 2; s++) {
        train_step(t_, a, &oa, 1e-2f);
        train_step(t_, mc, &oc, 1e-2f);
        train_step(t_, ms, &os, 1e-2f);
    }
    CHECK(memcmp(a->params, mc->params, sizeof(float) * a->n_params) == 0);
    CHECK(memcmp(a->params, ms->params, sizeof(float) * a->n_params) == 0);
    CHECK(memcmp(oa.m, os.m, sizeof(float) * oa.n) == 0 && memcmp(oa.v, os.v, sizeof(float) * oa.n) == 0);
    /* saving from the shadow backend downloads and writes the same bytes */
    g_downloads = 0;
    CHECKF(checkpoint_save(ck_sh, ms, &os, "{}", &e) == 0, "%s", e.msg);
    CHECKF(g_downloads >= 3, "%ld downloads (parameters and both moments)", g_downloads);
    CHECKF(checkpoint_save(ck_cpu, mc, &oc, "{}", &e) == 0, "%s", e.msg);
    CHECK(same_files(ck_sh, ck_cpu, "model.safetensors"));
    CHECK(same_files(ck_sh, ck_cpu, "optimizer.safetensors"));
    /* model_load_ops onto the shadow backend */
    Model *ml = model_load_ops(ck_sh, sh, &e);
    CHECKF(ml != NULL, "%s", e.msg);
    if (ml) CHECK(ml->ops == sh && memcmp(ml->params, mc->params, sizeof(float) * mc->n_params) == 0);
    /* a model on one backend with an optimizer made for another is a programming error:
     * the step dies (in a child here) rather than writing through the wrong memory */
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stderr);
        adamw_step(&oc, ms, 1e-2f);
        _exit(0);
    }
    int st = 0;
    CHECK(pid > 0 && waitpid(pid, &st, 0) == pid);
    CHECKF(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "adamw_step accepted a model on another backend");
    long allocs = g_allocs;
    adamw_free(&os);
    model_free(ms);
    model_free(ml);
    CHECKF(g_frees >= 2 && allocs > 0, "shadow frees %ld allocs %ld", g_frees, allocs);
    adamw_free(&oa);
    adamw_free(&oc);
    model_free(a);
    model_free(mc);
    free(js), free(ck), free(ck_cpu), free(ck_sh), free(dir);
}

TEST(model_device_rollout_needs_decode_ops) {
    CrError e;
    CHECK(device_check_rollout(ops_cpu(), &e) == 0);
    /* a non-CPU table without the paged-cache decode entries: refused, naming the flag */
    Ops o = *ops_cpu();
    o.name = "test-gpu";
    o.mla_cache_scatter = NULL;
    o.mla_decode_attention = NULL;
    CHECK(device_check_rollout(&o, &e) == -1);
    CHECKF(strstr(e.msg, "--device") && strstr(e.msg, "test-gpu"), "%s", e.msg);
    o.mla_cache_scatter = ops_cpu()->mla_cache_scatter;
    CHECK(device_check_rollout(&o, &e) == -1);
    o.mla_decode_attention = ops_cpu()->mla_decode_attention;   /* a table with both: the Ops engine runs */
    CHECK(o.mla_cache_scatter && o.mla_decode_attention && device_check_rollout(&o, &e) == 0);
}
