/* tests/cuda/test_lmhead_bf16_cuda.c — the bf16 table's LM head (model/cuda/lmhead.cu:
 * operands rounded to bf16 once per chunk, GEMMs on bf16 storage; and, with
 * CRUCIBLE_CUDA_LMHEAD=fast16bf, the fp32-operand path) against the CPU op over several
 * row and vocabulary chunks of the CUDA backend (4096 x 8192), so the per-chunk
 * conversions of y and W and the bf16 dlogits are all exercised: logp, lse, dy (beta 0
 * over NaN, then beta 1) and dW (+=), normalised error <= 1e-2, on fresh random inputs
 * (seed printed; CRUCIBLE_TEST_SEED=n repeats one). Without a GPU it SKIPs: not run on
 * a GPU. */
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
#include "tests/cuda/buffers.h"

static int rint_in(CrRng *r, int lo, int hi) { return lo + (int)(cr_rng_u64(r) % (uint64_t)(hi - lo + 1)); }
static void cmp(TestCtx *t_, const Ops *g, const char *what, const float *d, const float *ref, size_t n) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    g->download(x, d, sizeof(float) * n);
    double e = test_rel_err(x, ref, n);
    CHECKF(e <= 1e-2, "%s: normalised error %.3g > 1e-2 (%zu values)", what, e, n);
    fprintf(stderr, "    %-40s err %.3g\n", what, e);
    free(x);
}

/* One way (CRUCIBLE_CUDA_LMHEAD = mode) on fresh inputs. */
static void run_case(TestCtx *t_, uint64_t seed, uint64_t stream, const char *mode) {
    if (setenv("CRUCIBLE_CUDA_LMHEAD", mode, 1) != 0) abort();
    CrRng r;
    cr_rng_init(&r, seed, 0x1B, stream);
    const Ops *c = ops_cpu(), *g = ops_cuda_bf16();
    /* two row chunks and two vocabulary chunks; an even row length not a multiple of 8 */
    int N = rint_in(&r, 4097, 4700), V = rint_in(&r, 8193, 9500), D = 2 * rint_in(&r, 13, 23);
    fprintf(stderr, "    CRUCIBLE_CUDA_LMHEAD=%s: N %d V %d D %d\n", mode, N, V, D);
    float *y = test_hrand(&r, (size_t)N * D, 1), *W = test_hrand(&r, (size_t)V * D, 0.3f);
    int32_t *tg = malloc(sizeof(int32_t) * (size_t)N);
    for (int i = 0; i < N; i++) tg[i] = rint_in(&r, 0, 5) == 0 ? -1 : rint_in(&r, 0, V - 1);
    size_t nsc = ops_lmhead_scratch_floats();
    float *sc = malloc(sizeof(float) * nsc), *logp = malloc(sizeof(float) * (size_t)N),
          *lse = malloc(sizeof(float) * (size_t)N);
    float *d_y = test_dput(g, y, sizeof(float) * (size_t)N * D), *d_W = test_dput(g, W, sizeof(float) * (size_t)V * D);
    float *d_logp = test_dnan(g, N), *d_lse = test_dnan(g, N), *d_sc = test_dnan(g, nsc);
    int32_t *d_tg = test_dput(g, tg, sizeof(int32_t) * (size_t)N);
    c->lmhead_logprob_forward(logp, lse, y, W, tg, N, V, D, sc);
    g->lmhead_logprob_forward(d_logp, d_lse, d_y, d_W, d_tg, N, V, D, d_sc);
    cmp(t_, g, "bf16 lmhead forward logp", d_logp, logp, N);
    cmp(t_, g, "bf16 lmhead forward lse", d_lse, lse, N);
    float *dlogp = test_hrand(&r, N, 1), *dy = test_hrand(&r, (size_t)N * D, 1), *dW = test_hrand(&r, (size_t)V * D, 1);
    float *d_dlogp = test_dput(g, dlogp, sizeof(float) * (size_t)N), *d_dy = test_dnan(g, (size_t)N * D);
    float *d_dW = test_dput(g, dW, sizeof(float) * (size_t)V * D), *d_lse2 = test_dput(g, lse, sizeof(float) * (size_t)N);
    c->lmhead_logprob_backward(dy, 0.0f, dW, dlogp, lse, y, W, tg, N, V, D, sc);
    g->lmhead_logprob_backward(d_dy, 0.0f, d_dW, d_dlogp, d_lse2, d_y, d_W, d_tg, N, V, D, d_sc);
    cmp(t_, g, "bf16 lmhead backward dy (beta 0 over NaN)", d_dy, dy, (size_t)N * D);
    cmp(t_, g, "bf16 lmhead backward dW (+=)", d_dW, dW, (size_t)V * D);
    c->lmhead_logprob_backward(dy, 1.0f, dW, dlogp, lse, y, W, tg, N, V, D, sc);
    g->lmhead_logprob_backward(d_dy, 1.0f, d_dW, d_dlogp, d_lse2, d_y, d_W, d_tg, N, V, D, d_sc);
    cmp(t_, g, "bf16 lmhead backward dy (beta 1)", d_dy, dy, (size_t)N * D);
    cmp(t_, g, "bf16 lmhead backward dW (+= twice)", d_dW, dW, (size_t)V * D);
    void *db[] = {d_y, d_W, d_logp, d_lse, d_sc, d_tg, d_dlogp, d_dy, d_dW, d_lse2};
    for (size_t i = 0; i < sizeof db / sizeof *db; i++) g->free(db[i]);
    void *hb[] = {y, W, tg, sc, logp, lse, dlogp, dy, dW};
    for (size_t i = 0; i < sizeof hb / sizeof *hb; i++) free(hb[i]);
    unsetenv("CRUCIBLE_CUDA_LMHEAD");
}

static void body(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: bf16 LM head test not run on a GPU");
    uint64_t seed = test_random_seed("cuda_lmhead_bf16_chunks");
    run_case(t_, seed, 0, "bf16");
    run_case(t_, seed, 1, "fast16bf");
}

#endif /* CRUCIBLE_CUDA */

TEST(cuda_lmhead_bf16_chunks) {
#ifdef CRUCIBLE_CUDA
    body(t_);
#else
    SKIP("CUDA backend not built (no nvcc at build time, or NO_CUDA=1): not run on a GPU");
#endif
}
