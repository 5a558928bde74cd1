/* tests/cuda/test_attention_wmma_cuda.c — the tensor-core flash attention
 * (model/cuda/attention_wmma.cu, table ops_cuda_bf16_wmma()) against the CPU op (the
 * specification) on fresh random inputs (seed printed; CRUCIBLE_TEST_SEED=n repeats).
 * One packed batch of sequences of lengths 1, 17, 64, 65, 300 and 1000 (in a shuffled
 * order: partial tiles, exact tiles, the diagonal, many key tiles), at MLA's shapes (H 16,
 * q/k 192, v 128) and small ones (H 2, 32/16). Outputs are NaN-poisoned before each call
 * (a value the kernels forget to write fails). Limits: normalised error 1e-2 for O, dQ,
 * dK, dV (bf16 operands) and 1e-3 for lse; forward and backward repeated must be
 * bit-identical. Also: CRUCIBLE_CUDA_ATTENTION=wmma on ops_cuda_bf16() gives the same
 * bits as the wmma table, and shapes the kernels do not take (q/k 24) fall back to the
 * gemm path within bf16 tolerance. Without a GPU every test SKIPs: NOT run on a GPU. */
#include "tests/test.h"

#ifdef CRUCIBLE_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/rng.h"
#include "model/cuda/ops_cuda.h"
#include "model/ops.h"

typedef struct AwCase {
    int N, n_seqs, H, dqk, dv;
    int32_t cu[8];
    float scale;
    float *Q, *K, *V, *dO;             /* host inputs */
    float *O, *lse, *gQ, *gK, *gV;     /* CPU reference outputs */
} AwCase;

static float *aw_rnd(CrRng *r, size_t n) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = (float)cr_rng_normal(r);
    return x;
}

/* Sequences of the given lengths in a random order; CPU forward and backward. */
static void aw_case_init(AwCase *c, CrRng *r, const int *lens, int n_seqs, int H, int dqk, int dv) {
    int order[8];
    for (int i = 0; i < n_seqs; i++) order[i] = lens[i];
    for (int i = n_seqs - 1; i > 0; i--) {
        int j = (int)(cr_rng_u64(r) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    c->n_seqs = n_seqs, c->H = H, c->dqk = dqk, c->dv = dv;
    c->cu[0] = 0;
    for (int s = 0; s < n_seqs; s++) c->cu[s + 1] = c->cu[s] + order[s];
    c->N = c->cu[n_seqs];
    c->scale = 1.3f / sqrtf((float)dqk);
    size_t nq = (size_t)c->N * H * dqk, nv = (size_t)c->N * H * dv, nl = (size_t)c->N * H;
    c->Q = aw_rnd(r, nq), c->K = aw_rnd(r, nq), c->V = aw_rnd(r, nv), c->dO = aw_rnd(r, nv);
    c->O = malloc(4 * nv), c->lse = malloc(4 * nl);
    c->gQ = malloc(4 * nq), c->gK = malloc(4 * nq), c->gV = malloc(4 * nv);
    const Ops *cpu = ops_cpu();
    cpu->attention_forward(c->O, c->lse, c->Q, c->K, c->V, c->cu, n_seqs, c->N, H, dqk, dv, c->scale);
    cpu->attention_backward(c->gQ, c->gK, c->gV, c->dO, c->O, c->lse, c->Q, c->K, c->V, c->cu, n_seqs, c->N, H,
                            dqk, dv, c->scale);
}
static void aw_case_free(AwCase *c) {
    free(c->Q), free(c->K), free(c->V), free(c->dO), free(c->O), free(c->lse), free(c->gQ), free(c->gK),
        free(c->gV);
}

/* Device outputs of one table: forward then backward, every output poisoned first. */
typedef struct AwOut {
    float *O, *lse, *dQ, *dK, *dV; /* host copies */
} AwOut;

static void *aw_put(const Ops *g, const void *x, size_t bytes) {
    void *d = g->alloc(bytes);
    g->upload(d, x, bytes);
    return d;
}
static float *aw_nan(const Ops *g, size_t n) {
    float *x = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    float *d = aw_put(g, x, sizeof(float) * n);
    free(x);
    return d;
}
static float *aw_get(const Ops *g, const float *d, size_t n) {
    float *x = malloc(sizeof(float) * n);
    g->download(x, d, sizeof(float) * n);
    return x;
}

static AwOut aw_run(const Ops *g, const AwCase *c) {
    size_t nq = (size_t)c->N * c->H * c->dqk, nv = (size_t)c->N * c->H * c->dv, nl = (size_t)c->N * c->H;
    float *Q = aw_put(g, c->Q, 4 * nq), *K = aw_put(g, c->K, 4 * nq), *V = aw_put(g, c->V, 4 * nv);
    float *dO = aw_put(g, c->dO, 4 * nv);
    int32_t *cu = aw_put(g, c->cu, 4 * (size_t)(c->n_seqs + 1));
    float *O = aw_nan(g, nv), *lse = aw_nan(g, nl), *dQ = aw_nan(g, nq), *dK = aw_nan(g, nq), *dV = aw_nan(g, nv);
    g->attention_forward(O, lse, Q, K, V, cu, c->n_seqs, c->N, c->H, c->dqk, c->dv, c->scale);
    g->attention_backward(dQ, dK, dV, dO, O, lse, Q, K, V, cu, c->n_seqs, c->N, c->H, c->dqk, c->dv, c->scale);
    AwOut r = {aw_get(g, O, nv), aw_get(g, lse, nl), aw_get(g, dQ, nq), aw_get(g, dK, nq), aw_get(g, dV, nv)};
    void *bufs[] = {Q, K, V, dO, cu, O, lse, dQ, dK, dV};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) g->free(bufs[i]);
    return r;
}
static void aw_out_free(AwOut *o) { free(o->O), free(o->lse), free(o->dQ), free(o->dK), free(o->dV); }

static void aw_cmp(TestCtx *t_, const char *what, const float *x, const float *ref, size_t n, double tol) {
    double e = test_rel_err(x, ref, n);
    CHECKF(e <= tol, "%s: normalised error %.3g > %.1g (%zu values)", what, e, tol, n);
    fprintf(stderr, "    %-44s err %.3g\n", what, e);
}
static void aw_same(TestCtx *t_, const char *what, const AwOut *a, const AwOut *b, const AwCase *c) {
    size_t nq = (size_t)c->N * c->H * c->dqk, nv = (size_t)c->N * c->H * c->dv, nl = (size_t)c->N * c->H;
    CHECKF(!memcmp(a->O, b->O, 4 * nv) && !memcmp(a->lse, b->lse, 4 * nl), "%s: forward not bit-identical", what);
    CHECKF(!memcmp(a->dQ, b->dQ, 4 * nq) && !memcmp(a->dK, b->dK, 4 * nq) && !memcmp(a->dV, b->dV, 4 * nv),
           "%s: backward not bit-identical", what);
}

static void aw_check(TestCtx *t_, const Ops *g, const AwCase *c, double tol) {
    int wm = ops_cuda_attention_wmma_supported(c->dqk, c->dv);
    fprintf(stderr, "    q/k %d, v %d: %s\n", c->dqk, c->dv, wm ? "wmma kernels" : "gemm fallback");
    size_t nq = (size_t)c->N * c->H * c->dqk, nv = (size_t)c->N * c->H * c->dv, nl = (size_t)c->N * c->H;
    AwOut a = aw_run(g, c);
    char w[96];
    snprintf(w, sizeof w, "%s O N=%d H=%d %d/%d", g->name, c->N, c->H, c->dqk, c->dv);
    aw_cmp(t_, w, a.O, c->O, nv, tol);
    aw_cmp(t_, "lse", a.lse, c->lse, nl, 1e-3);
    aw_cmp(t_, "dQ", a.dQ, c->gQ, nq, tol);
    aw_cmp(t_, "dK", a.dK, c->gK, nq, tol);
    aw_cmp(t_, "dV", a.dV, c->gV, nv, tol);
    AwOut b = aw_run(g, c);
    aw_same(t_, "repeat", &a, &b, c);
    aw_out_free(&a), aw_out_free(&b);
}

static const int k_lens[6] = {1, 17, 64, 65, 300, 1000};

/* Seeds r and prints the seed. */
static void aw_seed_rng(CrRng *r, const char *name) {
    uint64_t seed = test_random_seed(name);
    cr_rng_init(r, seed, 0xF1A5, 0);
}
#define AW_PRELUDE(name)                                                                     \
    if (crucible_cuda_device_count() <= 0 || !ops_cuda_bf16_wmma())                          \
        SKIP("no CUDA device visible: wmma attention NOT run on a GPU");                      \
    CrRng r;                                                                                 \
    aw_seed_rng(&r, name)

static void body_attention_wmma_mla(TestCtx *t_) {
    AW_PRELUDE("cuda_attention_wmma_mla");
    AwCase c;
    CHECKF(ops_cuda_attention_wmma_supported(192, 128), "the wmma kernels do not take MLA's 192/128 here");
    aw_case_init(&c, &r, k_lens, 6, 16, 192, 128);
    aw_check(t_, ops_cuda_bf16_wmma(), &c, 1e-2);
    aw_case_free(&c);
}

static void body_attention_wmma_small(TestCtx *t_) {
    AW_PRELUDE("cuda_attention_wmma_small");
    AwCase c;
    CHECKF(ops_cuda_attention_wmma_supported(32, 16), "the wmma kernels do not take 32/16 here");
    CHECKF(!ops_cuda_attention_wmma_supported(24, 16) && !ops_cuda_attention_wmma_supported(208, 128) &&
               !ops_cuda_attention_wmma_supported(192, 144),
           "the wmma kernels claim shapes they do not take");
    aw_case_init(&c, &r, k_lens, 6, 2, 32, 16);
    aw_check(t_, ops_cuda_bf16_wmma(), &c, 1e-2);
    /* The bf16 table with CRUCIBLE_CUDA_ATTENTION=wmma runs the same kernels. */
    if (setenv("CRUCIBLE_CUDA_ATTENTION", "wmma", 1) == 0) {
        AwOut a = aw_run(ops_cuda_bf16_wmma(), &c), b = aw_run(ops_cuda_bf16(), &c);
        aw_same(t_, "ops_cuda_bf16 with CRUCIBLE_CUDA_ATTENTION=wmma vs ops_cuda_bf16_wmma", &a, &b, &c);
        aw_out_free(&a), aw_out_free(&b);
        unsetenv("CRUCIBLE_CUDA_ATTENTION");
    } else {
        CHECKF(0, "setenv failed");
    }
    aw_case_free(&c);
    /* q/k 24 is not a multiple of 16: the wmma table falls back to the gemm path. */
    aw_case_init(&c, &r, k_lens, 5, 3, 24, 16);
    aw_check(t_, ops_cuda_bf16_wmma(), &c, 1e-2);
    aw_case_free(&c);
}

#endif /* CRUCIBLE_CUDA */

#ifdef CRUCIBLE_CUDA
#define AW_BODY(name) body_##name(t_)
#else
#define AW_BODY(name) SKIP("CUDA backend not built (no nvcc at build time, or NO_CUDA=1): NOT run on a GPU")
#endif
TEST(cuda_attention_wmma_mla) { AW_BODY(attention_wmma_mla); }
TEST(cuda_attention_wmma_small) { AW_BODY(attention_wmma_small); }
