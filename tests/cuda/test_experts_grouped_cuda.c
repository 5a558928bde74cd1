/* tests/cuda/test_experts_grouped_cuda.c — the routed experts' GEMMs on the CUDA backend
 * (model/cuda/moe_grouped.cu) in each of its ways of running them, CRUCIBLE_CUDA_EXPERTS
 * = loop | grouped | streams (4 and 7 side streams) | auto, against the CPU op (the
 * specification) and against
 * each other, on fresh random inputs (seed printed; CRUCIBLE_TEST_SEED=n repeats one).
 * Expert loads are uneven: experts with no rows, one expert with every row, odd row
 * lengths (unaligned rows), and no rows at all. Outputs are poisoned with NaN before each
 * call; weight gradients start random (the op adds to them). Error: ||gpu - ref|| / ||ref||
 * <= 1e-5 for ops_cuda() (fp32), 1e-2 for ops_cuda_bf16(); a second run of the same way
 * must repeat the first bit for bit. Without a GPU it SKIPs: not run on a GPU. */
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

/* "streams7": the streams way on 7 side streams (CRUCIBLE_CUDA_EXPERT_STREAMS=7). */
static const char *const k_modes[] = {"loop", "grouped", "streams", "streams7", "auto"};
enum { N_MODES = 5 };

typedef struct Case {
    int E, D, I, S;  /* experts, hidden, intermediate, rows (= offsets[E]) */
    int32_t *off;
    /* host inputs and CPU reference outputs */
    float *Xp, *Wg, *Wu, *Wd, *dYp, *dW0g, *dW0u, *dW0d;
    float *Yp, *G, *U, *Hm, *dXp, *dG, *dU, *dHm, *dWg, *dWu, *dWd;
} Case;

/* Device outputs of one run, downloaded. */
typedef struct Out {
    float *Yp, *G, *U, *Hm, *dXp, *dWg, *dWu, *dWd;
} Out;

static float *hbuf(size_t n) { return malloc(sizeof(float) * (n ? n : 1)); }
static float *hcopy(const float *x, size_t n) {
    float *y = hbuf(n);
    memcpy(y, x, sizeof(float) * n);
    return y;
}

static void case_init(Case *c, CrRng *r, int E, int D, int I, const int *counts) {
    memset(c, 0, sizeof *c);
    c->E = E, c->D = D, c->I = I;
    c->off = malloc(sizeof(int32_t) * (size_t)(E + 1));
    c->off[0] = 0;
    for (int e = 0; e < E; e++) c->off[e + 1] = c->off[e] + counts[e];
    int S = c->S = c->off[E];
    size_t nx = (size_t)S * D, ni = (size_t)S * I, nw = (size_t)E * I * D;
    c->Xp = test_hrand(r, nx, 1), c->dYp = test_hrand(r, nx, 1);
    c->Wg = test_hrand(r, nw, 0.05f), c->Wu = test_hrand(r, nw, 0.05f), c->Wd = test_hrand(r, nw, 0.05f);
    c->dW0g = test_hrand(r, nw, 1), c->dW0u = test_hrand(r, nw, 1), c->dW0d = test_hrand(r, nw, 1);
    c->Yp = hbuf(nx), c->G = hbuf(ni), c->U = hbuf(ni), c->Hm = hbuf(ni);
    c->dXp = hbuf(nx), c->dG = hbuf(ni), c->dU = hbuf(ni), c->dHm = hbuf(ni);
    c->dWg = hcopy(c->dW0g, nw), c->dWu = hcopy(c->dW0u, nw), c->dWd = hcopy(c->dW0d, nw);
    const Ops *cpu = ops_cpu();
    cpu->moe_experts_forward(c->Yp, c->G, c->U, c->Hm, c->Xp, c->Wg, c->Wu, c->Wd, c->off, E, D, I);
    cpu->moe_experts_backward(c->dXp, c->dWg, c->dWu, c->dWd, c->dYp, c->dG, c->dU, c->dHm, c->Xp, c->G, c->U,
                              c->Hm, c->Wg, c->Wu, c->Wd, c->off, E, D, I);
}
static void case_free(Case *c) {
    float *b[] = {c->Xp, c->Wg, c->Wu, c->Wd, c->dYp, c->dW0g, c->dW0u, c->dW0d, c->Yp, c->G, c->U, c->Hm,
                  c->dXp, c->dG, c->dU, c->dHm, c->dWg, c->dWu, c->dWd};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) free(b[i]);
    free(c->off);
}
static void out_free(Out *o) {
    float *b[] = {o->Yp, o->G, o->U, o->Hm, o->dXp, o->dWg, o->dWu, o->dWd};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) free(b[i]);
}

static float *dget(const Ops *g, const float *d, size_t n) {
    float *x = hbuf(n);
    g->download(x, d, sizeof(float) * n);
    return x;
}

/* Forward, then backward (from the CPU's saved G, U, Hm), on table g the way `mode`
 * says; outputs downloaded into *o. */
static void run_mode(const Ops *g, const char *mode, const Case *c, Out *o) {
    int seven = strcmp(mode, "streams7") == 0;
    if (setenv("CRUCIBLE_CUDA_EXPERTS", seven ? "streams" : mode, 1) != 0) abort();
    if (seven && setenv("CRUCIBLE_CUDA_EXPERT_STREAMS", "7", 1) != 0) abort();
    size_t nx = (size_t)c->S * c->D, ni = (size_t)c->S * c->I, nw = (size_t)c->E * c->I * c->D;
    float *Xp = test_dput(g, c->Xp, 4 * nx), *dYp = test_dput(g, c->dYp, 4 * nx);
    float *Wg = test_dput(g, c->Wg, 4 * nw), *Wu = test_dput(g, c->Wu, 4 * nw), *Wd = test_dput(g, c->Wd, 4 * nw);
    float *dWg = test_dput(g, c->dW0g, 4 * nw), *dWu = test_dput(g, c->dW0u, 4 * nw), *dWd = test_dput(g, c->dW0d, 4 * nw);
    float *Yp = test_dnan(g, nx), *G = test_dnan(g, ni), *U = test_dnan(g, ni), *Hm = test_dnan(g, ni);
    float *dXp = test_dnan(g, nx), *dG = test_dnan(g, ni), *dU = test_dnan(g, ni), *dHm = test_dnan(g, ni);
    g->moe_experts_forward(Yp, G, U, Hm, Xp, Wg, Wu, Wd, c->off, c->E, c->D, c->I);
    /* the backward reads the CPU's G, U, Hm (errors of the forward not carried over) */
    float *cG = test_dput(g, c->G, 4 * ni), *cU = test_dput(g, c->U, 4 * ni), *cHm = test_dput(g, c->Hm, 4 * ni);
    g->moe_experts_backward(dXp, dWg, dWu, dWd, dYp, dG, dU, dHm, Xp, cG, cU, cHm, Wg, Wu, Wd, c->off, c->E, c->D,
                            c->I);
    o->Yp = dget(g, Yp, nx), o->G = dget(g, G, ni), o->U = dget(g, U, ni), o->Hm = dget(g, Hm, ni);
    o->dXp = dget(g, dXp, nx), o->dWg = dget(g, dWg, nw), o->dWu = dget(g, dWu, nw), o->dWd = dget(g, dWd, nw);
    float *b[] = {Xp, dYp, Wg, Wu, Wd, dWg, dWu, dWd, Yp, G, U, Hm, dXp, dG, dU, dHm, cG, cU, cHm};
    for (size_t i = 0; i < sizeof b / sizeof *b; i++) g->free(b[i]);
    unsetenv("CRUCIBLE_CUDA_EXPERTS");
    unsetenv("CRUCIBLE_CUDA_EXPERT_STREAMS");
}

/* Checks one output; returns its error (0 when empty). */
static double cmp(TestCtx *t_, const char *what, const float *x, const float *ref, size_t n, double tol) {
    if (n == 0) return 0;
    double e = test_rel_err(x, ref, n);
    CHECKF(e <= tol, "%s: normalised error %.3g > %.1g (%zu values)", what, e, tol, n);
    return e;
}
static void same_bits(TestCtx *t_, const char *what, const float *a, const float *b, size_t n) {
    CHECKF(n == 0 || memcmp(a, b, sizeof(float) * n) == 0, "%s: a second run differs", what);
}

/* Every way on table g against the CPU reference, against the loop, and against itself. */
static void check_case(TestCtx *t_, const Ops *g, double tol, const Case *c, const char *label) {
    size_t nx = (size_t)c->S * c->D, ni = (size_t)c->S * c->I, nw = (size_t)c->E * c->I * c->D;
    fprintf(stderr, "    %s %s: E %d D %d I %d rows %d\n", g->name, label, c->E, c->D, c->I, c->S);
    Out loop = {0};
    for (int m = 0; m < N_MODES; m++) {
        Out o = {0}, again = {0};
        run_mode(g, k_modes[m], c, &o);
        char w[128];
        double worst_cpu = 0, worst_loop = 0;
        const char *at_cpu = "-", *at_loop = "-";
#define CMP(field, n)                                                                              \
    do {                                                                                           \
        snprintf(w, sizeof w, "%s %s vs CPU", k_modes[m], #field);                                 \
        double e_ = cmp(t_, w, o.field, c->field, n, tol);                                         \
        if (e_ > worst_cpu) worst_cpu = e_, at_cpu = #field;                                       \
        if (m > 0) {                                                                               \
            snprintf(w, sizeof w, "%s %s vs loop", k_modes[m], #field);                            \
            e_ = cmp(t_, w, o.field, loop.field, n, tol);                                          \
            if (e_ > worst_loop) worst_loop = e_, at_loop = #field;                                \
        }                                                                                          \
    } while (0)
        CMP(Yp, nx);
        CMP(G, ni);
        CMP(U, ni);
        CMP(Hm, ni);
        CMP(dXp, nx);
        CMP(dWg, nw);
        CMP(dWu, nw);
        CMP(dWd, nw);
#undef CMP
        fprintf(stderr, "      %-9s worst error vs CPU %.3g (%s), vs loop %.3g (%s)\n", k_modes[m], worst_cpu, at_cpu,
                worst_loop, at_loop);
        if (c->S == 0) {  /* no rows: the gradients are left exactly as they were */
            same_bits(t_, "dWg with no rows", o.dWg, c->dW0g, nw);
            same_bits(t_, "dWu with no rows", o.dWu, c->dW0u, nw);
            same_bits(t_, "dWd with no rows", o.dWd, c->dW0d, nw);
        }
        run_mode(g, k_modes[m], c, &again);
        snprintf(w, sizeof w, "%s Yp", k_modes[m]);
        same_bits(t_, w, again.Yp, o.Yp, nx);
        snprintf(w, sizeof w, "%s dXp", k_modes[m]);
        same_bits(t_, w, again.dXp, o.dXp, nx);
        snprintf(w, sizeof w, "%s dWg", k_modes[m]);
        same_bits(t_, w, again.dWg, o.dWg, nw);
        snprintf(w, sizeof w, "%s dWd", k_modes[m]);
        same_bits(t_, w, again.dWd, o.dWd, nw);
        out_free(&again);
        if (m == 0) loop = o;
        else out_free(&o);
    }
    out_free(&loop);
}

static int rndi(CrRng *r, int lo, int hi) { return lo + (int)(cr_rng_u64(r) % (uint64_t)(hi - lo + 1)); }

static void body(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: routed-experts GEMM test not run on a GPU");
    uint64_t seed = test_random_seed("cuda_experts_grouped");
    CrRng r;
    cr_rng_init(&r, seed, 0xE7, 0);
    const Ops *tables[2] = {ops_cuda(), ops_cuda_bf16()};
    const double tols[2] = {1e-5, 1e-2};
    int counts[64];
    Case c;

    /* uneven loads: about a third of the experts empty, the rest 1..120 rows */
    int E = 16;
    for (int e = 0; e < E; e++) counts[e] = rndi(&r, 0, 2) == 0 ? 0 : rndi(&r, 1, 120);
    counts[rndi(&r, 0, E - 1)] = 0;
    counts[rndi(&r, 0, E - 1)] = 200;
    case_init(&c, &r, E, 4 * rndi(&r, 8, 40), 4 * rndi(&r, 4, 30), counts);
    for (int k = 0; k < 2; k++) check_case(t_, tables[k], tols[k], &c, "uneven");
    case_free(&c);

    /* one expert has every row */
    E = 8;
    memset(counts, 0, sizeof counts);
    counts[rndi(&r, 0, E - 1)] = rndi(&r, 200, 600);
    case_init(&c, &r, E, 128, 96, counts);
    for (int k = 0; k < 2; k++) check_case(t_, tables[k], tols[k], &c, "one expert");
    case_free(&c);

    /* Lite-like: 64 experts, about 6 x 100 rows spread unevenly; odd row lengths */
    E = 64;
    for (int e = 0; e < E; e++) counts[e] = rndi(&r, 0, 3) == 0 ? 0 : rndi(&r, 1, 20);
    case_init(&c, &r, E, 2 * rndi(&r, 20, 60) + 1, 2 * rndi(&r, 10, 40) + 1, counts);
    for (int k = 0; k < 2; k++) check_case(t_, tables[k], tols[k], &c, "64 experts, odd D and I");
    case_free(&c);

    /* no rows at all: nothing written, gradients untouched */
    E = 4;
    memset(counts, 0, sizeof counts);
    case_init(&c, &r, E, 32, 16, counts);
    for (int k = 0; k < 2; k++) check_case(t_, tables[k], tols[k], &c, "no rows");
    case_free(&c);
}

#endif /* CRUCIBLE_CUDA */

TEST(cuda_experts_grouped) {
#ifdef CRUCIBLE_CUDA
    body(t_);
#else
    SKIP("CUDA backend not built (no nvcc at build time, or NO_CUDA=1): not run on a GPU");
#endif
}
