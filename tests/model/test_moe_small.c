/* tests/model/test_moe_small.c — Ops.moe_experts_small (the routed experts of a few rows,
 * slot by slot, model/cpu/moe_small.c) against the dispatched path it replaces at decode
 * (moe_permute + moe_experts_forward + moe_unpermute) and against a direct double-precision
 * formula, on random data: several N, K, E, D, I, experts shared by many rows and repeated
 * within a row, shapes large enough for the blocked GEMMs and the OpenMP loops (bit-equal
 * on 1 and 2 threads). Outputs are poisoned with NaN first. Then model_ffn_forward_infer
 * on a tiny model through both paths (CRUCIBLE_MOE_SMALL_SLOTS=0 forces the dispatch). */
#include "tests/test.h"
#include "tests/model/fd.h"
#include "tests/model/model_tiny.h"
#include "core/rng.h"
#include "model/layers.h"
#include "model/model.h"
#include "model/ops.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static float *nans(size_t n) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}
static float *randn(CrRng *r, size_t n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = (float)(cr_rng_normal(r) * scale);
    return x;
}

/* ||a - ref|| / ||ref|| with ref in double. */
static double rel_err_d(const float *a, const double *ref, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        num += (a[i] - ref[i]) * (a[i] - ref[i]);
        den += ref[i] * ref[i];
    }
    return sqrt(num / (den > 1e-300 ? den : 1e-300));
}

typedef struct Shape {
    int N, K, E, D, I;
    int repeat_in_row; /* idx drawn with replacement (an expert may appear twice in a row) */
} Shape;

static void check_shape(TestCtx *t_, CrRng *r, Shape sh) {
    const Ops *o = ops_cpu();
    int N = sh.N, K = sh.K, E = sh.E, D = sh.D, I = sh.I, S = N * K;
    size_t nw = (size_t)E * I * D;
    float *x = randn(r, (size_t)N * D, 1.0f), *w = randn(r, (size_t)S, 0.5f);
    float *Wg = randn(r, nw, 0.1f), *Wu = randn(r, nw, 0.1f), *Wd = randn(r, nw, 0.1f);
    int32_t *idx = malloc(sizeof(int32_t) * S);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            int e, dup;
            do { /* distinct within a row unless asked (as the router gives them) */
                e = (int)(cr_rng_u64(r) % (uint64_t)E);
                dup = 0;
                for (int j = 0; j < k && !sh.repeat_in_row; j++) dup |= idx[n * K + j] == e;
            } while (dup);
            idx[n * K + k] = e;
        }
    /* the small op, poisoned outputs */
    float *y = nans((size_t)N * D), *h = nans((size_t)S * I);
    o->moe_experts_small(y, h, x, idx, w, Wg, Wu, Wd, N, D, I, K);
    /* the dispatched path */
    int32_t *ros = malloc(sizeof(int32_t) * S), *sor = malloc(sizeof(int32_t) * S), *off = malloc(sizeof(int32_t) * (E + 1));
    float *Xp = nans((size_t)S * D), *Yp = nans((size_t)S * D), *G = nans((size_t)S * I), *U = nans((size_t)S * I);
    float *Hm = nans((size_t)S * I), *y2 = nans((size_t)N * D);
    o->moe_permute(Xp, ros, sor, off, x, idx, N, D, E, K);
    o->moe_experts_forward(Yp, G, U, Hm, Xp, Wg, Wu, Wd, off, E, D, I);
    o->moe_unpermute(y2, Yp, w, ros, N, D, K);
    /* double precision, from the contract */
    double *yr = calloc((size_t)N * D, sizeof(double)), *hr = malloc(sizeof(double) * S * I);
    for (int s = 0; s < S; s++) {
        size_t e = (size_t)idx[s];
        const float *xn = x + (size_t)(s / K) * D;
        for (int i = 0; i < I; i++) {
            double g = 0, u = 0;
            for (int j = 0; j < D; j++) {
                g += (double)Wg[(e * I + i) * D + j] * xn[j];
                u += (double)Wu[(e * I + i) * D + j] * xn[j];
            }
            hr[(size_t)s * I + i] = g / (1 + exp(-g)) * u;
        }
        for (int d = 0; d < D; d++) {
            double a = 0;
            for (int i = 0; i < I; i++) a += (double)Wd[(e * D + d) * I + i] * hr[(size_t)s * I + i];
            yr[(size_t)(s / K) * D + d] += w[s] * a;
        }
    }
    float *hp = malloc(sizeof(float) * S * I); /* the dispatched Hm in slot order */
    for (int s = 0; s < S; s++) memcpy(hp + (size_t)s * I, Hm + (size_t)ros[s] * I, sizeof(float) * I);
    double ey = test_rel_err(y, y2, (size_t)N * D), eh = test_rel_err(h, hp, (size_t)S * I);
    double ery = rel_err_d(y, yr, (size_t)N * D), erh = rel_err_d(h, hr, (size_t)S * I);
    fprintf(stderr, "    N %d K %d E %d D %d I %d%s: vs dispatch y %.2g h %.2g, vs double y %.2g h %.2g\n", N, K, E, D,
            I, sh.repeat_in_row ? " (repeats in rows)" : "", ey, eh, ery, erh);
    CHECKF(ey <= 1e-5 && eh <= 1e-5, "N %d K %d E %d D %d I %d: vs dispatched path y %.3g h %.3g", N, K, E, D, I, ey, eh);
    CHECKF(ery <= 1e-5 && erh <= 1e-5, "N %d K %d E %d D %d I %d: vs double y %.3g h %.3g", N, K, E, D, I, ery, erh);
    /* the same bits on one thread as on two */
    float *y1 = nans((size_t)N * D), *h1 = nans((size_t)S * I);
    int nt = omp_get_max_threads();
    omp_set_num_threads(nt > 1 ? 1 : 2);
    o->moe_experts_small(y1, h1, x, idx, w, Wg, Wu, Wd, N, D, I, K);
    omp_set_num_threads(nt);
    CHECKF(!memcmp(y1, y, sizeof(float) * N * D) && !memcmp(h1, h, sizeof(float) * S * I),
           "N %d K %d D %d I %d: results depend on the thread count", N, K, D, I);
    void *bufs[] = {x, w, Wg, Wu, Wd, idx, y, h, ros, sor, off, Xp, Yp, G, U, Hm, y2, yr, hr, hp, y1, h1};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) free(bufs[i]);
}

TEST(ops_moe_experts_small_matches_dispatch) {
    CrRng r;
    cr_rng_init(&r, 7, 0x5A11, 0);
    static const Shape shapes[] = {
        {1, 6, 64, 64, 44, 0},     /* one decode row, Lite's E and K */
        {7, 6, 64, 48, 40, 0},     /* 42 slots over 64 experts: some shared */
        {12, 3, 4, 17, 9, 0},      /* 36 slots over 4 experts: every expert many times; odd D, I */
        {5, 3, 2, 33, 21, 1},      /* repeats within a row */
        {1, 1, 3, 8, 5, 0},        /* one slot */
        {3, 2, 5, 1000, 300, 0},   /* blocked GEMMs and OpenMP loops */
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) check_shape(t_, &r, shapes[i]);
}

TEST(ops_moe_experts_small_empty) {
    /* K = 0 or I = 0: y is the empty sum, 0; nothing read from the weights */
    const Ops *o = ops_cpu();
    float x[2 * 3] = {1, 2, 3, 4, 5, 6}, y[2 * 3], h[1];
    for (int i = 0; i < 6; i++) y[i] = NAN;
    o->moe_experts_small(y, h, x, NULL, NULL, NULL, NULL, NULL, 2, 3, 4, 0);
    for (int i = 0; i < 6; i++) CHECK(y[i] == 0.0f);
    for (int i = 0; i < 6; i++) y[i] = NAN;
    int32_t idx[2] = {0, 0};
    float w[2] = {1, 1};
    o->moe_experts_small(y, h, x, idx, w, NULL, NULL, NULL, 2, 3, 0, 1);
    for (int i = 0; i < 6; i++) CHECK(y[i] == 0.0f);
}

/* The CPU table with the two paths' entry points counted, so the test knows which ran. */
static int g_small_calls, g_permute_calls;
static void count_small(float *y, float *h, const float *x, const int32_t *idx, const float *w, const float *Wg,
                        const float *Wu, const float *Wd, int N, int D, int I, int K) {
    g_small_calls++;
    ops_cpu()->moe_experts_small(y, h, x, idx, w, Wg, Wu, Wd, N, D, I, K);
}
static void count_permute(float *Xp, int32_t *ros, int32_t *sor, int32_t *off, const float *x, const int32_t *idx,
                          int N, int D, int E, int K) {
    g_permute_calls++;
    ops_cpu()->moe_permute(Xp, ros, sor, off, x, idx, N, D, E, K);
}

/* model_ffn_forward_infer_ex on N rows of every MoE layer: the small op (default
 * threshold, 64 slots) against the forced dispatch, outputs and recorded experts; and
 * which path ran: N*K <= 64 small, above dispatch, CRUCIBLE_MOE_SMALL_SLOTS=0 dispatch. */
TEST(model_ffn_infer_small_path_matches_dispatch) {
    static Ops counted;
    counted = *ops_cpu();
    counted.moe_experts_small = count_small;
    counted.moe_permute = count_permute;
    ModelConfig cfg;
    CHECK(tiny_config(&cfg, (TinyOpts){.n_shared = 1}) == 0);
    CrError e;
    Model *m = model_create_ops(&cfg, &counted, &e);
    if (!m) { CHECK(0); return; }
    model_init_random(m, 31);
    int D = cfg.hidden_size, K = cfg.num_experts_per_tok, L = cfg.num_hidden_layers;
    static const int Ns[] = {1, 2, 7, 21, 22}; /* K = 3: 3 .. 63 slots, then 66 */
    for (size_t c = 0; c < sizeof Ns / sizeof *Ns; c++) {
        int N = Ns[c], small = N * K <= 64;
        float *x = malloc(sizeof(float) * N * D), *a = malloc(sizeof(float) * N * D), *b = malloc(sizeof(float) * N * D);
        int32_t *ea = malloc(sizeof(int32_t) * N * K), *eb = malloc(sizeof(int32_t) * N * K);
        fd_fill(x, (size_t)N * D, 40 + (int)c, 1.0f);
        for (int l = 0; l < L; l++) {
            if (!model_layer_is_moe(&cfg, l)) continue;
            CHECK(unsetenv("CRUCIBLE_MOE_SMALL_SLOTS") == 0);
            g_small_calls = g_permute_calls = 0;
            model_ffn_forward_infer_ex(m, l, x, N, a, ea);
            CHECKF(g_small_calls == small && g_permute_calls == !small, "layer %d, %d rows: small %d, dispatch %d calls",
                   l, N, g_small_calls, g_permute_calls);
            CHECK(setenv("CRUCIBLE_MOE_SMALL_SLOTS", "0", 1) == 0);
            g_small_calls = g_permute_calls = 0;
            model_ffn_forward_infer_ex(m, l, x, N, b, eb);
            CHECKF(g_small_calls == 0 && g_permute_calls == 1, "layer %d, %d rows, threshold 0: small %d, dispatch %d",
                   l, N, g_small_calls, g_permute_calls);
            double err = test_rel_err(a, b, (size_t)N * D);
            CHECKF(err <= 1e-5, "layer %d, %d rows: small path vs dispatch %.3g", l, N, err);
            CHECKF(!memcmp(ea, eb, sizeof(int32_t) * N * K), "layer %d, %d rows: recorded experts differ", l, N);
        }
        free(x), free(a), free(b), free(ea), free(eb);
    }
    unsetenv("CRUCIBLE_MOE_SMALL_SLOTS");
    model_free(m);
}

/* A backend's Ops.moe_experts_small_slots moves model.c's threshold (the CUDA table's
 * answer under CRUCIBLE_CUDA_MOE_SMALL=indexed); 0 keeps the default (64);
 * CRUCIBLE_MOE_SMALL_SLOTS still overrides it. K = 3 on the tiny model. */
static long slots_answer;
static long backend_slots(void) { return slots_answer; }
TEST(model_ffn_infer_small_slots_from_backend) {
    static Ops counted;
    counted = *ops_cpu();
    counted.moe_experts_small = count_small;
    counted.moe_permute = count_permute;
    counted.moe_experts_small_slots = backend_slots;
    ModelConfig cfg;
    CHECK(tiny_config(&cfg, (TinyOpts){.n_shared = 1}) == 0);
    CrError e;
    Model *m = model_create_ops(&cfg, &counted, &e);
    if (!m) { CHECK(0); return; }
    model_init_random(m, 32);
    int D = cfg.hidden_size, K = cfg.num_experts_per_tok, layer = -1;
    for (int l = 0; l < cfg.num_hidden_layers && layer < 0; l++)
        if (model_layer_is_moe(&cfg, l)) layer = l;
    CHECK(layer >= 0);
    CHECK(unsetenv("CRUCIBLE_MOE_SMALL_SLOTS") == 0);
    /* {backend answer, env override or NULL, rows, small path expected} */
    static const struct { long answer; const char *env; int N, small; } cases[] = {
        {0, NULL, 21, 1},    /* 63 slots <= the default 64 */
        {0, NULL, 22, 0},    /* 66 > 64 */
        {30, NULL, 10, 1},   /* 30 <= 30 */
        {30, NULL, 11, 0},   /* 33 > 30 */
        {4096, NULL, 22, 1}, /* 66 <= 4096 */
        {4096, NULL, 1365, 1},
        {4096, NULL, 1366, 0}, /* 4098 > 4096 */
        {4096, "0", 1, 0},   /* the variable overrides the backend */
        {30, "64", 21, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        int N = cases[c].N;
        slots_answer = cases[c].answer;
        if (cases[c].env) CHECK(setenv("CRUCIBLE_MOE_SMALL_SLOTS", cases[c].env, 1) == 0);
        else CHECK(unsetenv("CRUCIBLE_MOE_SMALL_SLOTS") == 0);
        float *x = malloc(sizeof(float) * N * D), *y = malloc(sizeof(float) * N * D);
        fd_fill(x, (size_t)N * D, 50 + (int)c, 1.0f);
        g_small_calls = g_permute_calls = 0;
        model_ffn_forward_infer(m, layer, x, N, y);
        CHECKF(g_small_calls == cases[c].small && g_permute_calls == !cases[c].small,
               "backend answer %ld, CRUCIBLE_MOE_SMALL_SLOTS %s, %d slots: small %d, dispatch %d calls",
               cases[c].answer, cases[c].env ? cases[c].env : "unset", N * K, g_small_calls, g_permute_calls);
        free(x), free(y);
    }
    unsetenv("CRUCIBLE_MOE_SMALL_SLOTS");
    model_free(m);
}
