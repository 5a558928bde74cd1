/* tests/cuda/test_moe_small_cuda.c — Ops.moe_experts_small on the CUDA backend
 * (model/cuda/moe_small.cu) against the CPU op (model/cpu/moe_small.c, the specification;
 * itself checked against the dispatched path and a double formula in
 * tests/model/test_moe_small.c), on fresh random inputs (seed printed; CRUCIBLE_TEST_SEED=n
 * repeats one). Shapes: Lite's D 2048, I 1408, E 64, K 6 with N 1 and 7; odd D and I (the
 * scalar loads) and each of D, I alone a multiple of 4 (float4 in one kernel only); D over
 * the shared-memory staging limit; unaligned weight pointers; experts shared by many rows;
 * K = 0. The weights of experts no slot selects are NaN (a read of a wrong expert shows),
 * outputs are poisoned with NaN before each call. Error ||gpu - cpu|| / ||cpu|| <= 1e-5 for
 * y and h in every CUDA table (the op computes in fp32 in all of them); a second call must
 * repeat the first bit for bit. Also prints, for the fp32 table, the Lite rows' time per
 * call and the expert-weight bytes read per second (information, no threshold: a host
 * clock around 20 calls, synchronised by a download). Without a GPU it SKIPs: not run.
 * cuda_moe_experts_indexed: the same cases and more rows (N 64 and 200 at Lite's E and K,
 * one expert in every row, a group of 200 slots, E 160: more groups than grid.y) with CRUCIBLE_CUDA_MOE_SMALL=indexed (model/cuda/moe_indexed.cu:
 * slots grouped by expert on the device); its time line counts each distinct expert's
 * weights once (the bytes the kernels must read), and the table's moe_experts_small_slots
 * must answer 4096 (also unset: auto; 0 under slots). */
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

typedef struct Case {
    const char *label;
    int N, K, E, D, I;
    int misalign; /* weights passed at an offset of 1 float (not 16-byte aligned) */
    int timed;
    int all_rows; /* expert 0 in every row */
} Case;

/* Uniform in [-scale, scale): cheap enough for Lite's 2.2 GB of weights. */
static void fill(CrRng *r, float *x, size_t n, float scale) {
    for (size_t i = 0; i < n; i++) x[i] = scale * ((float)(cr_rng_u64(r) >> 40) * 0x1p-23f - 1.0f);
}
static void dnan(const Ops *g, float *d, size_t n) {
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    if (n) g->upload(d, x, sizeof(float) * n);
    free(x);
}
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void check_case(TestCtx *t_, CrRng *r, const Case *c, const Ops *const *tables, int n_tables, int indexed) {
    int N = c->N, K = c->K, E = c->E, D = c->D, I = c->I, S = N * K;
    size_t nw = (size_t)E * I * D, pad = c->misalign ? 1 : 0;
    size_t ny = (size_t)N * D, nh = (size_t)S * I;
    float *x = malloc(sizeof(float) * ny), *w = malloc(sizeof(float) * (S ? S : 1));
    int32_t *idx = malloc(sizeof(int32_t) * (S ? S : 1));
    fill(r, x, ny, 1.0f);
    fill(r, w, (size_t)S, 0.5f);
    unsigned char *used = calloc((size_t)E, 1);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) { /* distinct within a row, as the router gives them */
            int e, dup;
            do {
                e = (int)(cr_rng_u64(r) % (uint64_t)E);
                dup = 0;
                for (int j = 0; j < k; j++) dup |= idx[n * K + j] == e;
            } while (dup && K <= E);
            idx[n * K + k] = e;
        }
    if (c->all_rows)
        for (int n = 0; n < N; n++) {
            int k0 = n % K;
            for (int k = 0; k < K; k++) /* move a 0 elsewhere in the row out of the way */
                if (k != k0 && idx[n * K + k] == 0) idx[n * K + k] = idx[n * K + k0];
            idx[n * K + k0] = 0;
        }
    int distinct = 0;
    for (int s = 0; s < S; s++) distinct += !used[idx[s]], used[idx[s]] = 1;
    /* weights: random for the experts in use, NaN for the others */
    float *W[3];
    for (int m = 0; m < 3; m++) {
        W[m] = malloc(sizeof(float) * (nw + pad));
        W[m][0] = NAN;
        for (int e = 0; e < E; e++) {
            float *blk = W[m] + pad + (size_t)e * I * D;
            if (used[e]) fill(r, blk, (size_t)I * D, 0.05f);
            else memset(blk, 0xff, sizeof(float) * (size_t)I * D); /* all-ones bits: a NaN */
        }
    }
    float *y = malloc(sizeof(float) * (ny ? ny : 1)), *h = malloc(sizeof(float) * (nh ? nh : 1));
    for (size_t i = 0; i < ny; i++) y[i] = NAN;
    ops_cpu()->moe_experts_small(y, h, x, idx, w, W[0] + pad, W[1] + pad, W[2] + pad, N, D, I, K);
    for (int t = 0; t < n_tables; t++) {
        const Ops *g = tables[t];
        float *dx = test_dput(g, x, sizeof(float) * ny), *dw = test_dput(g, w, sizeof(float) * S);
        int32_t *didx = test_dput(g, idx, sizeof(int32_t) * S);
        float *dW[3];
        for (int m = 0; m < 3; m++) dW[m] = test_dput(g, W[m], sizeof(float) * (nw + pad));
        float *dy = g->alloc(sizeof(float) * (ny ? ny : 1)), *dh = g->alloc(sizeof(float) * (nh ? nh : 1));
        float *gy[2], *gh[2];
        for (int rep = 0; rep < 2; rep++) {
            dnan(g, dy, ny);
            dnan(g, dh, nh);
            g->moe_experts_small(dy, dh, dx, didx, dw, dW[0] + pad, dW[1] + pad, dW[2] + pad, N, D, I, K);
            gy[rep] = malloc(sizeof(float) * (ny ? ny : 1));
            gh[rep] = malloc(sizeof(float) * (nh ? nh : 1));
            g->download(gy[rep], dy, sizeof(float) * ny);
            g->download(gh[rep], dh, sizeof(float) * nh);
        }
        double ey = ny ? test_rel_err(gy[0], y, ny) : 0, eh = nh ? test_rel_err(gh[0], h, nh) : 0;
        if (K == 0) /* the empty sum: exact zeros */
            for (size_t i = 0; i < ny; i++) ey += gy[0][i] != 0.0f;
        fprintf(stderr, "    %-10s %-28s N %d K %d E %d D %d I %d: y err %.3g, h err %.3g\n", g->name, c->label, N, K, E,
                D, I, ey, eh);
        CHECKF(ey <= 1e-5, "%s %s: y normalised error %.3g > 1e-5", g->name, c->label, ey);
        CHECKF(eh <= 1e-5, "%s %s: h normalised error %.3g > 1e-5", g->name, c->label, eh);
        CHECKF(!memcmp(gy[0], gy[1], sizeof(float) * ny) && !memcmp(gh[0], gh[1], sizeof(float) * nh),
               "%s %s: a second call differs", g->name, c->label);
        if (c->timed && t == 0) {
            int reps = 20;
            float one;
            g->download(&one, dy, sizeof one); /* synchronise */
            double t0 = now_s();
            for (int i = 0; i < reps; i++)
                g->moe_experts_small(dy, dh, dx, didx, dw, dW[0] + pad, dW[1] + pad, dW[2] + pad, N, D, I, K);
            g->download(&one, dy, sizeof one);
            int reads = indexed ? distinct : S; /* expert reads the kernels must make */
            double dt = (now_s() - t0) / reps, bytes = 3.0 * reads * I * D * sizeof(float);
            fprintf(stderr, "    %-10s %-28s %.1f us per call, %.0f GB/s of expert weights (%d %s x %.1f MB)\n",
                    g->name, c->label, dt * 1e6, bytes / dt * 1e-9, reads, indexed ? "distinct experts" : "slots",
                    3.0 * I * D * sizeof(float) * 1e-6);
        }
        for (int rep = 0; rep < 2; rep++) free(gy[rep]), free(gh[rep]);
        void *bufs[] = {dx, dw, didx, dW[0], dW[1], dW[2], dy, dh};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) g->free(bufs[i]);
    }
    for (int m = 0; m < 3; m++) free(W[m]);
    free(x), free(w), free(idx), free(used), free(y), free(h);
}

static const Case k_cases[] = {
    {"Lite, one row", 1, 6, 64, 2048, 1408, 0, 1, 0},
    {"Lite, 7 rows", 7, 6, 64, 2048, 1408, 0, 1, 0},
    {"odd D and I", 3, 2, 5, 129, 67, 0, 0, 0},
    {"D % 4 == 0, I odd", 4, 3, 8, 132, 71, 0, 0, 0},
    {"D odd, I % 4 == 0", 2, 4, 6, 19, 44, 0, 0, 0},
    {"4 experts for 60 slots", 20, 3, 4, 64, 36, 0, 0, 0},
    {"unaligned weights", 3, 2, 4, 256, 128, 1, 0, 0},
    {"D past shared memory", 2, 2, 3, 12292, 8, 0, 0, 0},
    {"one slot, K 1", 1, 1, 2, 40, 24, 0, 0, 0},
    {"K 0 (empty sum)", 3, 0, 2, 16, 8, 0, 0, 0},
};
/* the indexed kernels only: batches past the slots kernels' threshold */
static const Case k_indexed_cases[] = {
    {"Lite, 64 rows", 64, 6, 64, 2048, 1408, 0, 1, 0},
    {"Lite shape, 200 rows", 200, 6, 64, 256, 176, 0, 0, 0},
    {"expert 0 in all 64 rows", 64, 6, 64, 512, 352, 0, 0, 1},
    {"odd D and I, 64 rows", 64, 6, 64, 129, 67, 0, 0, 0},
    /* a group of 200 slots: runs of IDX_RUN 64, 64, 64, 8; D and I over two ragged tiles */
    {"expert 0 in all 200 rows", 200, 6, 64, 600, 520, 0, 0, 1},
    /* up to 160 groups: blocks loop over groups past grid.y (IDX_GROUP_BLOCKS 64) */
    {"E 160, 64 rows", 64, 6, 160, 516, 72, 0, 0, 0},
};

static void body(TestCtx *t_, int indexed) {
    const char *name = indexed ? "cuda_moe_experts_indexed" : "cuda_moe_experts_small";
    if (crucible_cuda_device_count() <= 0) {
        if (indexed) SKIP("no CUDA device visible: the indexed moe_experts_small kernels NOT run on a GPU");
        SKIP("no CUDA device visible: moe_experts_small not run on a GPU");
    }
    uint64_t seed = test_random_seed(name);
    CrRng r;
    cr_rng_init(&r, seed, 0x5A11, (uint64_t)indexed);
    const Ops *tables[3] = {ops_cuda(), ops_cuda_bf16(), ops_cuda_flash()};
    /* the slots kernels, whatever the caller set (unset is auto: indexed above 64 slots) */
    if (!indexed) CHECK(setenv("CRUCIBLE_CUDA_MOE_SMALL", "slots", 1) == 0);
    if (indexed) {
        CHECK(unsetenv("CRUCIBLE_CUDA_MOE_SMALL") == 0);
        CHECKF(tables[0]->moe_experts_small_slots && tables[0]->moe_experts_small_slots() == 4096,
               "moe_experts_small_slots without CRUCIBLE_CUDA_MOE_SMALL (auto)");
        CHECK(setenv("CRUCIBLE_CUDA_MOE_SMALL", "slots", 1) == 0);
        CHECKF(tables[0]->moe_experts_small_slots() == 0, "moe_experts_small_slots under slots");
        CHECK(setenv("CRUCIBLE_CUDA_MOE_SMALL", "indexed", 1) == 0);
        for (int t = 0; t < 3; t++)
            CHECKF(tables[t]->moe_experts_small_slots() == 4096, "%s: moe_experts_small_slots under indexed",
                   tables[t]->name);
    }
    for (size_t i = 0; i < sizeof k_cases / sizeof *k_cases; i++) check_case(t_, &r, &k_cases[i], tables, 3, indexed);
    if (indexed)
        for (size_t i = 0; i < sizeof k_indexed_cases / sizeof *k_indexed_cases; i++)
            check_case(t_, &r, &k_indexed_cases[i], tables, 3, indexed);
    unsetenv("CRUCIBLE_CUDA_MOE_SMALL");
}

#endif /* CRUCIBLE_CUDA */

TEST(cuda_moe_experts_small) {
#ifdef CRUCIBLE_CUDA
    body(t_, 0);
#else
    SKIP("CUDA backend not built (no nvcc at build time, or NO_CUDA=1): not run on a GPU");
#endif
}

TEST(cuda_moe_experts_indexed) {
#ifdef CRUCIBLE_CUDA
    body(t_, 1);
#else
    SKIP("CUDA backend not built (no nvcc at build time, or NO_CUDA=1): the indexed kernels NOT run on a GPU");
#endif
}
