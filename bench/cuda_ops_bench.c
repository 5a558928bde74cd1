/* bench/cuda_ops_bench.c — timings of the CUDA backend's heavy ops at
 * DeepSeek-Coder-V2-Lite shapes (hidden 2048, 16 heads, q/k 192 = 128 + 64, v 128,
 * 64 routed experts top-6 with intermediate 1408, vocab 102400), 4096 tokens packed.
 * Each line: median of R timed runs after warm-up (CUDA events), on fresh random data,
 * and the rate it implies; the routed experts once per way of running their GEMMs
 * (CRUCIBLE_CUDA_EXPERTS = loop, grouped, streams on 2/4/8 side streams, auto) and the
 * bf16 LM head both ways (CRUCIBLE_CUDA_LMHEAD = bf16, fast16bf), and the routed experts of
 * decode steps (1, 7, 16, 64 rows) through Ops.moe_experts_small (slots kernels and, rows
 * "indexed", CRUCIBLE_CUDA_MOE_SMALL=indexed: model/cuda/moe_indexed.cu) and through the dispatched
 * path (rate: the distinct selected experts' weight bytes per second, to compare with the
 * GPU's memory bandwidth), and attention on the bf16 table's gemm path and on the wmma
 * flash kernels (ops_cuda_bf16_wmma), and the bf16 table's GEMMs, routed experts (loop)
 * and LM head (fast16bf) with the weights declared and CRUCIBLE_CUDA_BF16_WEIGHTS=1 (and
 * =all for the experts: every expert GEMM, not only those the size rule takes), rows
 * "+shadow": bf16 copies of the weights (model/cuda/param_shadow.cu), refreshed once before
 * the timed runs, so a row shows the steady state between optimizer steps (the activation
 * converted per call, the weight's refresh — one pass over it per step — not included).
 * Prints a table last.
 * Without CUDA (or a GPU) it says so and exits 0. Usage: cuda_ops_bench [tokens] */
#include <stdio.h>
#include <stdlib.h>

#ifndef CRUCIBLE_CUDA
int main(void) {
    printf("cuda_ops_bench: CUDA backend not built: nothing measured\n");
    return 0;
}
#else

#include <cuda_runtime.h>
#include <math.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "model/cuda/ops_cuda.h"
#include "model/ops.h"

enum { WARM = 2, REPS = 7 };

typedef struct Row {
    char name[64];
    double ms, rate;
    const char *unit;
} Row;
static Row g_rows[160];  /* 95 rows as of the latency, decode-attention and router rows */
static int g_nrows;

static int cmpd(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

typedef void (*BenchFn)(void *ctx);
static double time_ms(BenchFn fn, void *ctx) {
    cudaEvent_t a, b;
    if (cudaEventCreate(&a) || cudaEventCreate(&b)) { fprintf(stderr, "cudaEventCreate failed\n"); exit(1); }
    for (int i = 0; i < WARM; i++) fn(ctx);
    double t[REPS];
    for (int i = 0; i < REPS; i++) {
        cudaEventRecord(a, 0);
        fn(ctx);
        cudaEventRecord(b, 0);
        if (cudaEventSynchronize(b) != cudaSuccess) { fprintf(stderr, "CUDA error while timing\n"); exit(1); }
        float ms = 0;
        cudaEventElapsedTime(&ms, a, b);
        t[i] = ms;
    }
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    qsort(t, REPS, sizeof(double), cmpd);
    return t[REPS / 2];
}
static void record(const char *name, double ms, double work, const char *unit) {
    if (g_nrows == (int)(sizeof g_rows / sizeof *g_rows)) { fprintf(stderr, "cuda_ops_bench: too many rows\n"); exit(1); }
    Row *r = &g_rows[g_nrows++];
    snprintf(r->name, sizeof r->name, "%s", name);
    r->ms = ms;
    r->rate = work / (ms * 1e-3);
    r->unit = unit;
    printf("  %-44s %9.3f ms  %8.2f %s\n", name, ms, r->rate, unit);
    fflush(stdout);
}

static double now_wall(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static CrRng g_rng;
static float *drand(const Ops *o, size_t n, float scale) {
    float *h = malloc(sizeof(float) * n);
    if (!h) { fprintf(stderr, "out of memory\n"); exit(1); }
    /* uniform with the variance of N(0, scale^2): several times cheaper to draw than normals
     * (the expert and LM-head operands are ~1e9 floats), and timing needs only non-zero,
     * non-repeating data */
    for (size_t i = 0; i < n; i++) h[i] = (float)((2 * cr_rng_uniform(&g_rng) - 1) * 1.7320508075688772 * scale);
    float *d = o->alloc(sizeof(float) * n);
    o->upload(d, h, sizeof(float) * n);
    free(h);
    return d;
}
static int32_t *dints(const Ops *o, const int32_t *h, size_t n) {
    int32_t *d = o->alloc(sizeof(int32_t) * n);
    o->upload(d, h, sizeof(int32_t) * n);
    return d;
}

/* ---- GEMM --------------------------------------------------------------------------- */
typedef struct { const Ops *o; int M, N, K; float *A, *B, *C; } GemmCtx;
static void run_gemm(void *p) {
    GemmCtx *c = p;
    c->o->gemm(0, 1, c->M, c->N, c->K, 1.0f, c->A, c->K, c->B, c->K, 0.0f, c->C, c->N);
}

/* ---- attention ---------------------------------------------------------------------- */
typedef struct {
    const Ops *o; int N, H, dqk, dv, S; float *Q, *K, *V, *O, *lse, *dO, *dQ, *dK, *dV; int32_t *cu; float scale;
} AttCtx;
static void run_att_fwd(void *p) {
    AttCtx *c = p;
    c->o->attention_forward(c->O, c->lse, c->Q, c->K, c->V, c->cu, c->S, c->N, c->H, c->dqk, c->dv, c->scale);
}
static void run_att_bwd(void *p) {
    AttCtx *c = p;
    c->o->attention_backward(c->dQ, c->dK, c->dV, c->dO, c->O, c->lse, c->Q, c->K, c->V, c->cu, c->S, c->N, c->H,
                             c->dqk, c->dv, c->scale);
}

/* ---- MoE experts -------------------------------------------------------------------- */
typedef struct {
    const Ops *o; int E, D, I; int32_t off[65];
    float *Xp, *Wg, *Wu, *Wd, *Yp, *G, *U, *Hm, *dYp, *dXp, *dWg, *dWu, *dWd, *dG, *dU, *dHm;
} MoeCtx;
static void run_moe_fwd(void *p) {
    MoeCtx *c = p;
    c->o->moe_experts_forward(c->Yp, c->G, c->U, c->Hm, c->Xp, c->Wg, c->Wu, c->Wd, c->off, c->E, c->D, c->I);
}
static void run_moe_bwd(void *p) {
    MoeCtx *c = p;
    c->o->moe_experts_backward(c->dXp, c->dWg, c->dWu, c->dWd, c->dYp, c->dG, c->dU, c->dHm, c->Xp, c->G, c->U,
                               c->Hm, c->Wg, c->Wu, c->Wd, c->off, c->E, c->D, c->I);
}

/* ---- routed experts of a decode step: the small-N op vs the dispatched path ---------- */
typedef struct {
    const Ops *o; int N, D, E, K, I;
    float *x, *w, *Wg, *Wu, *Wd, *y, *h, *Xp, *Yp, *G, *U, *Hm; int32_t *idx, *ros, *sor, *off, off_host[65];
} DecMoeCtx;
static void run_decode_small(void *p) {
    DecMoeCtx *c = p;
    c->o->moe_experts_small(c->y, c->h, c->x, c->idx, c->w, c->Wg, c->Wu, c->Wd, c->N, c->D, c->I, c->K);
}
static void run_decode_indexed(void *p) {
    DecMoeCtx *c = p;
    if (setenv("CRUCIBLE_CUDA_MOE_SMALL", "indexed", 1) != 0) {
        fprintf(stderr, "setenv failed\n");
        exit(1);
    }
    c->o->moe_experts_small(c->y, c->h, c->x, c->idx, c->w, c->Wg, c->Wu, c->Wd, c->N, c->D, c->I, c->K);
    unsetenv("CRUCIBLE_CUDA_MOE_SMALL");
}
static void run_decode_dispatch(void *p) {  /* what model_ffn_forward_infer_ex does above its threshold */
    DecMoeCtx *c = p;
    c->o->moe_permute(c->Xp, c->ros, c->sor, c->off, c->x, c->idx, c->N, c->D, c->E, c->K);
    c->o->download(c->off_host, c->off, sizeof(int32_t) * (size_t)(c->E + 1));
    c->o->moe_experts_forward(c->Yp, c->G, c->U, c->Hm, c->Xp, c->Wg, c->Wu, c->Wd, c->off_host, c->E, c->D, c->I);
    c->o->moe_unpermute(c->y, c->Yp, c->w, c->ros, c->N, c->D, c->K);
}

/* ---- routing + dispatch ------------------------------------------------------------- */
typedef struct {
    const Ops *o; int N, D, E, K; OpsMoeRoute r;
    float *logits, *probs, *w, *x, *Xp, *Yp, *y; int32_t *idx, *ros, *sor, *off;
} DispCtx;
static void run_dispatch(void *p) {
    DispCtx *c = p;
    c->o->moe_route_forward(c->probs, c->idx, c->w, c->logits, c->N, &c->r);
    c->o->moe_permute(c->Xp, c->ros, c->sor, c->off, c->x, c->idx, c->N, c->D, c->E, c->K);
    c->o->moe_unpermute(c->y, c->Yp, c->w, c->ros, c->N, c->D, c->K);
}

/* ---- LM head ------------------------------------------------------------------------ */
typedef struct {
    const Ops *o; int N, V, D; float *y, *W, *logp, *lse, *scratch, *dlogp, *dy, *dW; int32_t *tg;
} LmCtx;
static void run_lm_fwd(void *p) {
    LmCtx *c = p;
    c->o->lmhead_logprob_forward(c->logp, c->lse, c->y, c->W, c->tg, c->N, c->V, c->D, c->scratch);
}
static void run_lm_bwd(void *p) {
    LmCtx *c = p;
    c->o->lmhead_logprob_backward(c->dy, 0.0f, c->dW, c->dlogp, c->lse, c->y, c->W, c->tg, c->N, c->V, c->D,
                                  c->scratch);
}

/* ---- RMSNorm ------------------------------------------------------------------------ */
typedef struct { const Ops *o; int N, D; float *x, *w, *out, *rstd, *dx, *dw, *dout; } NormCtx;
static void run_norm(void *p) {
    NormCtx *c = p;
    c->o->rmsnorm_forward(c->out, c->D, c->rstd, c->x, c->D, c->w, c->N, c->D, 1e-6f);
    c->o->rmsnorm_backward(c->dx, c->D, c->dw, c->dout, c->D, c->x, c->D, c->w, c->rstd, c->N, c->D);
}

/* ---- decode attention ----------------------------------------------------------------- */
typedef struct { const Ops *o; int n, H, r, dr, bt, maxb; float *cache, *qa, *out; int32_t *table, *pos; } MlaCtx;
static void run_mla(void *p) {
    MlaCtx *c = p;
    c->o->mla_decode_attention(c->out, c->qa, c->cache, c->table, c->maxb, 1, 0, c->bt, c->pos, c->n, c->H, c->r,
                               c->dr, 0.07f);
}

typedef struct { const Ops *o; int n; OpsMoeRoute r; float *logits, *probs, *w; int32_t *idx; } RouteCtx;
static void run_route(void *p) {
    RouteCtx *c = p;
    c->o->moe_route_forward(c->probs, c->idx, c->w, c->logits, c->n, &c->r);
}

/* CRUCIBLE_BENCH_ONLY=gemm,attention,experts,decode,dispatch,rmsnorm,lmhead,latency,mla,route: time only
 * those sections (a lent machine gives one command 10 minutes); unset: all */
static int want(const char *section) {
    const char *only = getenv("CRUCIBLE_BENCH_ONLY");
    if (!only || !*only) return 1;
    size_t n = strlen(section);
    for (const char *p = only; (p = strstr(p, section)) != NULL; p += n)
        if ((p == only || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return 1;
    return 0;
}

/* CRUCIBLE_BENCH_TABLES=fp32 or bf16: only that table's rows of the GEMM, expert and LM-head
 * sections; unset: both */
static int want_table(const char *name) {
    const char *t = getenv("CRUCIBLE_BENCH_TABLES");
    return !t || !*t || !strcmp(t, name);
}

int main(int argc, char **argv) {
    int N = argc > 1 ? atoi(argv[1]) : 4096;
    if (N < 64 || N > 65536) { fprintf(stderr, "cuda_ops_bench: tokens must be in [64, 65536]\n"); return 2; }
    if (crucible_cuda_device_count() <= 0) {
        printf("cuda_ops_bench: no CUDA device visible: nothing measured\n");
        return 0;
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) { fprintf(stderr, "cudaGetDeviceProperties failed\n"); return 1; }
    printf("cuda_ops_bench: %s, %d SMs, %d tokens\n", prop.name, prop.multiProcessorCount, N);
    cr_rng_init(&g_rng, 20261123, 1, 2);
    const Ops *tables[2] = {ops_cuda(), ops_cuda_bf16()};
    const char *tn[2] = {"fp32", "bf16"};

    for (int k = 0; k < 2 && want("gemm"); k++) {  /* GEMM peak and a Lite projection shape */
        if (!want_table(tn[k])) continue;
        const Ops *o = tables[k];
        int shapes[2][3] = {{8192, 8192, 8192}, {N, 3072, 2048}};
        for (int s = 0; s < 2; s++) {
            GemmCtx c = {o, shapes[s][0], shapes[s][1], shapes[s][2], NULL, NULL, NULL};
            c.A = drand(o, (size_t)c.M * c.K, 1);
            c.B = drand(o, (size_t)c.N * c.K, 1);
            c.C = drand(o, (size_t)c.M * c.N, 1);
            char name[64];
            snprintf(name, sizeof name, "gemm %s %dx%dx%d", tn[k], c.M, c.N, c.K);
            record(name, time_ms(run_gemm, &c), 2.0 * c.M * c.N * c.K / 1e12, "TFLOP/s");
            if (k == 1) {  /* B [N, K] as a declared weight read from its bf16 copy */
                o->declare_params(c.B, (size_t)c.N * c.K);
                if (setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", "1", 1) != 0) { fprintf(stderr, "setenv failed\n"); return 1; }
                snprintf(name, sizeof name, "gemm %s+shadow %dx%dx%d", tn[k], c.M, c.N, c.K);
                record(name, time_ms(run_gemm, &c), 2.0 * c.M * c.N * c.K / 1e12, "TFLOP/s");
                unsetenv("CRUCIBLE_CUDA_BF16_WEIGHTS");
            }
            o->free(c.A), o->free(c.B), o->free(c.C);
        }
    }
    /* attention: one sequence, and 4 packed sequences; the bf16 table's gemm path next to
     * its tensor-core flash kernels (ops_cuda_bf16_wmma, model/cuda/attention_wmma.cu) */
    const Ops *att_tables[4] = {ops_cuda(), ops_cuda_bf16(), ops_cuda_bf16_wmma(), ops_cuda_flash()};
    /* the scalar flash kernels (ops_cuda_flash) are 5-10x slower than the rest and no
     * table uses them by default: timed only with CRUCIBLE_BENCH_FLASH=1, so the bench
     * fits one 10-minute call of a lent machine */
    const char *with_flash = getenv("CRUCIBLE_BENCH_FLASH");
    int n_att = with_flash && !strcmp(with_flash, "1") ? 4 : 3;
    for (int k = 0; k < n_att && want("attention"); k++) {
        const Ops *o = att_tables[k];
        for (int S = 1; S <= 4; S *= 4) {
            AttCtx c = {.o = o, .N = N, .H = 16, .dqk = 192, .dv = 128, .S = S};
            c.scale = 1.0f / sqrtf(192.0f);
            size_t nq = (size_t)N * c.H * c.dqk, nv = (size_t)N * c.H * c.dv;
            c.Q = drand(o, nq, 1), c.K = drand(o, nq, 1), c.V = drand(o, nv, 1), c.O = drand(o, nv, 1);
            c.lse = drand(o, (size_t)N * c.H, 1), c.dO = drand(o, nv, 1), c.dQ = drand(o, nq, 1);
            c.dK = drand(o, nq, 1), c.dV = drand(o, nv, 1);
            int32_t cu[5];
            for (int s = 0; s <= S; s++) cu[s] = (int)((long)N * s / S);
            c.cu = dints(o, cu, (size_t)S + 1);
            double pairs = 0;  /* causal (query, key) pairs */
            for (int s = 0; s < S; s++) pairs += (double)(cu[s + 1] - cu[s]) * (cu[s + 1] - cu[s] + 1) / 2;
            char name[64];
            snprintf(name, sizeof name, "attention fwd %s %d seq H16 192/128", o->name, S);
            record(name, time_ms(run_att_fwd, &c), 2.0 * pairs * c.H * (c.dqk + c.dv) / 1e12, "TFLOP/s");
            snprintf(name, sizeof name, "attention bwd %s %d seq", o->name, S);
            record(name, time_ms(run_att_bwd, &c), 2.0 * pairs * c.H * (3 * c.dqk + 2 * c.dv) / 1e12, "TFLOP/s");
            float *bufs[] = {c.Q, c.K, c.V, c.O, c.lse, c.dO, c.dQ, c.dK, c.dV};
            for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) o->free(bufs[i]);
            o->free(c.cu);
        }
    }
    for (int k = 0; k < 2 && want("experts"); k++) {  /* routed experts: 64 x (2048 -> 1408 -> 2048), top-6 */
        if (!want_table(tn[k])) continue;
        const Ops *o = tables[k];
        MoeCtx c = {.o = o, .E = 64, .D = 2048, .I = 1408};
        int S = N * 6;
        /* a mildly uneven split: expert e gets a share proportional to 1 + (e % 4) */
        double tot = 0;
        for (int e = 0; e < c.E; e++) tot += 1 + e % 4;
        c.off[0] = 0;
        for (int e = 0; e < c.E; e++) c.off[e + 1] = e + 1 == c.E ? S : c.off[e] + (int)(S * (1 + e % 4) / tot);
        size_t nw = (size_t)c.E * c.I * c.D, nx = (size_t)S * c.D, ni = (size_t)S * c.I;
        c.Xp = drand(o, nx, 1), c.Wg = drand(o, nw, 0.02f), c.Wu = drand(o, nw, 0.02f), c.Wd = drand(o, nw, 0.02f);
        c.Yp = drand(o, nx, 1), c.G = drand(o, ni, 1), c.U = drand(o, ni, 1), c.Hm = drand(o, ni, 1);
        c.dYp = drand(o, nx, 1), c.dXp = drand(o, nx, 1), c.dWg = drand(o, nw, 1), c.dWu = drand(o, nw, 1);
        c.dWd = drand(o, nw, 1), c.dG = drand(o, ni, 1), c.dU = drand(o, ni, 1), c.dHm = drand(o, ni, 1);
        double fl = 2.0 * 3 * S * (double)c.D * c.I;
        /* each way of running the expert GEMMs (model/cuda/moe_grouped.cu); "streams" on 4
         * is what the tables do when CRUCIBLE_CUDA_EXPERTS is unset */
        const char *modes[6] = {"loop", "grouped", "streams", "streams", "streams", "auto"};
        const char *nstreams[6] = {"4", "4", "2", "4", "8", "4"};  /* CRUCIBLE_CUDA_EXPERT_STREAMS */
        for (int m = 0; m < 6; m++) {
            if (setenv("CRUCIBLE_CUDA_EXPERTS", modes[m], 1) != 0 ||
                setenv("CRUCIBLE_CUDA_EXPERT_STREAMS", nstreams[m], 1) != 0) {
                fprintf(stderr, "setenv failed\n");
                return 1;
            }
            int st = !strcmp(modes[m], "streams");
            char name[64];
            snprintf(name, sizeof name, "moe experts fwd %s %s%s", tn[k], modes[m], st ? nstreams[m] : "");
            record(name, time_ms(run_moe_fwd, &c), fl / 1e12, "TFLOP/s");
            snprintf(name, sizeof name, "moe experts bwd %s %s%s", tn[k], modes[m], st ? nstreams[m] : "");
            record(name, time_ms(run_moe_bwd, &c), 2 * fl / 1e12, "TFLOP/s");
        }
        if (k == 1) {  /* loop, the weights as declared parameters read from bf16 copies */
            o->declare_params(c.Wg, nw), o->declare_params(c.Wu, nw), o->declare_params(c.Wd, nw);
            const char *wmodes[2] = {"1", "all"};
            for (int w = 0; w < 2; w++) {
                if (setenv("CRUCIBLE_CUDA_EXPERTS", "loop", 1) != 0 ||
                    setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", wmodes[w], 1) != 0) {
                    fprintf(stderr, "setenv failed\n");
                    return 1;
                }
                char name[64];
                snprintf(name, sizeof name, "moe experts fwd %s loop+shadow%s", tn[k], w ? " all" : "");
                record(name, time_ms(run_moe_fwd, &c), fl / 1e12, "TFLOP/s");
                snprintf(name, sizeof name, "moe experts bwd %s loop+shadow%s", tn[k], w ? " all" : "");
                record(name, time_ms(run_moe_bwd, &c), 2 * fl / 1e12, "TFLOP/s");
            }
            unsetenv("CRUCIBLE_CUDA_BF16_WEIGHTS");
        }
        unsetenv("CRUCIBLE_CUDA_EXPERTS");
        unsetenv("CRUCIBLE_CUDA_EXPERT_STREAMS");
        float *bufs[] = {c.Xp, c.Wg, c.Wu, c.Wd, c.Yp, c.G, c.U, c.Hm, c.dYp, c.dXp, c.dWg, c.dWu, c.dWd, c.dG, c.dU, c.dHm};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) o->free(bufs[i]);
    }
    if (want("decode")) {   /* routed experts of decode steps (Lite: E 64, top-6, 2048 -> 1408 -> 2048), fp32 table:
         * Ops.moe_experts_small against permute + offsets download + expert GEMMs +
         * unpermute. Rate: bytes of the distinct selected experts' weights (what a
         * bandwidth-bound step must read) per second. */
        const Ops *o = tables[0];
        DecMoeCtx c = {.o = o, .D = 2048, .E = 64, .K = 6, .I = 1408};
        size_t nw = (size_t)c.E * c.I * c.D;
        c.Wg = drand(o, nw, 0.02f), c.Wu = drand(o, nw, 0.02f), c.Wd = drand(o, nw, 0.02f);
        static const int Ns[4] = {1, 7, 16, 64};
        for (int t = 0; t < 4; t++) {
            c.N = Ns[t];
            size_t S = (size_t)c.N * c.K;
            int32_t idx[64 * 6];
            unsigned char used[64] = {0};
            for (int n = 0; n < c.N; n++)  /* K distinct experts per row */
                for (int k = 0; k < c.K; k++) {
                    int e, dup;
                    do {
                        e = (int)(cr_rng_u64(&g_rng) % 64);
                        dup = 0;
                        for (int j = 0; j < k; j++) dup |= idx[n * c.K + j] == e;
                    } while (dup);
                    idx[n * c.K + k] = e;
                    used[e] = 1;
                }
            int distinct = 0;
            for (int e = 0; e < 64; e++) distinct += used[e];
            c.idx = dints(o, idx, S);
            c.x = drand(o, (size_t)c.N * c.D, 1), c.w = drand(o, S, 0.3f), c.y = drand(o, (size_t)c.N * c.D, 1);
            c.h = drand(o, S * c.I, 1), c.Xp = drand(o, S * c.D, 1), c.Yp = drand(o, S * c.D, 1);
            c.G = drand(o, S * c.I, 1), c.U = drand(o, S * c.I, 1), c.Hm = drand(o, S * c.I, 1);
            c.ros = o->alloc(4 * S), c.sor = o->alloc(4 * S), c.off = o->alloc(4 * 65);
            double bytes = 3.0 * distinct * c.I * c.D * sizeof(float);
            char name[64];
            snprintf(name, sizeof name, "decode experts small N=%d (%d experts)", c.N, distinct);
            record(name, time_ms(run_decode_small, &c), bytes / 1e9, "GB/s");
            snprintf(name, sizeof name, "decode experts indexed N=%d", c.N);
            record(name, time_ms(run_decode_indexed, &c), bytes / 1e9, "GB/s");
            snprintf(name, sizeof name, "decode experts dispatch N=%d", c.N);
            record(name, time_ms(run_decode_dispatch, &c), bytes / 1e9, "GB/s");
            float *bufs[] = {c.x, c.w, c.y, c.h, c.Xp, c.Yp, c.G, c.U, c.Hm};
            for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) o->free(bufs[i]);
            o->free(c.idx), o->free(c.ros), o->free(c.sor), o->free(c.off);
        }
        o->free(c.Wg), o->free(c.Wu), o->free(c.Wd);
    }
    if (want("mla")) {  /* decode attention over the paged latent cache (Lite: 16 heads, 512 + 64),
                         * splits of 256 positions (default) against CRUCIBLE_CUDA_MLA_SPLIT=64/32.
                         * Rate: latent-cache bytes read once per row (what the step must read). */
        const Ops *o = tables[0];
        static const int Ns[2] = {1, 64}, ctxs[2] = {1000, 2000};
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++) {
                MlaCtx c = {.o = o, .n = Ns[a], .H = 16, .r = 512, .dr = 64, .bt = 16};
                int ctx = ctxs[b];
                c.maxb = (ctx + c.bt - 1) / c.bt;
                size_t rows = (size_t)c.n * c.maxb * c.bt, rw = 576;
                c.cache = drand(o, rows * rw, 1);
                c.qa = drand(o, (size_t)c.n * c.H * rw, 0.05f);
                c.out = drand(o, (size_t)c.n * c.H * c.r, 1);
                int32_t *hbt = malloc(sizeof(int32_t) * (size_t)c.n * c.maxb), *hpos = malloc(sizeof(int32_t) * c.n);
                for (int i = 0; i < c.n * c.maxb; i++) hbt[i] = i;
                for (int i = 0; i < c.n; i++) hpos[i] = ctx - 1;
                c.table = dints(o, hbt, (size_t)c.n * c.maxb), c.pos = dints(o, hpos, c.n);
                free(hbt), free(hpos);
                static const char *const splits[3] = {"256", "64", "32"};
                for (int k = 0; k < 3; k++) {
                    if (setenv("CRUCIBLE_CUDA_MLA_SPLIT", splits[k], 1) != 0) { fprintf(stderr, "setenv failed\n"); return 1; }
                    char name[64];
                    snprintf(name, sizeof name, "decode attention N=%d ctx %d split %s", c.n, ctx, splits[k]);
                    record(name, time_ms(run_mla, &c), 4.0 * c.n * ctx * rw / 1e9, "GB/s");
                }
                unsetenv("CRUCIBLE_CUDA_MLA_SPLIT");
                o->free(c.cache), o->free(c.qa), o->free(c.out), o->free(c.table), o->free(c.pos);
            }
    }
    if (want("route")) {  /* the router of a decode step (Lite: E 64, top-6): one thread per token
                           * (default) against one warp (CRUCIBLE_CUDA_ROUTE=warp). Rate: tokens/s. */
        const Ops *o = tables[0];
        static const int Ns[3] = {1, 8, 64};
        for (int a = 0; a < 3; a++) {
            RouteCtx c = {.o = o, .n = Ns[a], .r = {64, 6, 0, 1, 1, 0, 1.0f}};
            c.logits = drand(o, (size_t)c.n * 64, 1), c.probs = drand(o, (size_t)c.n * 64, 1);
            c.w = drand(o, (size_t)c.n * 6, 1);
            c.idx = o->alloc(sizeof(int32_t) * (size_t)c.n * 6);
            for (int k = 0; k < 2; k++) {
                if (k && setenv("CRUCIBLE_CUDA_ROUTE", "warp", 1) != 0) { fprintf(stderr, "setenv failed\n"); return 1; }
                char name[64];
                snprintf(name, sizeof name, "router E64 K6 N=%d %s", c.n, k ? "warp" : "thread");
                record(name, time_ms(run_route, &c), c.n / 1e6, "M tok/s");
            }
            unsetenv("CRUCIBLE_CUDA_ROUTE");
            o->free(c.logits), o->free(c.probs), o->free(c.w), o->free(c.idx);
        }
    }
    if (want("dispatch")) {   /* router + permute + combine */
        const Ops *o = tables[0];
        DispCtx c = {.o = o, .N = N, .D = 2048, .E = 64, .K = 6, .r = {64, 6, 0, 1, 1, 0, 1.0f}};
        size_t S = (size_t)N * 6;
        c.logits = drand(o, (size_t)N * 64, 1), c.probs = drand(o, (size_t)N * 64, 1), c.w = drand(o, S, 1);
        c.x = drand(o, (size_t)N * c.D, 1), c.Xp = drand(o, S * c.D, 1), c.Yp = drand(o, S * c.D, 1);
        c.y = drand(o, (size_t)N * c.D, 1);
        c.idx = o->alloc(4 * S), c.ros = o->alloc(4 * S), c.sor = o->alloc(4 * S), c.off = o->alloc(4 * 65);
        double bytes = 4.0 * (2 * S * c.D + 2.0 * S * c.D + (double)N * c.D * 2);
        record("route+permute+unpermute fwd (E64 K6)", time_ms(run_dispatch, &c), bytes / 1e9, "GB/s");
        float *bufs[] = {c.logits, c.probs, c.w, c.x, c.Xp, c.Yp, c.y};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) o->free(bufs[i]);
        o->free(c.idx), o->free(c.ros), o->free(c.sor), o->free(c.off);
    }
    if (want("rmsnorm")) {
        const Ops *o = tables[0];
        NormCtx c = {.o = o, .N = N, .D = 2048};
        size_t n = (size_t)N * c.D;
        c.x = drand(o, n, 1), c.w = drand(o, c.D, 1), c.out = drand(o, n, 1), c.rstd = drand(o, N, 1);
        c.dx = drand(o, n, 1), c.dw = drand(o, c.D, 1), c.dout = drand(o, n, 1);
        record("rmsnorm fwd+bwd 2048", time_ms(run_norm, &c), 4.0 * n * 6 / 1e9, "GB/s");
        float *bufs[] = {c.x, c.w, c.out, c.rstd, c.dx, c.dw, c.dout};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) o->free(bufs[i]);
    }
    for (int k = 0; k < 2 && want("lmhead"); k++) {
        if (!want_table(tn[k])) continue;
        const Ops *o = tables[k];
        LmCtx c = {.o = o, .N = N, .V = 102400, .D = 2048};
        c.y = drand(o, (size_t)N * c.D, 1), c.W = drand(o, (size_t)c.V * c.D, 0.02f);
        c.logp = drand(o, N, 1), c.lse = drand(o, N, 1), c.scratch = drand(o, ops_lmhead_scratch_floats(), 1);
        c.dlogp = drand(o, N, 1), c.dy = drand(o, (size_t)N * c.D, 1), c.dW = drand(o, (size_t)c.V * c.D, 1);
        int32_t *tg = malloc(4 * (size_t)N);
        for (int i = 0; i < N; i++) tg[i] = (int)(cr_rng_u64(&g_rng) % (uint64_t)c.V);
        c.tg = dints(o, tg, N);
        free(tg);
        double fl = 2.0 * N * (double)c.V * c.D;
        /* bf16 table: operands rounded to bf16 once per chunk (default), and the fp32
         * operands through FAST_16BF (CRUCIBLE_CUDA_LMHEAD=fast16bf, model/cuda/lmhead.cu) */
        const char *lmodes[2] = {"bf16", "fast16bf"};
        for (int m = 0; m < (k ? 2 : 1); m++) {
            if (setenv("CRUCIBLE_CUDA_LMHEAD", lmodes[m], 1) != 0) { fprintf(stderr, "setenv failed\n"); return 1; }
            char name[64];
            snprintf(name, sizeof name, "lmhead fwd %s%s%s V=102400", tn[k], k ? " " : "", k ? lmodes[m] : "");
            record(name, time_ms(run_lm_fwd, &c), fl / 1e12, "TFLOP/s");
            snprintf(name, sizeof name, "lmhead bwd %s%s%s", tn[k], k ? " " : "", k ? lmodes[m] : "");
            record(name, time_ms(run_lm_bwd, &c), 3 * fl / 1e12, "TFLOP/s");
        }
        if (k == 1) {  /* fast16bf with W a declared weight read from its bf16 copy */
            o->declare_params(c.W, (size_t)c.V * c.D);
            if (setenv("CRUCIBLE_CUDA_LMHEAD", "fast16bf", 1) != 0 || setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", "1", 1) != 0) {
                fprintf(stderr, "setenv failed\n");
                return 1;
            }
            record("lmhead fwd bf16 fast16bf+shadow", time_ms(run_lm_fwd, &c), fl / 1e12, "TFLOP/s");
            record("lmhead bwd bf16 fast16bf+shadow", time_ms(run_lm_bwd, &c), 3 * fl / 1e12, "TFLOP/s");
            unsetenv("CRUCIBLE_CUDA_BF16_WEIGHTS");
        }
        unsetenv("CRUCIBLE_CUDA_LMHEAD");
        float *bufs[] = {c.y, c.W, c.logp, c.lse, c.scratch, c.dlogp, c.dy, c.dW};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) o->free(bufs[i]);
        o->free(c.tg);
    }
    if (want("latency")) {  /* host wall time per call of what one batch-1 decode step calls */
        const Ops *o = tables[1];
        float *x = drand(o, 102400 * 2, 1), *W = drand(o, (size_t)102400 * 2048, 0.02f), *y = drand(o, 102400 * 2, 1);
        int32_t *tok = dints(o, (const int32_t[4]){0, 0, 0, 0}, 4);
        double *uni = o->alloc(sizeof(double) * 4), hu[4] = {0.5, 0.5, 0.5, 0.5};
        o->upload(uni, hu, sizeof hu);
        char hb[64];
        void *pinned = NULL;
        if (cudaMallocHost(&pinned, 64) != cudaSuccess) { fprintf(stderr, "cudaMallocHost failed\n"); return 1; }
        OpsSampler sc = {.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f};
        enum { R = 200 };
        for (int kind = 0; kind < 9; kind++) {
            static const char *const names[9] = {
                "latency upload 16 B (pageable)", "latency download 12 B (pageable)", "latency cudaMemcpy D2H 12 B pinned",
                "latency add 2048 (launch, no sync)", "latency add 2048 + download", "latency gemm bf16 1x3072x2048 (launch)",
                "latency gemm 1x102400x2048 + download", "latency sample_rows 1x102400 + download",
                "latency rmsnorm 1x2048 (launch)"};
            o->download(hb, tok, 4);
            double t0 = now_wall();
            for (int i = 0; i < R; i++) switch (kind) {
                case 0: o->upload(uni, hu, 16); break;
                case 1: o->download(hb, tok, 12); break;
                case 2: if (cudaMemcpy(pinned, tok, 12, cudaMemcpyDeviceToHost) != cudaSuccess) exit(1); break;
                case 3: o->add(y, x, 2048); break;
                case 4: o->add(y, x, 2048); o->download(hb, tok, 4); break;
                case 5: o->gemm(0, 1, 1, 3072, 2048, 1.0f, x, 2048, W, 2048, 0.0f, y, 3072); break;
                case 6: o->gemm(0, 1, 1, 102400, 2048, 1.0f, x, 2048, W, 2048, 0.0f, y, 102400); o->download(hb, tok, 4); break;
                case 7: o->sample_rows(tok, y, y + 1, x, 1, 102400, &sc, uni); o->download(hb, tok, 12); break;
                case 8: o->rmsnorm_forward(y, 2048, y + 4096, x, 2048, W, 1, 2048, 1e-6f); break;
            }
            double issue = now_wall() - t0;
            o->download(hb, tok, 4);
            double all = now_wall() - t0;
            printf("  %-44s %9.1f us/call issued, %9.1f us/call to completion\n", names[kind], 1e6 * issue / R, 1e6 * all / R);
            record(names[kind], 1e3 * all / R, 1e-3, "k calls/s");
        }
        /* a Lite projection (N 3072, K 2048) at decode batch sizes: the GEMV kernel (M <= 8,
         * model/cuda/gemv_small.cu) against cuBLAS (CRUCIBLE_CUDA_GEMV=0), both tables:
         * host time per call issued back to back, and the device time (events) */
        for (int k = 0; k < 2; k++)
            for (int gv = 0; gv < 2; gv++)
                for (int Mi = 0; Mi < 3; Mi++) {
                    static const int Ms[3] = {1, 8, 64};
                    int M = Ms[Mi];
                    if (gv == 0 && M > 8) continue;  /* no GEMV there: the cuBLAS row covers it */
                    if (setenv("CRUCIBLE_CUDA_GEMV", gv == 0 ? "1" : "0", 1) != 0) { fprintf(stderr, "setenv failed\n"); return 1; }
                    GemmCtx c = {tables[k], M, 3072, 2048, x, W, y};
                    o->download(hb, tok, 4);
                    double t0 = now_wall();
                    for (int i = 0; i < R; i++) run_gemm(&c);
                    double issue = now_wall() - t0;
                    o->download(hb, tok, 4);
                    double all = now_wall() - t0, ev = time_ms(run_gemm, &c);
                    char name[64];
                    snprintf(name, sizeof name, "latency gemm %s %s %dx3072x2048", tn[k], gv == 0 ? "gemv" : "cublas", M);
                    printf("  %-44s %9.1f us/call issued, %9.1f us/call to completion, device %.1f us\n", name,
                           1e6 * issue / R, 1e6 * all / R, 1e3 * ev);
                    record(name, ev, 4.0 * 3072 * 2048 / 1e9, "GB/s");
                }
        unsetenv("CRUCIBLE_CUDA_GEMV");
        cudaFreeHost(pinned);
        o->free(x), o->free(W), o->free(y), o->free(tok), o->free(uni);
    }
    printf("\n%-46s %10s %10s\n", "op (CUDA backend)", "ms", "rate");
    for (int i = 0; i < g_nrows; i++)
        printf("%-46s %10.3f %9.2f %s\n", g_rows[i].name, g_rows[i].ms, g_rows[i].rate, g_rows[i].unit);
    return 0;
}
#endif
