/* tests/cuda/test_ops_cuda.c — every op of model/ops.h on the CUDA backend against the
 * CPU backend (the specification), on fresh random inputs each run (seed printed;
 * CRUCIBLE_TEST_SEED=n repeats one). Outputs are poisoned with NaN before each CUDA
 * call, so an element the kernel forgot to write fails the comparison. Error measure:
 * ||cuda - cpu|| / ||cpu|| per output; limits 1e-5 for the fp32 table (ops_cuda) and
 * 1e-2 for the bf16 tensor-core table (ops_cuda_bf16, GEMM-bearing ops only).
 * Integer outputs (expert ids, permutations, offsets) must match exactly.
 * Without a GPU every test SKIPs saying so; without nvcc at build time, one test
 * SKIPs saying CUDA was not built. */
#include "tests/test.h"

#ifdef CRUCIBLE_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/rng.h"
#include "model/adamw.h"
#include "model/cuda/ops_cuda.h"
#include "model/ops.h"

#define TOL_FP32 1e-5
#define TOL_BF16 1e-2

/* ---- harness ---------------------------------------------------------------------- */

typedef struct H {
    const Ops *cpu, *gpu;
    CrRng rng;
    TestCtx *t;
} H;

/* 0 = ready; 1 = skipped (no device). */
static int h_init(H *h, TestCtx *t, const char *name) {
    h->t = t;
    h->cpu = ops_cpu();
    if (crucible_cuda_device_count() <= 0) return 1;
    h->gpu = ops_cuda();
    uint64_t seed = test_random_seed(name);
    cr_rng_init(&h->rng, seed, 0xC0DA, 0);
    return 0;
}
#define CUDA_PRELUDE(name)                                                             \
    H h_;                                                                              \
    if (h_init(&h_, t_, #name)) SKIP("no CUDA device visible: CUDA op test not run"); \
    H *h = &h_

static float *rnd(H *h, size_t n, float scale) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = (float)(cr_rng_normal(&h->rng) * scale);
    return x;
}
static float *fcopy(const float *x, size_t n) {
    float *y = malloc(sizeof(float) * (n ? n : 1));
    memcpy(y, x, sizeof(float) * n);
    return y;
}
/* Device copy of host data. */
static void *dput(H *h, const void *x, size_t bytes) {
    void *d = h->gpu->alloc(bytes);
    h->gpu->upload(d, x, bytes);
    return d;
}
/* Device buffer of n floats full of NaN (the poison). */
static float *dnan(H *h, size_t n) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    float *d = dput(h, x, sizeof(float) * n);
    free(x);
    return d;
}
/* Device int32 buffer poisoned with -12345. */
static int32_t *dbadi(H *h, size_t n) {
    int32_t *x = malloc(sizeof(int32_t) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = -12345;
    int32_t *d = dput(h, x, sizeof(int32_t) * n);
    free(x);
    return d;
}
static void dpoison(H *h, float *d, size_t n) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    h->gpu->upload(d, x, sizeof(float) * n);
    free(x);
}

/* Compares device floats with the CPU reference; returns the error. */
static double cmpf(H *h, const char *what, const float *d, const float *ref, size_t n, double tol) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    h->gpu->download(x, d, sizeof(float) * n);
    double e = test_rel_err(x, ref, n);
    TestCtx *t_ = h->t;
    CHECKF(e <= tol, "%s: normalised error %.3g > %.1g (%zu values)", what, e, tol, n);
    fprintf(stderr, "    %-40s err %.3g\n", what, e);
    free(x);
    return e;
}
static void cmpi(H *h, const char *what, const int32_t *d, const int32_t *ref, size_t n) {
    int32_t *x = malloc(sizeof(int32_t) * (n ? n : 1));
    h->gpu->download(x, d, sizeof(int32_t) * n);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < n; i++)
        if (x[i] != ref[i] && !bad++) first = i;
    TestCtx *t_ = h->t;
    CHECKF(bad == 0, "%s: %zu of %zu differ (first at %zu: %d vs %d)", what, bad, n, first, bad ? x[first] : 0,
           bad ? ref[first] : 0);
    free(x);
}
static int rndi(H *h, int lo, int hi) { return lo + (int)(cr_rng_u64(&h->rng) % (uint64_t)(hi - lo + 1)); }

/* ---- GEMM --------------------------------------------------------------------------- */

/* tight: leading dimensions equal to the rows (16-byte aligned rows when the row lengths
 * are multiples of 4) and, with beta 0, C poisoned with NaN; else padded rows. */
static void gemm_case_ld(H *h, const Ops *g, double tol, int ta, int tb, int M, int N, int K, float alpha, float beta,
                         int tight) {
    int lda = (ta ? M : K) + (tight ? 0 : 3), ldb = (tb ? K : N) + (tight ? 0 : 1), ldc = N + (tight ? 0 : 2);
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = rnd(h, na, 1), *B = rnd(h, nb, 1), *C = rnd(h, nc, 1);
    if (tight && beta == 0.0f)
        for (size_t i = 0; i < nc; i++) C[i] = NAN;
    float *Cref = fcopy(C, nc);
    float *dA = dput(h, A, 4 * na), *dB = dput(h, B, 4 * nb), *dC = dput(h, C, 4 * nc);
    h->cpu->gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cref, ldc);
    g->gemm(ta, tb, M, N, K, alpha, dA, lda, dB, ldb, beta, dC, ldc);
    char what[96];
    snprintf(what, sizeof what, "%s gemm ta=%d tb=%d %dx%dx%d b=%g", g->name, ta, tb, M, N, K, beta);
    cmpf(h, what, dC, Cref, nc, tol);
    g->free(dA), g->free(dB), g->free(dC);
    free(A), free(B), free(C), free(Cref);
}
static void gemm_case(H *h, const Ops *g, double tol, int ta, int tb, int M, int N, int K, float alpha, float beta) {
    gemm_case_ld(h, g, tol, ta, tb, M, N, K, alpha, beta, 0);
}

static void body_cuda_ops_gemm(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_gemm);
    const Ops *tables[2] = {h->gpu, ops_cuda_bf16()};
    double tols[2] = {TOL_FP32, TOL_BF16};
    for (int k = 0; k < 2; k++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) {
                gemm_case(h, tables[k], tols[k], ta, tb, rndi(h, 1, 97), rndi(h, 1, 130), rndi(h, 1, 300), 0.7f, 0.0f);
                gemm_case(h, tables[k], tols[k], ta, tb, rndi(h, 1, 97), rndi(h, 1, 130), rndi(h, 1, 300), 1.0f, 1.0f);
            }
    /* 1..8 rows of A times B^T (a decode step's linear layers): model/cuda/gemv_small.cu,
     * fp32 accumulation in both tables, float4 rows (tight, K % 4 == 0) and scalar ones;
     * 9 rows go to cuBLAS again. */
    for (int k = 0; k < 2; k++)
        for (int M = 1; M <= 9; M++) {
            double tol = M <= 8 ? TOL_FP32 : tols[k];
            gemm_case_ld(h, tables[k], tol, 0, 1, M, rndi(h, 1, 700), 4 * rndi(h, 1, 600), 1.0f, 0.0f, 1);
            gemm_case_ld(h, tables[k], tol, 0, 1, M, rndi(h, 1, 700), rndi(h, 1, 2100), 0.7f, 1.0f, 0);
        }
    gemm_case_ld(h, tables[1], TOL_FP32, 0, 1, 1, 102400 / 16, 2048, 1.0f, 0.0f, 1);  /* an LM-head slice */
    /* K = 0: C = beta C, and beta = 0 clears a NaN-poisoned C. */
    int M = 5, N = 7;
    float *dC = dnan(h, (size_t)M * N), zero[35] = {0};
    h->gpu->gemm(0, 0, M, N, 0, 1.0f, dC, N, dC, N, 0.0f, dC, N);
    cmpf(h, "gemm K=0 beta=0 clears", dC, zero, 35, 0);
    h->gpu->free(dC);
}

/* gemm_batched (MLA's per-head products: strided views into wider rows) and copy2d. */
static void batched_case(H *h, const Ops *g, double tol, int ta, int tb) {
    int M = rndi(h, 1, 40), N = rndi(h, 1, 70), K = rndi(h, 1, 90), batch = rndi(h, 1, 17);
    /* each entry is a column slice of a row-major [rows, batch * width] matrix */
    int lda = batch * (ta ? M : K), ldb = batch * (tb ? K : N), ldc = batch * N;
    long long sA = ta ? M : K, sB = tb ? K : N, sC = N;
    size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb, nc = (size_t)M * ldc;
    float *A = rnd(h, na, 1), *B = rnd(h, nb, 1), *C = rnd(h, nc, 1);
    float *dA = dput(h, A, 4 * na), *dB = dput(h, B, 4 * nb), *dC = dput(h, C, 4 * nc);
    h->cpu->gemm_batched(ta, tb, M, N, K, 0.9f, A, lda, sA, B, ldb, sB, 0.5f, C, ldc, sC, batch);
    g->gemm_batched(ta, tb, M, N, K, 0.9f, dA, lda, sA, dB, ldb, sB, 0.5f, dC, ldc, sC, batch);
    char what[96];
    snprintf(what, sizeof what, "gemm_batched %s tA%d tB%d x%d", g->name, ta, tb, batch);
    cmpf(h, what, dC, C, nc, tol);
    g->free(dA), g->free(dB), g->free(dC);
    free(A), free(B), free(C);
}

static void body_cuda_ops_gemm_batched_copy2d(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_gemm_batched_copy2d);
    const Ops *tables[2] = {h->gpu, ops_cuda_bf16()};
    double tols[2] = {TOL_FP32, TOL_BF16};
    for (int k = 0; k < 2; k++)
        for (int ta = 0; ta < 2; ta++)
            for (int tb = 0; tb < 2; tb++) batched_case(h, tables[k], tols[k], ta, tb);
    /* copy2d: a column block of a wide matrix into the middle of another; the rest of dst
     * must keep its (NaN) contents, so only the block is compared */
    int rows = rndi(h, 1, 300), cols = rndi(h, 1, 64), lds = cols + rndi(h, 0, 50), ldd = cols + rndi(h, 0, 50);
    size_t ns = (size_t)rows * lds, nd = (size_t)rows * ldd;
    float *S = rnd(h, ns, 1), *D = malloc(sizeof(float) * nd), *got = malloc(sizeof(float) * nd);
    for (size_t i = 0; i < nd; i++) D[i] = NAN;
    float *dS = dput(h, S, 4 * ns), *dD = dnan(h, nd);
    h->cpu->copy2d(D, ldd, S, lds, rows, cols);
    h->gpu->copy2d(dD, ldd, dS, lds, rows, cols);
    h->gpu->download(got, dD, 4 * nd);
    size_t bad = 0;
    for (int i = 0; i < rows; i++)
        for (int j = 0; j < ldd; j++) {
            float a = got[(size_t)i * ldd + j], b = D[(size_t)i * ldd + j];
            bad += j < cols ? a != b : !isnan(a);
        }
    CHECKF(bad == 0, "copy2d: %zu of %zu values wrong (rows %d cols %d lds %d ldd %d)", bad, nd, rows, cols, lds, ldd);
    h->gpu->free(dS), h->gpu->free(dD);
    free(S), free(D), free(got);
}

/* ---- memory and elementwise --------------------------------------------------------- */

static void body_cuda_ops_elementwise(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_elementwise);
    const Ops *g = h->gpu, *c = h->cpu;
    size_t n = (size_t)rndi(h, 1000, 300000);
    float *x = rnd(h, n, 1), *y = rnd(h, n, 1), *u = rnd(h, n, 1), *gg = rnd(h, n, 2);
    float *dx = dput(h, x, 4 * n), *dy = dput(h, y, 4 * n);
    c->add(y, x, n);
    g->add(dy, dx, n);
    cmpf(h, "add", dy, y, n, TOL_FP32);
    c->scale(y, -1.7f, n);
    g->scale(dy, -1.7f, n);
    cmpf(h, "scale", dy, y, n, TOL_FP32);
    /* copy / zero */
    float *dz = dnan(h, n);
    g->copy(dz, dy, 4 * n);
    cmpf(h, "copy", dz, y, n, 0);
    g->zero(dz, 4 * n);
    float *zeros = calloc(n, sizeof(float));
    cmpf(h, "zero", dz, zeros, n, 0);
    /* count_nonfinite with planted NaN / Inf at random places */
    size_t planted = (size_t)rndi(h, 0, 9);
    for (size_t i = 0; i < planted; i++) x[cr_rng_u64(&h->rng) % n] = i % 2 ? INFINITY : NAN;
    size_t want = 0, got = 99;
    c->count_nonfinite(x, n, &want);
    g->upload(dx, x, 4 * n);
    g->count_nonfinite(dx, n, &got);
    CHECKF(got == want, "count_nonfinite: cuda %zu, cpu %zu", got, want);
    /* SwiGLU */
    float *hm = malloc(4 * n), *dg = malloc(4 * n), *du = malloc(4 * n);
    float *dgg = dput(h, gg, 4 * n), *du_in = dput(h, u, 4 * n), *dh = dnan(h, n), *ddg = dnan(h, n),
          *ddu = dnan(h, n);
    c->swiglu_forward(hm, gg, u, n);
    g->swiglu_forward(dh, dgg, du_in, n);
    cmpf(h, "swiglu_forward", dh, hm, n, TOL_FP32);
    float *dhin = rnd(h, n, 1), *d_dhin = dput(h, dhin, 4 * n);
    c->swiglu_backward(dg, du, dhin, gg, u, n);
    g->swiglu_backward(ddg, ddu, d_dhin, dgg, du_in, n);
    cmpf(h, "swiglu_backward dg", ddg, dg, n, TOL_FP32);
    cmpf(h, "swiglu_backward du", ddu, du, n, TOL_FP32);
    void *bufs[] = {dx, dy, dz, dgg, du_in, dh, ddg, ddu, d_dhin};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) g->free(bufs[i]);
    free(x), free(y), free(u), free(gg), free(zeros), free(hm), free(dg), free(du), free(dhin);
}

static void body_cuda_ops_adamw_sumsq(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_adamw_sumsq);
    size_t n = (size_t)rndi(h, 1000, 200000);
    float *p = rnd(h, n, 1), *gr = rnd(h, n, 0.1f), *m = rnd(h, n, 0.01f), *v = rnd(h, n, 0.01f);
    for (size_t i = 0; i < n; i++) v[i] = v[i] * v[i];
    float *dp = dput(h, p, 4 * n), *dgr = dput(h, gr, 4 * n), *dm = dput(h, m, 4 * n), *dv = dput(h, v, 4 * n);
    AdamWConfig cfg = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f};
    for (int step = 1; step <= 3; step++) {
        adamw_update(&cfg, step, 3e-4f, step != 2, p, gr, m, v, n);
        ops_cuda_adamw_update(cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay, step, 3e-4f, step != 2, dp, dgr, dm,
                              dv, n);
    }
    cmpf(h, "adamw p (3 steps)", dp, p, n, TOL_FP32);
    cmpf(h, "adamw m", dm, m, n, TOL_FP32);
    cmpf(h, "adamw v", dv, v, n, TOL_FP32);
    double ref = 0;
    for (size_t i = 0; i < n; i++) ref += (double)gr[i] * gr[i];
    double got = ops_cuda_sumsq(dgr, n);
    CHECKF(fabs(got - ref) <= 1e-12 * ref, "sumsq %.17g vs %.17g", got, ref);
    h->gpu->free(dp), h->gpu->free(dgr), h->gpu->free(dm), h->gpu->free(dv);
    free(p), free(gr), free(m), free(v);
}

/* ---- embedding, RMSNorm, RoPE ------------------------------------------------------- */

static void body_cuda_ops_embedding(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_embedding);
    const Ops *g = h->gpu, *c = h->cpu;
    int Vv = rndi(h, 5, 300), D = rndi(h, 1, 200), N = rndi(h, 1, 700);
    int32_t *tok = malloc(sizeof(int32_t) * N);
    for (int i = 0; i < N; i++) tok[i] = rndi(h, 0, Vv - 1);  /* repeats likely */
    float *table = rnd(h, (size_t)Vv * D, 1), *out = malloc(sizeof(float) * N * D);
    float *dtable = rnd(h, (size_t)Vv * D, 1), *dout = rnd(h, (size_t)N * D, 1);
    float *d_table = dput(h, table, 4 * (size_t)Vv * D), *d_out = dnan(h, (size_t)N * D);
    int32_t *d_tok = dput(h, tok, 4 * (size_t)N);
    float *d_dtable = dput(h, dtable, 4 * (size_t)Vv * D), *d_dout = dput(h, dout, 4 * (size_t)N * D);
    c->embedding_forward(out, table, tok, N, D);
    g->embedding_forward(d_out, d_table, d_tok, N, D);
    cmpf(h, "embedding_forward", d_out, out, (size_t)N * D, 0);
    c->embedding_backward(dtable, dout, tok, N, D);
    g->embedding_backward(d_dtable, d_dout, d_tok, N, D);
    cmpf(h, "embedding_backward (+=)", d_dtable, dtable, (size_t)Vv * D, TOL_FP32);
    g->free(d_table), g->free(d_out), g->free(d_tok), g->free(d_dtable), g->free(d_dout);
    free(tok), free(table), free(out), free(dtable), free(dout);
}

static void body_cuda_ops_rmsnorm(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_rmsnorm);
    const Ops *g = h->gpu, *c = h->cpu;
    int N = rndi(h, 1, 600), D = rndi(h, 1, 2100), ldx = D + rndi(h, 0, 5), ldo = D + rndi(h, 0, 5);
    size_t nx = (size_t)N * ldx, no = (size_t)N * ldo;
    float *x = rnd(h, nx, 2), *w = rnd(h, D, 1), *out = rnd(h, no, 1), *rstd = malloc(4 * (size_t)N);
    float *d_x = dput(h, x, 4 * nx), *d_w = dput(h, w, 4 * (size_t)D), *d_out = dput(h, out, 4 * no);
    float *d_rstd = dnan(h, N);
    dpoison(h, d_out, no);  /* padding columns stay NaN on the device: compare rows only */
    c->rmsnorm_forward(out, ldo, rstd, x, ldx, w, N, D, 1e-6f);
    g->rmsnorm_forward(d_out, ldo, d_rstd, d_x, ldx, d_w, N, D, 1e-6f);
    float *got = malloc(4 * no), *a = malloc(4 * (size_t)N * D), *b = malloc(4 * (size_t)N * D);
    g->download(got, d_out, 4 * no);
    for (int n = 0; n < N; n++) memcpy(a + (size_t)n * D, got + (size_t)n * ldo, 4 * (size_t)D),
                                memcpy(b + (size_t)n * D, out + (size_t)n * ldo, 4 * (size_t)D);
    double e = test_rel_err(a, b, (size_t)N * D);
    CHECKF(e <= TOL_FP32, "rmsnorm_forward out err %.3g", e);
    fprintf(stderr, "    %-40s err %.3g\n", "rmsnorm_forward out", e);
    cmpf(h, "rmsnorm_forward rstd", d_rstd, rstd, N, TOL_FP32);
    /* backward: dx += (strided), dw += */
    int lddx = D + rndi(h, 0, 3), lddo = D + rndi(h, 0, 3);
    float *dx = rnd(h, (size_t)N * lddx, 1), *dw = rnd(h, D, 1), *dout = rnd(h, (size_t)N * lddo, 1);
    float *d_dx = dput(h, dx, 4 * (size_t)N * lddx), *d_dw = dput(h, dw, 4 * (size_t)D),
          *d_dout = dput(h, dout, 4 * (size_t)N * lddo);
    c->rmsnorm_backward(dx, lddx, dw, dout, lddo, x, ldx, w, rstd, N, D);
    g->rmsnorm_backward(d_dx, lddx, d_dw, d_dout, lddo, d_x, ldx, d_w, d_rstd, N, D);
    cmpf(h, "rmsnorm_backward dx", d_dx, dx, (size_t)N * lddx, TOL_FP32);
    cmpf(h, "rmsnorm_backward dw", d_dw, dw, D, TOL_FP32);
    void *bufs[] = {d_x, d_w, d_out, d_rstd, d_dx, d_dw, d_dout};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) g->free(bufs[i]);
    free(x), free(w), free(out), free(rstd), free(got), free(a), free(b), free(dx), free(dw), free(dout);
}

static void body_cuda_ops_rope(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_rope);
    const Ops *g = h->gpu, *c = h->cpu;
    int N = rndi(h, 1, 500), heads = rndi(h, 1, 16), dr = 2 * rndi(h, 1, 32), head_stride = dr + rndi(h, 0, 130);
    int ld = heads * head_stride + rndi(h, 0, 7);
    size_t nx = (size_t)N * ld;
    float *x = rnd(h, nx, 1), *inv = malloc(4 * (size_t)(dr / 2));
    for (int i = 0; i < dr / 2; i++) inv[i] = powf(10000.0f, -2.0f * i / dr) * 0.37f;
    int32_t *pos = malloc(4 * (size_t)N);
    for (int i = 0; i < N; i++) pos[i] = rndi(h, 0, 16000);
    float *d_x = dput(h, x, 4 * nx), *d_inv = dput(h, inv, 4 * (size_t)(dr / 2));
    int32_t *d_pos = dput(h, pos, 4 * (size_t)N);
    c->rope_forward(x, ld, head_stride, heads, N, dr, pos, inv, 1.13f);
    g->rope_forward(d_x, ld, head_stride, heads, N, dr, d_pos, d_inv, 1.13f);
    cmpf(h, "rope_forward", d_x, x, nx, TOL_FP32);
    c->rope_backward(x, ld, head_stride, heads, N, dr, pos, inv, 1.13f);
    g->rope_backward(d_x, ld, head_stride, heads, N, dr, d_pos, d_inv, 1.13f);
    cmpf(h, "rope_backward", d_x, x, nx, TOL_FP32);
    g->free(d_x), g->free(d_inv), g->free(d_pos);
    free(x), free(inv), free(pos);
}

/* ---- attention and MLA assembly ------------------------------------------------------ */

static void attention_case(H *h, const Ops *g, double tol, int N, int n_seqs, int H_, int dqk, int dv) {
    const Ops *c = h->cpu;
    int32_t *cu = malloc(4 * (size_t)(n_seqs + 1));
    cu[0] = 0;
    for (int s = 1; s < n_seqs; s++) cu[s] = cu[s - 1] + 1 + (int)(cr_rng_u64(&h->rng) % (uint64_t)(2 * N / n_seqs));
    if (cu[n_seqs - 1] >= N) N = cu[n_seqs - 1] + 1;
    cu[n_seqs] = N;
    size_t nq = (size_t)N * H_ * dqk, nv = (size_t)N * H_ * dv, nl = (size_t)N * H_;
    float *Q = rnd(h, nq, 1), *K = rnd(h, nq, 1), *V = rnd(h, nv, 1), *O = malloc(4 * nv), *lse = malloc(4 * nl);
    float scale = 1.0f / sqrtf((float)dqk) * 1.3f;
    float *dQ_ = dput(h, Q, 4 * nq), *dK_ = dput(h, K, 4 * nq), *dV_ = dput(h, V, 4 * nv);
    int32_t *dcu = dput(h, cu, 4 * (size_t)(n_seqs + 1));
    float *dO_ = dnan(h, nv), *dl = dnan(h, nl);
    c->attention_forward(O, lse, Q, K, V, cu, n_seqs, N, H_, dqk, dv, scale);
    g->attention_forward(dO_, dl, dQ_, dK_, dV_, dcu, n_seqs, N, H_, dqk, dv, scale);
    char what[96];
    snprintf(what, sizeof what, "%s attention_forward O N=%d S=%d H=%d %d/%d", g->name, N, n_seqs, H_, dqk, dv);
    cmpf(h, what, dO_, O, nv, tol);
    cmpf(h, "attention_forward lse", dl, lse, nl, tol);
    float *gO = rnd(h, nv, 1), *gQ = malloc(4 * nq), *gK = malloc(4 * nq), *gV = malloc(4 * nv);
    float *d_gO = dput(h, gO, 4 * nv), *d_gQ = dnan(h, nq), *d_gK = dnan(h, nq), *d_gV = dnan(h, nv);
    c->attention_backward(gQ, gK, gV, gO, O, lse, Q, K, V, cu, n_seqs, N, H_, dqk, dv, scale);
    g->attention_backward(d_gQ, d_gK, d_gV, d_gO, dO_, dl, dQ_, dK_, dV_, dcu, n_seqs, N, H_, dqk, dv, scale);
    cmpf(h, "attention_backward dQ", d_gQ, gQ, nq, tol);
    cmpf(h, "attention_backward dK", d_gK, gK, nq, tol);
    cmpf(h, "attention_backward dV", d_gV, gV, nv, tol);
    /* Determinism: a second backward is bit-identical. */
    float *a = malloc(4 * nq), *b = malloc(4 * nq);
    g->download(a, d_gK, 4 * nq);
    g->attention_backward(d_gQ, d_gK, d_gV, d_gO, dO_, dl, dQ_, dK_, dV_, dcu, n_seqs, N, H_, dqk, dv, scale);
    g->download(b, d_gK, 4 * nq);
    TestCtx *t_ = h->t;
    CHECKF(memcmp(a, b, 4 * nq) == 0, "attention_backward dK not bit-identical across runs");
    void *bufs[] = {dQ_, dK_, dV_, dcu, dO_, dl, d_gO, d_gQ, d_gK, d_gV};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) g->free(bufs[i]);
    free(cu), free(Q), free(K), free(V), free(O), free(lse), free(gO), free(gQ), free(gK), free(gV), free(a), free(b);
}

static void body_cuda_ops_attention(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_attention);
    /* chunked-GEMM attention (fp32 and bf16 tables) and the fused flash kernels */
    const Ops *tables[3] = {h->gpu, ops_cuda_flash(), ops_cuda_bf16()};
    double tols[3] = {TOL_FP32, TOL_FP32, TOL_BF16};
    for (int k = 0; k < 3; k++) {
        const Ops *g = tables[k];
        attention_case(h, g, tols[k], rndi(h, 1, 40), 1, rndi(h, 1, 3), rndi(h, 1, 40), rndi(h, 1, 40)); /* odd dims */
        attention_case(h, g, tols[k], rndi(h, 100, 300), rndi(h, 2, 6), rndi(h, 1, 4), 24, 16);          /* varlen */
        attention_case(h, g, tols[k], rndi(h, 150, 400), rndi(h, 1, 3), 2, 192, 128);                    /* MLA */
    }
    /* a sequence longer than one chunk of query rows (H 16: chunks of 1024 rows up to
     * 2048 keys; H * C * len above the scratch cap halves C) */
    attention_case(h, h->gpu, TOL_FP32, rndi(h, 2100, 2600), 1, 16, 24, 16);
}

static void body_cuda_ops_mla_kv_assemble(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_mla_kv_assemble);
    const Ops *g = h->gpu, *c = h->cpu;
    int N = rndi(h, 1, 300), H_ = rndi(h, 1, 8), dn = rndi(h, 1, 40), dr = 2 * rndi(h, 1, 16), dv = rndi(h, 1, 40);
    int ldkpe = dr + rndi(h, 0, 600);
    size_t nkv = (size_t)N * H_ * (dn + dv), nk = (size_t)N * H_ * (dn + dr), nv = (size_t)N * H_ * dv,
           np = (size_t)N * ldkpe;
    float *kv = rnd(h, nkv, 1), *kpe = rnd(h, np, 1), *K = malloc(4 * nk), *V = malloc(4 * nv);
    float *d_kv = dput(h, kv, 4 * nkv), *d_kpe = dput(h, kpe, 4 * np), *d_K = dnan(h, nk), *d_V = dnan(h, nv);
    c->mla_kv_assemble_forward(K, V, kv, kpe, ldkpe, N, H_, dn, dr, dv);
    g->mla_kv_assemble_forward(d_K, d_V, d_kv, d_kpe, ldkpe, N, H_, dn, dr, dv);
    cmpf(h, "mla_kv_assemble_forward K", d_K, K, nk, 0);
    cmpf(h, "mla_kv_assemble_forward V", d_V, V, nv, 0);
    float *dK = rnd(h, nk, 1), *dV = rnd(h, nv, 1), *dkv = malloc(4 * nkv), *dkpe = fcopy(kpe, np);
    float *d_dK = dput(h, dK, 4 * nk), *d_dV = dput(h, dV, 4 * nv), *d_dkv = dnan(h, nkv), *d_dkpe = dput(h, kpe, 4 * np);
    c->mla_kv_assemble_backward(dkv, dkpe, ldkpe, dK, dV, N, H_, dn, dr, dv);
    g->mla_kv_assemble_backward(d_dkv, d_dkpe, ldkpe, d_dK, d_dV, N, H_, dn, dr, dv);
    cmpf(h, "mla_kv_assemble_backward dkv", d_dkv, dkv, nkv, 0);
    cmpf(h, "mla_kv_assemble_backward dkpe (strided)", d_dkpe, dkpe, np, TOL_FP32);
    void *bufs[] = {d_kv, d_kpe, d_K, d_V, d_dK, d_dV, d_dkv, d_dkpe};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) g->free(bufs[i]);
    free(kv), free(kpe), free(K), free(V), free(dK), free(dV), free(dkv), free(dkpe);
}

/* ---- MoE --------------------------------------------------------------------------- */

static void route_case(H *h, OpsMoeRoute r, int N, int n_seg) {
    const Ops *g = h->gpu, *c = h->cpu;
    int E = r.E, K = r.K;
    size_t nE = (size_t)N * E, nK = (size_t)N * K;
    float *logits = rnd(h, nE, 2), *probs = malloc(4 * nE), *w = malloc(4 * nK);
    int32_t *idx = malloc(4 * nK);
    float *d_logits = dput(h, logits, 4 * nE), *d_probs = dnan(h, nE), *d_w = dnan(h, nK);
    int32_t *d_idx = dbadi(h, nK);
    c->moe_route_forward(probs, idx, w, logits, N, &r);
    g->moe_route_forward(d_probs, d_idx, d_w, d_logits, N, &r);
    char what[96];
    snprintf(what, sizeof what, "moe_route_forward probs E=%d K=%d grp=%d norm=%d", E, K, r.group_limited,
             r.norm_topk_prob);
    cmpf(h, what, d_probs, probs, nE, TOL_FP32);
    cmpi(h, "moe_route_forward idx", d_idx, idx, nK);
    cmpf(h, "moe_route_forward w", d_w, w, nK, TOL_FP32);
    /* aux loss over n_seg segments (the CPU outputs feed both: same idx) */
    int32_t *cu = malloc(4 * (size_t)(n_seg + 1));
    cu[0] = 0;
    for (int s = 1; s < n_seg; s++) cu[s] = cu[s - 1] + 1 + rndi(h, 0, N / n_seg - 1);
    cu[n_seg] = N;
    float *coef = malloc(4 * (size_t)n_seg * E), loss = 0;
    int32_t *seg = malloc(4 * (size_t)N);
    int32_t *d_cu = dput(h, cu, 4 * (size_t)(n_seg + 1)), *d_seg = dbadi(h, N), *d_idx_c = dput(h, idx, 4 * nK);
    float *d_probs_c = dput(h, probs, 4 * nE), *d_coef = dnan(h, (size_t)n_seg * E), *d_loss = dnan(h, 1);
    c->moe_aux_forward(&loss, coef, seg, probs, idx, cu, n_seg, N, E, K, 0.003f);
    g->moe_aux_forward(d_loss, d_coef, d_seg, d_probs_c, d_idx_c, d_cu, n_seg, N, E, K, 0.003f);
    cmpf(h, "moe_aux_forward loss", d_loss, &loss, 1, TOL_FP32);
    cmpf(h, "moe_aux_forward aux_coef", d_coef, coef, (size_t)n_seg * E, TOL_FP32);
    cmpi(h, "moe_aux_forward seg_of_token", d_seg, seg, N);
    /* backward with the aux term */
    float *dw = rnd(h, nK, 1), *dl = malloc(4 * nE);
    float *d_dw = dput(h, dw, 4 * nK), *d_dl = dnan(h, nE), *d_w_c = dput(h, w, 4 * nK);
    c->moe_route_backward(dl, dw, probs, idx, w, coef, 0.8f, seg, N, &r);
    g->moe_route_backward(d_dl, d_dw, d_probs_c, d_idx_c, d_w_c, d_coef, 0.8f, d_seg, N, &r);
    cmpf(h, "moe_route_backward (aux)", d_dl, dl, nE, TOL_FP32);
    c->moe_route_backward(dl, dw, probs, idx, w, NULL, 0, seg, N, &r);
    g->moe_route_backward(d_dl, d_dw, d_probs_c, d_idx_c, d_w_c, NULL, 0, d_seg, N, &r);
    cmpf(h, "moe_route_backward (no aux)", d_dl, dl, nE, TOL_FP32);
    void *bufs[] = {d_logits, d_probs, d_w, d_idx, d_cu, d_seg, d_idx_c, d_probs_c, d_coef, d_loss, d_dw, d_dl, d_w_c};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) g->free(bufs[i]);
    free(logits), free(probs), free(w), free(idx), free(cu), free(coef), free(seg), free(dw), free(dl);
}

/* CRUCIBLE_CUDA_ROUTE=warp against the one-thread kernel on the same device logits: the
 * same bits (moe_select.h's operations), ties and NaNs included; and against the CPU. */
static void route_warp_case(H *h, OpsMoeRoute r, int N) {
    const Ops *g = h->gpu;
    int E = r.E, K = r.K;
    size_t nE = (size_t)N * E, nK = (size_t)N * K;
    float *logits = rnd(h, nE, 2);
    for (size_t i = 0; i < nE; i++) {  /* ties: a third of the logits on a coarse grid; a few NaN rows */
        if (rndi(h, 0, 2) == 0) logits[i] = (float)rndi(h, -2, 2);
        if (i % E == 0 && rndi(h, 0, 30) == 0) logits[i + (size_t)rndi(h, 0, E - 1)] = NAN;
    }
    float *d_logits = dput(h, logits, 4 * nE);
    float *pr[2], *wt[2];
    int32_t *ix[2];
    for (int k = 0; k < 2; k++) {
        float *d_probs = dnan(h, nE), *d_w = dnan(h, nK);
        int32_t *d_idx = dbadi(h, nK);
        if (k) setenv("CRUCIBLE_CUDA_ROUTE", "warp", 1);
        g->moe_route_forward(d_probs, d_idx, d_w, d_logits, N, &r);
        unsetenv("CRUCIBLE_CUDA_ROUTE");
        pr[k] = malloc(4 * nE), wt[k] = malloc(4 * nK), ix[k] = malloc(4 * nK);
        g->download(pr[k], d_probs, 4 * nE), g->download(wt[k], d_w, 4 * nK), g->download(ix[k], d_idx, 4 * nK);
        g->free(d_probs), g->free(d_w), g->free(d_idx);
    }
    TestCtx *t_ = h->t;
    CHECKF(!memcmp(pr[0], pr[1], 4 * nE) && !memcmp(ix[0], ix[1], 4 * nK) && !memcmp(wt[0], wt[1], 4 * nK),
           "warp router: not the one-thread kernel's bits (E %d K %d grp %d, N %d)", E, K, r.group_limited, N);
    fprintf(stderr, "    moe_route_forward warp E=%d K=%d grp=%d N=%-4d same bits as the thread kernel\n", E, K,
            r.group_limited, N);
    for (int k = 0; k < 2; k++) free(pr[k]), free(wt[k]), free(ix[k]);
    g->free(d_logits);
    free(logits);
}

static void body_cuda_ops_moe_route(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_moe_route);
    OpsMoeRoute greedy = {64, 6, 0, 1, 1, 0, 1.0f};          /* Lite: greedy, no renorm */
    OpsMoeRoute grouped = {160, 6, 1, 8, 3, 0, 16.0f};       /* V2: group-limited, routed scale */
    OpsMoeRoute renorm = {16, 4, 1, 4, 2, 1, 2.5f};          /* group-limited + renormalised */
    route_case(h, greedy, rndi(h, 50, 700), rndi(h, 1, 4));
    route_case(h, grouped, rndi(h, 50, 500), 1);
    route_case(h, renorm, rndi(h, 20, 300), rndi(h, 2, 5));
    OpsMoeRoute wide = {256, 8, 1, 64, 4, 1, 1.0f};          /* the kernels' limits: E 256, 64 groups */
    OpsMoeRoute routes[4] = {greedy, grouped, renorm, wide};
    for (int k = 0; k < 4; k++) {
        route_warp_case(h, routes[k], 1);
        route_warp_case(h, routes[k], rndi(h, 2, 9));
        route_warp_case(h, routes[k], rndi(h, 100, 300));
    }
    setenv("CRUCIBLE_CUDA_ROUTE", "warp", 1);  /* and against the CPU */
    route_case(h, greedy, rndi(h, 1, 70), 1);
    route_case(h, grouped, rndi(h, 1, 70), 1);
    unsetenv("CRUCIBLE_CUDA_ROUTE");
}

static void dispatch_case(H *h, const Ops *g, double tol, int N, int D, int E, int K, int I) {
    const Ops *c = h->cpu;
    int S = N * K;
    int32_t *idx = malloc(4 * (size_t)S);
    for (int n = 0; n < N; n++)  /* K distinct experts per token, skewed so some get none */
        for (int k = 0; k < K; k++) {
            int e;
            do {
                e = rndi(h, 0, E - 1);
                if (e > E / 2 && rndi(h, 0, 3)) e = e % (E / 2 + 1);
                int dup = 0;
                for (int j = 0; j < k; j++) dup |= idx[n * K + j] == e;
                if (!dup) break;
            } while (1);
            idx[n * K + k] = e;
        }
    float *x = rnd(h, (size_t)N * D, 1), *Xp = malloc(4 * (size_t)S * D);
    int32_t *ros = malloc(4 * (size_t)S), *sor = malloc(4 * (size_t)S), *off = malloc(4 * (size_t)(E + 1));
    float *d_x = dput(h, x, 4 * (size_t)N * D), *d_Xp = dnan(h, (size_t)S * D);
    int32_t *d_idx = dput(h, idx, 4 * (size_t)S), *d_ros = dbadi(h, S), *d_sor = dbadi(h, S), *d_off = dbadi(h, E + 1);
    c->moe_permute(Xp, ros, sor, off, x, idx, N, D, E, K);
    g->moe_permute(d_Xp, d_ros, d_sor, d_off, d_x, d_idx, N, D, E, K);
    cmpi(h, "moe_permute offsets", d_off, off, E + 1);
    cmpi(h, "moe_permute row_of_slot", d_ros, ros, S);
    cmpi(h, "moe_permute slot_of_row", d_sor, sor, S);
    cmpf(h, "moe_permute Xp", d_Xp, Xp, (size_t)S * D, 0);
    /* experts (CPU permutation feeds both) */
    size_t nw = (size_t)E * I * D, nI = (size_t)S * I;
    float *Wg = rnd(h, nw, 0.05f), *Wu = rnd(h, nw, 0.05f), *Wd = rnd(h, nw, 0.05f);
    float *Yp = malloc(4 * (size_t)S * D), *G = malloc(4 * nI), *U = malloc(4 * nI), *Hm = malloc(4 * nI);
    float *d_Wg = dput(h, Wg, 4 * nw), *d_Wu = dput(h, Wu, 4 * nw), *d_Wd = dput(h, Wd, 4 * nw);
    float *d_Xpc = dput(h, Xp, 4 * (size_t)S * D), *d_Yp = dnan(h, (size_t)S * D), *d_G = dnan(h, nI),
          *d_U = dnan(h, nI), *d_Hm = dnan(h, nI);
    c->moe_experts_forward(Yp, G, U, Hm, Xp, Wg, Wu, Wd, off, E, D, I);
    g->moe_experts_forward(d_Yp, d_G, d_U, d_Hm, d_Xpc, d_Wg, d_Wu, d_Wd, off, E, D, I);
    char what[96];
    snprintf(what, sizeof what, "%s moe_experts_forward Yp", g->name);
    cmpf(h, what, d_Yp, Yp, (size_t)S * D, tol);
    cmpf(h, "moe_experts_forward Hm", d_Hm, Hm, nI, tol);
    float *dYp = rnd(h, (size_t)S * D, 1), *dXp = malloc(4 * (size_t)S * D), *sc = malloc(4 * nI);
    float *dWg = rnd(h, nw, 1), *dWu = rnd(h, nw, 1), *dWd = rnd(h, nw, 1);
    float *d_dYp = dput(h, dYp, 4 * (size_t)S * D), *d_dXp = dnan(h, (size_t)S * D);
    float *d_dWg = dput(h, dWg, 4 * nw), *d_dWu = dput(h, dWu, 4 * nw), *d_dWd = dput(h, dWd, 4 * nw);
    float *d_dG = dnan(h, nI), *d_dU = dnan(h, nI), *d_dHm = dnan(h, nI);
    float *sG = malloc(4 * nI), *sU = malloc(4 * nI);
    float *d_Gc = dput(h, G, 4 * nI), *d_Uc = dput(h, U, 4 * nI), *d_Hmc = dput(h, Hm, 4 * nI);
    c->moe_experts_backward(dXp, dWg, dWu, dWd, dYp, sG, sU, sc, Xp, G, U, Hm, Wg, Wu, Wd, off, E, D, I);
    g->moe_experts_backward(d_dXp, d_dWg, d_dWu, d_dWd, d_dYp, d_dG, d_dU, d_dHm, d_Xpc, d_Gc, d_Uc, d_Hmc, d_Wg,
                            d_Wu, d_Wd, off, E, D, I);
    cmpf(h, "moe_experts_backward dXp", d_dXp, dXp, (size_t)S * D, tol);
    cmpf(h, "moe_experts_backward dWg (+=)", d_dWg, dWg, nw, tol);
    cmpf(h, "moe_experts_backward dWu (+=)", d_dWu, dWu, nw, tol);
    cmpf(h, "moe_experts_backward dWd (+=)", d_dWd, dWd, nw, tol);
    /* combine and its backward */
    float *wk = rnd(h, (size_t)S, 1), *y = malloc(4 * (size_t)N * D);
    float *d_wk = dput(h, wk, 4 * (size_t)S), *d_y = dnan(h, (size_t)N * D), *d_Ypc = dput(h, Yp, 4 * (size_t)S * D);
    int32_t *d_rosc = dput(h, ros, 4 * (size_t)S), *d_sorc = dput(h, sor, 4 * (size_t)S);
    c->moe_unpermute(y, Yp, wk, ros, N, D, K);
    g->moe_unpermute(d_y, d_Ypc, d_wk, d_rosc, N, D, K);
    cmpf(h, "moe_unpermute", d_y, y, (size_t)N * D, TOL_FP32);
    float *dy = rnd(h, (size_t)N * D, 1), *dYp2 = malloc(4 * (size_t)S * D), *dwk = malloc(4 * (size_t)S);
    float *d_dy = dput(h, dy, 4 * (size_t)N * D), *d_dYp2 = dnan(h, (size_t)S * D), *d_dwk = dnan(h, S);
    c->moe_unpermute_backward(dYp2, dwk, dy, Yp, wk, ros, sor, N, D, K);
    g->moe_unpermute_backward(d_dYp2, d_dwk, d_dy, d_Ypc, d_wk, d_rosc, d_sorc, N, D, K);
    cmpf(h, "moe_unpermute_backward dYp", d_dYp2, dYp2, (size_t)S * D, TOL_FP32);
    cmpf(h, "moe_unpermute_backward dw", d_dwk, dwk, S, TOL_FP32);
    float *dx = rnd(h, (size_t)N * D, 1), *d_dx = dput(h, dx, 4 * (size_t)N * D);
    c->moe_permute_backward(dx, dYp2, ros, N, D, K);
    g->moe_permute_backward(d_dx, d_dYp2, d_rosc, N, D, K);
    cmpf(h, "moe_permute_backward (+=)", d_dx, dx, (size_t)N * D, TOL_FP32);
    void *bufs[] = {d_x, d_Xp, d_idx, d_ros, d_sor, d_off, d_Wg, d_Wu, d_Wd, d_Xpc, d_Yp, d_G, d_U, d_Hm, d_dYp,
                    d_dXp, d_dWg, d_dWu, d_dWd, d_dG, d_dU, d_dHm, d_Gc, d_Uc, d_Hmc, d_wk, d_y, d_Ypc, d_rosc, d_sorc,
                    d_dy, d_dYp2, d_dwk, d_dx};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) g->free(bufs[i]);
    void *hb[] = {idx, x, Xp, ros, sor, off, Wg, Wu, Wd, Yp, G, U, Hm, dYp, dXp, sc, dWg, dWu, dWd, sG, sU, wk, y, dy,
                  dYp2, dwk, dx};
    for (size_t i = 0; i < sizeof hb / sizeof *hb; i++) free(hb[i]);
}

static void body_cuda_ops_moe_dispatch(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_moe_dispatch);
    dispatch_case(h, h->gpu, TOL_FP32, rndi(h, 1, 300), rndi(h, 1, 100), rndi(h, 8, 64), 6, rndi(h, 1, 80));
    dispatch_case(h, h->gpu, TOL_FP32, rndi(h, 300, 1200), 64, 64, 6, 48);  /* several chunks of slots */
    dispatch_case(h, ops_cuda_bf16(), TOL_BF16, rndi(h, 100, 400), 128, 16, 4, 96);
}

/* ---- LM head ------------------------------------------------------------------------ */

static void lmhead_case(H *h, const Ops *g, double tol, int N, int V, int D) {
    const Ops *c = h->cpu;
    float *y = rnd(h, (size_t)N * D, 1), *W = rnd(h, (size_t)V * D, 0.3f), *logp = malloc(4 * (size_t)N),
          *lse = malloc(4 * (size_t)N);
    int32_t *tg = malloc(4 * (size_t)N);
    for (int i = 0; i < N; i++) tg[i] = rndi(h, 0, 5) == 0 ? -1 : rndi(h, 0, V - 1);
    size_t nsc = ops_lmhead_scratch_floats();
    float *sc = malloc(4 * nsc);
    float *d_y = dput(h, y, 4 * (size_t)N * D), *d_W = dput(h, W, 4 * (size_t)V * D), *d_logp = dnan(h, N),
          *d_lse = dnan(h, N), *d_sc = dnan(h, nsc);
    int32_t *d_tg = dput(h, tg, 4 * (size_t)N);
    c->lmhead_logprob_forward(logp, lse, y, W, tg, N, V, D, sc);
    g->lmhead_logprob_forward(d_logp, d_lse, d_y, d_W, d_tg, N, V, D, d_sc);
    char what[96];
    snprintf(what, sizeof what, "%s lmhead forward logp N=%d V=%d D=%d", g->name, N, V, D);
    cmpf(h, what, d_logp, logp, N, tol);
    cmpf(h, "lmhead forward lse", d_lse, lse, N, tol);
    float *dlogp = rnd(h, N, 1), *dy = rnd(h, (size_t)N * D, 1), *dW = rnd(h, (size_t)V * D, 1);
    float *d_dlogp = dput(h, dlogp, 4 * (size_t)N), *d_dy = dnan(h, (size_t)N * D),
          *d_dW = dput(h, dW, 4 * (size_t)V * D), *d_lsec = dput(h, lse, 4 * (size_t)N);
    c->lmhead_logprob_backward(dy, 0.0f, dW, dlogp, lse, y, W, tg, N, V, D, sc);
    g->lmhead_logprob_backward(d_dy, 0.0f, d_dW, d_dlogp, d_lsec, d_y, d_W, d_tg, N, V, D, d_sc);
    cmpf(h, "lmhead backward dy (beta 0 over NaN)", d_dy, dy, (size_t)N * D, tol);
    cmpf(h, "lmhead backward dW (+=)", d_dW, dW, (size_t)V * D, tol);
    c->lmhead_logprob_backward(dy, 1.0f, dW, dlogp, lse, y, W, tg, N, V, D, sc);
    g->lmhead_logprob_backward(d_dy, 1.0f, d_dW, d_dlogp, d_lsec, d_y, d_W, d_tg, N, V, D, d_sc);
    cmpf(h, "lmhead backward dy (beta 1)", d_dy, dy, (size_t)N * D, tol);
    void *bufs[] = {d_y, d_W, d_logp, d_lse, d_sc, d_tg, d_dlogp, d_dy, d_dW, d_lsec};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) g->free(bufs[i]);
    free(y), free(W), free(logp), free(lse), free(tg), free(sc), free(dlogp), free(dy), free(dW);
}

static void body_cuda_ops_lmhead(TestCtx *t_) {
    CUDA_PRELUDE(cuda_ops_lmhead);
    lmhead_case(h, h->gpu, TOL_FP32, rndi(h, 1, 100), rndi(h, 2, 3000), rndi(h, 1, 64));
    lmhead_case(h, h->gpu, TOL_FP32, rndi(h, 513, 1100), rndi(h, 2049, 5000), 96);
    /* several chunks each way (the CUDA backend's chunks are 4096 rows x 8192 columns) */
    lmhead_case(h, h->gpu, TOL_FP32, rndi(h, 4097, 5000), rndi(h, 8193, 10000), 48);
    lmhead_case(h, ops_cuda_bf16(), TOL_BF16, rndi(h, 513, 900), rndi(h, 2049, 4500), 128);
}

#endif /* CRUCIBLE_CUDA */

/* ---- the tests (listed once, whether or not CUDA was built) ------------------------ */

#ifdef CRUCIBLE_CUDA
#define CUDA_BODY(name) body_##name(t_)
#else
#define CUDA_BODY(name) SKIP("CUDA backend not built (no nvcc at build time, or NO_CUDA=1): not run")
#endif
TEST(cuda_ops_gemm) { CUDA_BODY(cuda_ops_gemm); }
TEST(cuda_ops_gemm_batched_copy2d) { CUDA_BODY(cuda_ops_gemm_batched_copy2d); }
TEST(cuda_ops_elementwise) { CUDA_BODY(cuda_ops_elementwise); }
TEST(cuda_ops_adamw_sumsq) { CUDA_BODY(cuda_ops_adamw_sumsq); }
TEST(cuda_ops_embedding) { CUDA_BODY(cuda_ops_embedding); }
TEST(cuda_ops_rmsnorm) { CUDA_BODY(cuda_ops_rmsnorm); }
TEST(cuda_ops_rope) { CUDA_BODY(cuda_ops_rope); }
TEST(cuda_ops_attention) { CUDA_BODY(cuda_ops_attention); }
TEST(cuda_ops_mla_kv_assemble) { CUDA_BODY(cuda_ops_mla_kv_assemble); }
TEST(cuda_ops_moe_route) { CUDA_BODY(cuda_ops_moe_route); }
TEST(cuda_ops_moe_dispatch) { CUDA_BODY(cuda_ops_moe_dispatch); }
TEST(cuda_ops_lmhead) { CUDA_BODY(cuda_ops_lmhead); }
