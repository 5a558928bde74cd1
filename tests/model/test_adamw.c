/* tests/model/test_adamw.c — AdamW against torch.optim.AdamW trajectories
 * (tests/reference/gen_optim.py) and against a double-precision transcription of torch's
 * formula on random data; the lr schedule against transformers'
 * get_cosine_with_min_lr_schedule_with_warmup; global-norm clipping against hand values. */
#include "tests/test.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "model/adamw.h"
#include "model/schedule.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* A Model with only a parameter table (what AdamW and clipping use). */
static Model *fake_model(int n, const int64_t (*shapes)[2], const int *ndims) {
    Model *m = cr_calloc(1, sizeof *m);
    m->tensors = cr_calloc((size_t)n, sizeof *m->tensors);
    m->n_tensors = n;
    for (int i = 0; i < n; i++) {
        ParamTensor *t = &m->tensors[i];
        snprintf(t->name, sizeof t->name, "t%d", i);
        t->ndim = ndims[i];
        t->shape[0] = shapes[i][0];
        t->shape[1] = ndims[i] == 2 ? shapes[i][1] : 0;
        t->numel = (size_t)shapes[i][0] * (size_t)(ndims[i] == 2 ? shapes[i][1] : 1);
        t->offset = m->n_params;
        m->n_params += t->numel;
    }
    m->params = cr_calloc(m->n_params, sizeof(float));
    m->grads = cr_calloc(m->n_params, sizeof(float));
    return m;
}

static void fake_free(Model *m) {
    free(m->params);
    free(m->grads);
    free(m->tensors);
    free(m);
}

static void read_t(TestCtx *t_, const SafeTensors *s, const char *name, float *out, size_t n) {
    CrError e;
    const StTensor *t = st_find(s, name);
    CHECKF(t && st_read_f32(t, out, n, &e) == 0, "fixture tensor %s: %s", name, t ? e.msg : "missing");
}

TEST(model_adamw_matches_torch_trajectory) {
    CrError e;
    SafeTensors *s = st_open("tests/fixtures/optim/adamw.safetensors", &e);
    CHECKF(s, "%s", e.msg);
    if (!s) return;
    const int64_t shapes[2][2] = {{6, 5}, {7, 0}};
    const int ndims[2] = {2, 1};
    Model *m = fake_model(2, shapes, ndims);
    read_t(t_, s, "p0_w", m->params, 30);
    read_t(t_, s, "p0_n", m->params + 30, 7);
    AdamW opt;
    AdamWConfig cfg = {.lr = 3e-3f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    CHECKF(adamw_init(&opt, m, cfg, &e) == 0, "%s", e.msg);
    CHECK(opt.decay[0] == 1 && opt.decay[1] == 0);   /* 2-D decayed, 1-D (norm) not */
    const float lrs[5] = {3e-3f, 2e-3f, 1e-3f, 5e-4f, 0.0f};
    float want[37], before[37];
    for (int k = 1; k <= 5; k++) {
        char nw[16], nn[16];
        snprintf(nw, sizeof nw, "g%d_w", k);
        snprintf(nn, sizeof nn, "g%d_n", k);
        read_t(t_, s, nw, m->grads, 30);
        read_t(t_, s, nn, m->grads + 30, 7);
        if (k > 1) memcpy(m->params, want, sizeof want);   /* start from torch's parameters */
        memcpy(before, m->params, sizeof before);
        adamw_step(&opt, m, lrs[k - 1]);
        snprintf(nw, sizeof nw, "p%d_w", k);
        snprintf(nn, sizeof nn, "p%d_n", k);
        read_t(t_, s, nw, want, 30);
        read_t(t_, s, nn, want + 30, 7);
        /* Compare this step's update with torch's: |ours - torch| / |torch's update|. */
        double num = 0, den = 0;
        for (int i = 0; i < 37; i++) {
            double d = (double)m->params[i] - want[i], u = (double)want[i] - before[i];
            num += d * d;
            den += u * u;
        }
        if (lrs[k - 1] == 0) {
            CHECKF(den == 0 && memcmp(m->params, before, sizeof before) == 0,
                   "step %d: lr 0 must leave the parameters unchanged", k);
        } else {
            CHECKF(sqrt(num) <= 1e-5 * sqrt(den), "step %d: update differs from torch by %.3g relative", k,
                   sqrt(num / den));
        }
    }
    CHECK(opt.step == 5);
    adamw_free(&opt);
    fake_free(m);
    st_close(s);
}

TEST(model_adamw_matches_double_reference_random) {
    const int64_t shapes[3][2] = {{37, 29}, {101, 0}, {70000, 0}};
    const int ndims[3] = {2, 1, 1};
    Model *m = fake_model(3, shapes, ndims);
    size_t n = m->n_params;
    double *p = cr_malloc(n * sizeof(double)), *mm = cr_calloc(n, sizeof(double)), *vv = cr_calloc(n, sizeof(double));
    CrRng r;
    cr_rng_init(&r, 7, 0, 0);
    for (size_t i = 0; i < n; i++) m->params[i] = (float)cr_rng_normal(&r), p[i] = m->params[i];
    AdamWConfig cfg = {.lr = 0.1f, .beta1 = 0.8f, .beta2 = 0.99f, .eps = 1e-6f, .weight_decay = 0.05f};
    AdamW opt;
    CrError e;
    CHECKF(adamw_init(&opt, m, cfg, &e) == 0, "%s", e.msg);
    double worst_p = 0, worst_m = 0, worst_v = 0;
    for (int k = 1; k <= 20; k++) {
        float lr = 0.2f * (float)(41 - k) / 40.0f;   /* updates well above fp32 resolution */
        double scale = k % 5 == 0 ? 1e-3 : 1.0;
        for (size_t i = 0; i < n; i++) m->grads[i] = (float)(scale * cr_rng_normal(&r));
        /* The reference starts from our fp32 state, so each step is checked on its own. */
        for (size_t i = 0; i < n; i++) p[i] = m->params[i], mm[i] = opt.m[i], vv[i] = opt.v[i];
        adamw_step(&opt, m, lr);
        double bc1 = 1 - pow(cfg.beta1, k), bc2 = 1 - pow(cfg.beta2, k);
        double np = 0, dp = 0, nm = 0, dm = 0, nv = 0, dv = 0;
        for (int ti = 0; ti < 3; ti++) {
            const ParamTensor *t = &m->tensors[ti];
            for (size_t j = t->offset; j < t->offset + t->numel; j++) {
                double g = m->grads[j], p0 = p[j];
                if (t->ndim == 2) p[j] *= 1 - (double)lr * cfg.weight_decay;
                mm[j] = cfg.beta1 * mm[j] + (1 - (double)cfg.beta1) * g;
                vv[j] = cfg.beta2 * vv[j] + (1 - (double)cfg.beta2) * g * g;
                p[j] -= (lr / bc1) * mm[j] / (sqrt(vv[j]) / sqrt(bc2) + cfg.eps);
                np += (m->params[j] - p[j]) * (m->params[j] - p[j]);
                dp += (p[j] - p0) * (p[j] - p0);
                nm += (opt.m[j] - mm[j]) * (opt.m[j] - mm[j]);
                dm += mm[j] * mm[j];
                nv += (opt.v[j] - vv[j]) * (opt.v[j] - vv[j]);
                dv += vv[j] * vv[j];
            }
        }
        worst_p = fmax(worst_p, sqrt(np / dp));
        worst_m = fmax(worst_m, sqrt(nm / dm));
        worst_v = fmax(worst_v, sqrt(nv / dv));
    }
    /* fp32 rounding level, relative to the size of each update / moment. */
    CHECKF(worst_p < 1e-5 && worst_m < 1e-6 && worst_v < 1e-6, "relative error: update %.3g, m %.3g, v %.3g",
           worst_p, worst_m, worst_v);
    CHECK(opt.step == 20);
    adamw_free(&opt);
    fake_free(m);
    free(p);
    free(mm);
    free(vv);
}

TEST(model_adamw_rejects_bad_config) {
    const int64_t shapes[1][2] = {{3, 0}};
    const int ndims[1] = {1};
    Model *m = fake_model(1, shapes, ndims);
    AdamWConfig bad[] = {
        {.lr = -1, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
        {.lr = 1, .beta1 = 1.0f, .beta2 = 0.999f, .eps = 1e-8f},
        {.lr = 1, .beta1 = 0.9f, .beta2 = -0.1f, .eps = 1e-8f},
        {.lr = 1, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 0},
        {.lr = 1, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = NAN},
        {.lr = INFINITY, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f},
    };
    const char *field[] = {"lr", "beta1", "beta2", "eps", "weight_decay", "lr"};
    for (int i = 0; i < 6; i++) {
        AdamW opt;
        CrError e;
        CHECKF(adamw_init(&opt, m, bad[i], &e) == -1 && strstr(e.msg, field[i]), "case %d: %s", i, e.msg);
    }
    fake_free(m);
}

TEST(model_schedule_matches_transformers) {
    CrError e;
    char *txt = cr_read_file("tests/fixtures/optim/schedule.json", NULL, &e);
    CHECKF(txt, "%s", e.msg);
    if (!txt) return;
    cJSON *root = cJSON_Parse(txt);
    int cases = 0;
    for (cJSON *c = root ? root->child : NULL; c; c = c->next, cases++) {
        long warm = (long)cJSON_GetObjectItem(c, "warmup")->valuedouble;
        long total = (long)cJSON_GetObjectItem(c, "total")->valuedouble;
        double lr = cJSON_GetObjectItem(c, "lr_max")->valuedouble;
        double mr = cJSON_GetObjectItem(c, "min_lr_ratio")->valuedouble;
        long step = 0;
        for (cJSON *v = cJSON_GetObjectItem(c, "lr")->child; v; v = v->next, step++)
            CHECK_NEAR(lr_schedule(step, warm, total, lr, mr), v->valuedouble, 1e-12);
        CHECK(step == total + 1);
        /* Past the end the floor holds (HF's cosine would rise again). */
        CHECK_NEAR(lr_schedule(total + 7, warm, total, lr, mr), lr * mr, 1e-15);
    }
    CHECK(cases == 2);
    /* Hand values: half-way through the decay is the midpoint between max and floor. */
    CHECK_NEAR(lr_schedule(0, 4, 8, 1.0, 0.2), 0.0, 1e-15);
    CHECK_NEAR(lr_schedule(2, 4, 8, 1.0, 0.2), 0.5, 1e-15);
    CHECK_NEAR(lr_schedule(4, 4, 8, 1.0, 0.2), 1.0, 1e-15);
    CHECK_NEAR(lr_schedule(6, 4, 8, 1.0, 0.2), 0.6, 1e-15);
    CHECK_NEAR(lr_schedule(8, 4, 8, 1.0, 0.2), 0.2, 1e-15);
    CHECK_NEAR(lr_schedule(3, 5, 5, 1.0, 0.0), 0.6, 1e-15);
    CHECK_NEAR(lr_schedule(9, 5, 5, 1.0, 0.0), 1.0, 1e-15);   /* no decay span: constant */
    cJSON_Delete(root);
    free(txt);
}

TEST(model_grad_clip_global_norm) {
    const int64_t shapes[2][2] = {{1, 2}, {1, 0}};
    const int ndims[2] = {2, 1};
    Model *m = fake_model(2, shapes, ndims);
    m->grads[0] = 3, m->grads[1] = 4, m->grads[2] = 12;   /* norm 13 */
    CHECK_NEAR(grad_clip_global_norm(m, 20.0f), 13.0, 1e-7);
    CHECK(m->grads[0] == 3 && m->grads[1] == 4 && m->grads[2] == 12);
    CHECK_NEAR(grad_clip_global_norm(m, 0.0f), 13.0, 1e-7);     /* no clipping */
    CHECK(m->grads[2] == 12);
    CHECK_NEAR(grad_clip_global_norm(m, 6.5f), 13.0, 1e-7);
    float c = (float)(6.5 / (13.0 + 1e-6));
    CHECK(m->grads[0] == 3 * c && m->grads[1] == 4 * c && m->grads[2] == 12 * c);
    CHECK_NEAR(grad_global_norm(m), 6.5, 1e-6);
    m->grads[1] = NAN;
    CHECK(isnan(grad_clip_global_norm(m, 1.0f)) && m->grads[2] == 12 * c);   /* left alone */
    fake_free(m);
    /* Many blocks: double reference, and the same bits with 1 and 2 threads. */
    const int64_t big[2][2] = {{300001, 0}, {513, 257}};
    const int nd[2] = {1, 2};
    m = fake_model(2, big, nd);
    CrRng r;
    cr_rng_init(&r, 3, 1, 0);
    double ref = 0;
    for (size_t i = 0; i < m->n_params; i++) {
        m->grads[i] = (float)cr_rng_normal(&r);
        ref += (double)m->grads[i] * m->grads[i];
    }
    omp_set_num_threads(1);
    double n1 = grad_global_norm(m);
    omp_set_num_threads(2);
    double n2 = grad_global_norm(m);
    CHECK(n1 == n2);
    CHECK_NEAR(n1, sqrt(ref), 1e-12);
    fake_free(m);
}
