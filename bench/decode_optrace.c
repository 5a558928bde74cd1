/* bench/decode_optrace.c — what one decode step of the rollout engine's Ops path asks of
 * its backend: every Ops call, counted, with the bytes its arguments imply, the CUDA
 * launches and host synchronisations it costs on the ops_cuda_bf16() table (read from
 * model/cuda/) and a modelled H100 time. CPU only: no GPU is needed.
 *
 *   build/bench/decode_optrace [--mode dry|real] [--layers 27] [--seqs 1,8,64]
 *                              [--ctx 1000,2000] [--gen 3] [--launch-us 5] [--blas-us 8]
 *                              [--sync-us 20] [--bw-tbs 2.5] [--kmin-us 2] [--moe auto|slots|indexed]
 *
 * How: a counting Ops table is handed to model_create_infer and the model to the real
 * rollout engine (rollout_create / rollout_generate: rollout/rollout.c, forward_ops.c,
 * kv_cache.c, model.c's FFN — unchanged), so the trace is the engine's own call stream.
 * B random prompts of ctx tokens, one sample each, gen new tokens (temperature 1, EOS
 * ignored, experts recorded unless --record-experts=false), as bench/cuda_decode.c's
 * timed run does. A decode step is cut at Ops.sample_rows (the
 * engine calls it exactly once per step, after the forward): the window between two of
 * them holds the previous step's downloads, this step's forward and its sampling. The
 * LAST decode window (steady state, context ctx + gen - 1) is printed.
 *  - dry (default): the DeepSeek-Coder-V2-Lite shape (bench/decode_plan.h), 27 layers.
 *    Nothing is computed: memory is reserved but untouched (MAP_NORESERVE), the router
 *    picks K distinct experts per row uniformly at random (what random weights give),
 *    moe_permute computes the true expert offsets of that routing, sample_rows draws a
 *    random token; every other op only counts. Control flow of the engine depends only
 *    on those (offsets, tokens), so the call stream is the one a GPU run makes.
 *  - real (needs --model-config, e.g. configs/tiny/model.json): random weights, every op
 *    runs ops_cpu() (sample_rows is greedy on the host): a check that the dry stream
 *    equals a computed one (run dry with the same --model-config: same calls and launches
 *    per op; bytes of the expert ops differ with the routing).
 *
 * Bytes ("MB" columns): what the arguments imply the op must touch: GEMMs 4(MK+KN+MN)
 * (+MN when beta != 0), copies read + write, mla_decode_attention the latent rows of
 * every row's context, moe_experts_small each slot's expert weights (3 I D floats per
 * slot: the kernel re-reads an expert chosen by several rows), moe_experts_forward each
 * expert with rows once; with --moe indexed, and auto above 64 slots (the CUDA table's
 * default, CRUCIBLE_CUDA_MOE_SMALL: model/cuda/moe_indexed.cu, slot threshold 4096 under
 * both, 5 launches) moe_experts_small reads each selected expert once per run of 64 of its
 * slots (ceil(r / 64) for an expert of r slots), grid: the distinct experts x 88 row
 * tiles; GEMMs of 1..8 rows (A B^T) are the GEMV kernel (model/cuda/gemv_small.cu), a
 * launch, not a cuBLAS call. "need": the same with every weight read once per step and the
 * latent cache read once (what the math needs); ratio > 1.2 is flagged. --decode-bf16: the
 * GEMV's weight and moe_experts_small's experts at 2 bytes per weight (the bf16 copies of
 * CRUCIBLE_CUDA_DECODE_BF16=1); other weights (cuBLAS GEMMs, gemm_batched) stay 4.
 * Launches/syncs per op (model/cuda): cuBLAS calls and kernels 1 each; mla_decode 2;
 * moe_experts_small 2; moe_permute 4; sample_rows 2 (no top-k/top-p); upload/download are
 * cudaMemcpy from pageable memory: a launch and a host sync each (the host waits for the
 * queue to drain); moe_experts_forward (streams mode) 1 cuBLAS call per GEMM (3 per
 * expert with rows) + SwiGLU + 2 x (1 + 2 x 4) event calls; alloc = cudaMalloc + memset
 * (sync), free = cudaFree (sync); mla_decode's cuda_big_scratch regrows (cudaFree: sync)
 * when n * H * n_split * (r + 2) floats exceed what it held.
 * Time model (an estimate, not a measurement): host and GPU clocks; each launch costs
 * the host launch-us (cuBLAS blas-us), the kernel starts at max(gpu, host) and runs
 * max(kmin-us, bytes / bw'), bw' = bw for a grid of >= sms / sm-share blocks and in
 * proportion below (the "grid" column: the kernel's blocks where model/cuda fixes them;
 * "-" for cuBLAS and copies, modelled at bw); a sync sets host = gpu + sync-us and the
 * GPU idles until the next launch. cuBLAS efficiency at tiny M is not modelled.
 * Measured on the H100 since (bench/RESULTS.md, third lease): a launch 4 us of host time, a
 * download 8 us, cublasGemmEx 6 us (bf16, M 1) to 60-330 us (M 8..64; fp32 M 1) — pass
 * --blas-us to model those —; the 27-layer batch-1 step took 14.2 ms against the 5.2 ms
 * modelled (kernels of few blocks run far below the bandwidth share modelled here, e.g.
 * the router 28 us, and launches leave gaps), batch 64 63 ms against 29. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bench/decode_plan.h"
#include "core/alloc.h"
#include "core/args.h"
#include "core/rng.h"
#include "model/config.h"
#include "model/model.h"
#include "model/ops.h"
#include "rollout/rollout.h"
#include "rollout/sampler.h"

/* ---- the counters ------------------------------------------------------------------- */

#define OP_LIST(X)                                                                                                 \
    X(alloc) X(free) X(upload) X(download) X(zero) X(copy) X(gemm) X(gemm_batched) X(copy2d) X(add) X(scale)     \
    X(count_nonfinite) X(embedding_forward) X(rmsnorm_forward) X(rope_forward) X(swiglu_forward)                  \
    X(attention_forward) X(mla_kv_assemble_forward) X(moe_route_forward) X(moe_permute) X(moe_experts_forward)   \
    X(moe_unpermute) X(mla_cache_scatter) X(mla_decode_attention) X(sample_rows) X(moe_experts_small)            \
    X(big_scratch_regrow) X(other)
#define OP_ENUM(n) OP_##n,
#define OP_NAME(n) #n,
enum { OP_LIST(OP_ENUM) OP_N };
static const char *const k_op_name[OP_N] = {OP_LIST(OP_NAME)};

typedef struct OpStat {
    double calls, launches, syncs, bytes, need, gpu_s;
    double grid;  /* fewest thread blocks of one of its launches (0: unknown, e.g. cuBLAS) */
} OpStat;

typedef struct Window {  /* one decode step (or an admit sampling) */
    OpStat op[OP_N];
    int n_rows;          /* sample_rows' n */
    int prefill;         /* the window ran attention_forward (a prefill) */
    double host_s, gpu_s, step_s;  /* modelled clocks over the window */
} Window;

typedef struct Cost {
    double launch_s, blas_s, sync_s, bw, kmin_s;
    double n_sm, sm_share;  /* a grid of b blocks reaches bw * min(1, sm_share * b / n_sm) */
} Cost;

/* Module state of this program (one process, one thread calls the table). */
static struct {
    int dry;
    int moe_mode;              /* --moe: 0 auto, 1 slots, 2 indexed (CRUCIBLE_CUDA_MOE_SMALL) */
    double wb;                 /* bytes per weight the few-row kernels read: 4, or 2 (--decode-bf16) */
    const Ops *cpu;
    Cost cost;
    Window cur;
    Window *win;
    int n_win, cap_win;
    double host, gpu;          /* modelled clocks */
    double cur_t0;             /* host clock at the window's start */
    size_t big_scratch;        /* bytes cuda_big_scratch holds */
    int E, K, V;               /* routing / vocabulary of the model being traced */
    CrRng rng;
    struct { void *p; size_t n; } *maps;
    int n_maps, cap_maps;
} g;

/* One op call: n launches (n_blas of them cuBLAS) sharing `bytes` of GPU traffic, then
 * `syncs` host synchronisations. blocks: the call's smallest kernel grid (0: unknown). */
static void account_grid(int op, double launches, double n_blas, double syncs, double bytes, double need,
                         double blocks) {
    OpStat *s = &g.cur.op[op];
    if (blocks > 0 && (s->grid == 0 || blocks < s->grid)) s->grid = blocks;
    double bw = g.cost.bw;
    if (blocks > 0 && g.cost.sm_share * blocks < g.cost.n_sm) bw *= g.cost.sm_share * blocks / g.cost.n_sm;
    s->calls += 1;
    s->launches += launches;
    s->syncs += syncs;
    s->bytes += bytes;
    s->need += need;
    double per = launches > 0 ? bytes / bw / launches : 0;
    if (per < g.cost.kmin_s && launches > 0) per = g.cost.kmin_s;
    for (int i = 0; i < (int)launches; i++) {
        g.host += i < (int)n_blas ? g.cost.blas_s : g.cost.launch_s;
        double start = g.gpu > g.host ? g.gpu : g.host;
        g.gpu = start + per;
        s->gpu_s += per;
    }
    for (int i = 0; i < (int)syncs; i++) {
        g.host = (g.gpu > g.host ? g.gpu : g.host) + g.cost.sync_s;
        g.gpu = g.host;
    }
}

static void account(int op, double launches, double n_blas, double syncs, double bytes, double need) {
    account_grid(op, launches, n_blas, syncs, bytes, need, 0);
}

static double grid_for(double elems) { return ceil(elems / 256); }  /* model/cuda/cuda_common.cuh */

static void window_close(int n_rows) {
    g.cur.n_rows = n_rows;
    g.cur.step_s = (g.host > g.gpu ? g.host : g.gpu) - g.cur_t0;
    if (g.n_win == g.cap_win) {
        g.cap_win = g.cap_win ? 2 * g.cap_win : 256;
        g.win = cr_realloc(g.win, sizeof *g.win * (size_t)g.cap_win);
    }
    g.win[g.n_win++] = g.cur;
    memset(&g.cur, 0, sizeof g.cur);
    g.cur_t0 = g.host > g.gpu ? g.host : g.gpu;
}

static void trace_reset(void) {
    memset(&g.cur, 0, sizeof g.cur);
    g.n_win = 0;
    g.host = g.gpu = g.cur_t0 = 0;
}

/* ---- memory: real (ops_cpu) or reserved-only (dry) ------------------------------------ */

static void *t_alloc(size_t bytes) {
    account(OP_alloc, 1, 0, 1, 0, 0);
    if (!g.dry) return g.cpu->alloc(bytes);
    size_t n = bytes ? bytes : 1;
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) {
        fprintf(stderr, "decode_optrace: mmap of %zu bytes failed\n", n);
        exit(1);
    }
    if (g.n_maps == g.cap_maps) {
        g.cap_maps = g.cap_maps ? 2 * g.cap_maps : 256;
        g.maps = cr_realloc(g.maps, sizeof *g.maps * (size_t)g.cap_maps);
    }
    g.maps[g.n_maps].p = p;
    g.maps[g.n_maps++].n = n;
    return p;
}
static void t_free(void *p) {
    if (!p) return;
    account(OP_free, 1, 0, 1, 0, 0);
    if (!g.dry) {
        g.cpu->free(p);
        return;
    }
    for (int i = 0; i < g.n_maps; i++)
        if (g.maps[i].p == p) {
            munmap(p, g.maps[i].n);
            g.maps[i] = g.maps[--g.n_maps];
            return;
        }
    fprintf(stderr, "decode_optrace: free of an unknown pointer\n");
    exit(1);
}
/* Small transfers are real in both modes (tokens, positions, block tables, offsets). */
static void t_upload(void *dst, const void *src, size_t bytes) {
    account(OP_upload, 1, 0, 1, (double)bytes, (double)bytes);
    g.cpu->upload(dst, src, bytes);
}
static void t_download(void *dst, const void *src, size_t bytes) {
    account(OP_download, 1, 0, 1, (double)bytes, (double)bytes);
    g.cpu->download(dst, src, bytes);
}
static void t_zero(void *p, size_t bytes) {
    account(OP_zero, 1, 0, 0, (double)bytes, (double)bytes);
    if (!g.dry || bytes <= (64u << 20)) g.cpu->zero(p, bytes);
}
static void t_copy(void *dst, const void *src, size_t bytes) {
    account(OP_copy, 1, 0, 0, 2.0 * bytes, 2.0 * bytes);
    g.cpu->copy(dst, src, bytes);
}

/* ---- compute ops ---------------------------------------------------------------------- */

static double gemm_bytes(int M, int N, int K, float beta) {
    return 4.0 * ((double)M * K + (double)K * N + (double)M * N * (beta != 0.0f ? 2 : 1));
}
static void t_gemm(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                   float beta, float *C, int ldc) {
    double b = gemm_bytes(M, N, K, beta);
    /* 1..8 rows of A B^T: the backend's GEMV kernel (model/cuda/gemv_small.cu), a plain
     * launch of ceil(N / 4) blocks, its weight B read at g.wb bytes; else a cuBLAS call */
    if (!tA && tB && M >= 1 && M <= 8 && K > 0) {
        b -= (4.0 - g.wb) * (double)K * N;
        account_grid(OP_gemm, 1, 0, 0, b, b, ceil(N / 4.0));
    } else
        account(OP_gemm, 1, 1, 0, b, b);
    if (!g.dry) g.cpu->gemm(tA, tB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
static void t_gemm_batched(int tA, int tB, int M, int N, int K, float alpha, const float *A, int lda, long long sA,
                           const float *B, int ldb, long long sB, float beta, float *C, int ldc, long long sC,
                           int batch) {
    double b = batch * gemm_bytes(M, N, K, beta);
    account(OP_gemm_batched, 1, 1, 0, b, b);
    if (!g.dry) g.cpu->gemm_batched(tA, tB, M, N, K, alpha, A, lda, sA, B, ldb, sB, beta, C, ldc, sC, batch);
}
static void t_copy2d(float *dst, int ldd, const float *src, int lds, int rows, int cols) {
    double b = 8.0 * rows * cols;
    account(OP_copy2d, 1, 0, 0, b, b);  /* cudaMemcpy2DAsync */
    if (!g.dry) g.cpu->copy2d(dst, ldd, src, lds, rows, cols);
}
static void t_add(float *y, const float *x, size_t n) {
    account_grid(OP_add, 1, 0, 0, 12.0 * n, 12.0 * n, grid_for((double)n));
    if (!g.dry) g.cpu->add(y, x, n);
}
static void t_scale(float *y, float a, size_t n) {
    account(OP_other, 1, 0, 0, 8.0 * n, 8.0 * n);
    if (!g.dry) g.cpu->scale(y, a, n);
}
static void t_count_nonfinite(const float *x, size_t n, size_t *count) {
    account(OP_count_nonfinite, 2, 0, 1, 4.0 * n, 4.0 * n);
    if (g.dry)
        *count = 0;
    else
        g.cpu->count_nonfinite(x, n, count);
}
static void t_embedding_forward(float *out, const float *table, const int32_t *tok, int N, int D) {
    double b = 8.0 * N * D + 4.0 * N;
    account_grid(OP_embedding_forward, 1, 0, 0, b, b, grid_for((double)N * D));
    if (!g.dry) g.cpu->embedding_forward(out, table, tok, N, D);
}
static void t_rmsnorm_forward(float *out, int ldo, float *rstd, const float *x, int ldx, const float *w, int N, int D,
                              float eps) {
    double b = 4.0 * (2.0 * N * D + D + N);
    account_grid(OP_rmsnorm_forward, 1, 0, 0, b, b, N);  /* one block per row */
    if (!g.dry) g.cpu->rmsnorm_forward(out, ldo, rstd, x, ldx, w, N, D, eps);
}
static void t_rope_forward(float *x, int ld, int hs, int nh, int N, int dr, const int32_t *pos, const float *inv,
                           float cs) {
    double b = 8.0 * N * nh * dr + 4.0 * N;
    account_grid(OP_rope_forward, 1, 0, 0, b, b, grid_for((double)N * (dr / 2)));
    if (!g.dry) g.cpu->rope_forward(x, ld, hs, nh, N, dr, pos, inv, cs);
}
static void t_swiglu_forward(float *h, const float *gg, const float *u, size_t n) {
    account_grid(OP_swiglu_forward, 1, 0, 0, 12.0 * n, 12.0 * n, grid_for((double)n));
    if (!g.dry) g.cpu->swiglu_forward(h, gg, u, n);
}
static void t_attention_forward(float *O, float *lse, const float *Q, const float *K, const float *V,
                                const int32_t *cu, int S, int N, int H, int dqk, int dv, float scale) {
    g.cur.prefill = 1;
    double b = 4.0 * N * H * (2.0 * dqk + 2.0 * dv + 1);
    account(OP_attention_forward, 3, 0, 0, b, b);  /* prefill only; launch count nominal */
    if (!g.dry) g.cpu->attention_forward(O, lse, Q, K, V, cu, S, N, H, dqk, dv, scale);
}
static void t_mla_kv_assemble_forward(float *K, float *V, const float *kv, const float *kpe, int ldkpe, int N, int H,
                                      int dn, int dr, int dv) {
    double b = 4.0 * N * (2.0 * H * (dn + dv) + dr + H * dr);
    account(OP_mla_kv_assemble_forward, 1, 0, 0, b, b);
    if (!g.dry) g.cpu->mla_kv_assemble_forward(K, V, kv, kpe, ldkpe, N, H, dn, dr, dv);
}
static void t_moe_route_forward(float *probs, int32_t *idx, float *w, const float *logits, int N,
                                const OpsMoeRoute *r) {
    double b = 4.0 * N * (2.0 * r->E + 2.0 * r->K);
    account_grid(OP_moe_route_forward, 1, 0, 0, b, b, ceil(N / 128.0));
    if (!g.dry) {
        g.cpu->moe_route_forward(probs, idx, w, logits, N, r);
        return;
    }
    for (int n = 0; n < N; n++)  /* K distinct experts, uniform */
        for (int k = 0; k < r->K; k++) {
            int e, dup;
            do {
                e = (int)(cr_rng_u64(&g.rng) % (uint64_t)r->E);
                dup = 0;
                for (int j = 0; j < k; j++) dup |= idx[(size_t)n * r->K + j] == e;
            } while (dup);
            idx[(size_t)n * r->K + k] = e;
            w[(size_t)n * r->K + k] = 1.0f / r->K;
        }
}
static void t_moe_permute(float *Xp, int32_t *ros, int32_t *sor, int32_t *off, const float *x, const int32_t *idx,
                          int N, int D, int E, int K) {
    double b = 8.0 * N * K * D + 16.0 * N * K;
    account(OP_moe_permute, 4, 0, 0, b, b);
    if (!g.dry) {
        g.cpu->moe_permute(Xp, ros, sor, off, x, idx, N, D, E, K);
        return;
    }
    int S = N * K;  /* the stable counting sort of the contract, without the gather */
    memset(off, 0, sizeof(int32_t) * (size_t)(E + 1));
    for (int s = 0; s < S; s++) off[idx[s] + 1]++;
    for (int e = 0; e < E; e++) off[e + 1] += off[e];
    int32_t *fill = cr_malloc(sizeof(int32_t) * (size_t)E);
    memcpy(fill, off, sizeof(int32_t) * (size_t)E);
    for (int s = 0; s < S; s++) {
        int r = fill[idx[s]]++;
        ros[s] = r;
        sor[r] = s;
    }
    free(fill);
}
static void t_moe_experts_forward(float *Yp, float *G, float *U, float *Hm, const float *Xp, const float *Wg,
                                  const float *Wu, const float *Wd, const int32_t *off, int E, int D, int I) {
    int used = 0;
    double b = 0;
    for (int e = 0; e < E; e++) {
        int M = off[e + 1] - off[e];
        if (M == 0) continue;
        used++;
        b += 2 * gemm_bytes(M, I, D, 0) + gemm_bytes(M, D, I, 0);
    }
    b += 12.0 * off[E] * I;  /* SwiGLU */
    account(OP_moe_experts_forward, 3.0 * used + 1, 3.0 * used, 0, b, b);
    g.host += 18 * 2e-6;  /* fork/join event calls of the streams mode */
    if (!g.dry) g.cpu->moe_experts_forward(Yp, G, U, Hm, Xp, Wg, Wu, Wd, off, E, D, I);
}
static void t_moe_unpermute(float *y, const float *Yp, const float *w, const int32_t *ros, int N, int D, int K) {
    double b = 4.0 * N * D * (K + 1.0) + 8.0 * N * K;
    account(OP_moe_unpermute, 1, 0, 0, b, b);
    if (!g.dry) g.cpu->moe_unpermute(y, Yp, w, ros, N, D, K);
}
static void t_mla_cache_scatter(float *cache, const int32_t *bt, int maxb, int L, int l, int btok, int rw,
                                const float *src, const int32_t *pos, int n) {
    double b = 8.0 * n * rw + 8.0 * n;
    account_grid(OP_mla_cache_scatter, 1, 0, 0, b, b, grid_for((double)n * rw));
    if (!g.dry) g.cpu->mla_cache_scatter(cache, bt, maxb, L, l, btok, rw, src, pos, n);
}
static void t_mla_decode_attention(float *out, const float *qa, const float *cache, const int32_t *bt, int maxb,
                                   int L, int l, int btok, const int32_t *pos, int n, int H, int r, int dr,
                                   float scale) {
    /* model/cuda/mla_decode.cu: blocks of hg <= 8 heads (48 KiB of shared memory), each
     * reading its split's latent rows itself: ceil(H / hg) reads of every row. */
    int rw = r + dr, hg = H < 8 ? H : 8;
    while (hg > 1 && 4.0 * hg * (rw + 256) > 48 * 1024 - 128) hg /= 2;
    double groups = (H + hg - 1) / hg, rows = 0;
    for (int i = 0; i < n; i++) rows += pos[i] + 1.0;
    double io = 4.0 * n * H * (rw + r);
    double b = groups * rows * 4.0 * rw + io, need = rows * 4.0 * rw + io;
    int n_split = (int)(((long)maxb * btok + 255) / 256);
    size_t scratch = (size_t)n * H * (n_split < 1 ? 1 : n_split) * ((size_t)r + 2) * sizeof(float);
    /* split kernel: (n_split, groups, n) blocks, where it spends its time */
    account_grid(OP_mla_decode_attention, 2, 0, 0, b, need, (double)(n_split < 1 ? 1 : n_split) * groups * n);
    if (scratch > g.big_scratch) {
        account(OP_big_scratch_regrow, 0, 0, 1, 0, 0);
        g.big_scratch = scratch;
    }
    if (!g.dry) g.cpu->mla_decode_attention(out, qa, cache, bt, maxb, L, l, btok, pos, n, H, r, dr, scale);
}
static void t_sample_rows(int32_t *tok, float *lps, float *lpm, const float *logits, int n, int V,
                          const OpsSampler *cfg, const double *uni) {
    (void)cfg, (void)uni;
    double b = 8.0 * n * V;  /* stats kernel + draw kernel each read the row */
    account_grid(OP_sample_rows, 2, 0, 0, b, 4.0 * n * V, n);  /* one block per row */
    for (int i = 0; i < n; i++) {
        if (g.dry) {
            tok[i] = (int32_t)(cr_rng_u64(&g.rng) % (uint64_t)V);
            lps[i] = lpm[i] = -1.0f;
            continue;
        }
        static const SamplerCfg greedy = {0};  /* the trace needs a token, not a draw */
        tok[i] = sampler_sample(&greedy, logits + (size_t)i * V, V, NULL, NULL, &lps[i], &lpm[i]);
    }
    window_close(n);
}
static void t_moe_experts_small(float *y, float *h, const float *x, const int32_t *idx, const float *w,
                                const float *Wg, const float *Wu, const float *Wd, int N, int D, int I, int K) {
    /* slots: per slot its expert's 3 I D weights (read by the slot itself); indexed: per
     * expert ceil(r / 64) reads of them; need: distinct experts */
    int distinct = 0;
    double chunks = 0;
    for (int s = 0; s < N * K; s++) {
        int first = 1, r = 0;
        for (int t = 0; t < s; t++) first &= idx[t] != idx[s];
        if (!first) continue;
        for (int t = s; t < N * K; t++) r += idx[t] == idx[s];
        distinct++;
        chunks += (r + 63) / 64;
    }
    double act = 4.0 * ((double)N * D * 2 + (double)N * K * I * 2 + 2.0 * N * K);
    double w3 = 3.0 * g.wb * (double)I * D;  /* an expert's weights as read */
    double need = w3 * distinct + act;
    if (g.moe_mode == 2 || (g.moe_mode == 0 && N * K > 64)) {  /* indexed, + z [N K, D] written and read */
        double b = w3 * chunks + act + 8.0 * N * K * D;
        double up = distinct * ceil(I / 16.0), down = distinct * ceil(D / 16.0);
        account_grid(OP_moe_experts_small, 5, 0, 0, b, need, up < down ? up : down);
    } else {
        double b = w3 * N * K + act;
        double up = (double)N * K * ceil(I / 16.0), down = (double)N * ceil(D / 8.0);
        account_grid(OP_moe_experts_small, 2, 0, 0, b, need, up < down ? up : down);
    }
    if (!g.dry) g.cpu->moe_experts_small(y, h, x, idx, w, Wg, Wu, Wd, N, D, I, K);
}

/* model.c's threshold as the CUDA table answers it (model/cuda/ops_cuda.cu): 0 (64) under
 * slots, 4096 under auto and indexed */
static long t_moe_experts_small_slots(void) { return g.moe_mode == 1 ? 0 : 4096; }

/* Ops the decode path never calls: counted under "other", run only for real. */
static void t_embedding_backward(float *dt, const float *dout, const int32_t *tok, int N, int D) {
    account(OP_other, 1, 0, 0, 0, 0);
    if (!g.dry) g.cpu->embedding_backward(dt, dout, tok, N, D);
}

static const Ops k_trace = {
    .name = "optrace",
    .alloc = t_alloc,
    .free = t_free,
    .upload = t_upload,
    .download = t_download,
    .zero = t_zero,
    .copy = t_copy,
    .gemm = t_gemm,
    .gemm_batched = t_gemm_batched,
    .copy2d = t_copy2d,
    .add = t_add,
    .scale = t_scale,
    .count_nonfinite = t_count_nonfinite,
    .embedding_forward = t_embedding_forward,
    .embedding_backward = t_embedding_backward,
    .rmsnorm_forward = t_rmsnorm_forward,
    .rope_forward = t_rope_forward,
    .swiglu_forward = t_swiglu_forward,
    .attention_forward = t_attention_forward,
    .mla_kv_assemble_forward = t_mla_kv_assemble_forward,
    .moe_route_forward = t_moe_route_forward,
    .moe_permute = t_moe_permute,
    .moe_experts_forward = t_moe_experts_forward,
    .moe_unpermute = t_moe_unpermute,
    .mla_cache_scatter = t_mla_cache_scatter,
    .mla_decode_attention = t_mla_decode_attention,
    .sample_rows = t_sample_rows,
    .moe_experts_small = t_moe_experts_small,
    .moe_experts_small_slots = t_moe_experts_small_slots,
};

/* ---- one traced generation -------------------------------------------------------------- */

/* The last decode window of B sequences of ctx prompt tokens + gen new ones, or -1. */
static int trace_run(Model *m, int B, int ctx, int gen, int record, Window *out, CrError *e) {
    RolloutEngine *r = rollout_create(m, NULL, decode_cache_positions(B, ctx, gen), e);
    if (!r) return -1;
    int32_t **pr = cr_malloc(sizeof *pr * (size_t)B);
    int *lens = cr_malloc(sizeof *lens * (size_t)B);
    CrRng pr_rng;
    cr_rng_init(&pr_rng, 7, (uint64_t)B, (uint64_t)ctx);
    for (int b = 0; b < B; b++) {
        pr[b] = cr_malloc(sizeof **pr * (size_t)ctx);
        for (int t = 0; t < ctx; t++) pr[b][t] = (int32_t)(cr_rng_u64(&pr_rng) % (uint64_t)m->cfg.vocab_size);
        lens[b] = ctx;
    }
    SampleParams sp = {.temperature = 1.0f, .top_p = 1.0f, .max_new_tokens = gen, .seed = 1, .ignore_eos = 1,
                      .record_experts = record};
    Sample *out_s = cr_calloc((size_t)B, sizeof *out_s);
    trace_reset();
    int rc = rollout_generate(r, (const int32_t *const *)pr, lens, B, 1, &sp, 0, out_s, e);
    int found = -1;
    if (rc == 0) {
        for (int w = g.n_win - 1; w >= 0 && found < 0; w--)
            if (g.win[w].n_rows == B && !g.win[w].prefill && g.win[w].op[OP_mla_decode_attention].calls > 0) found = w;
        if (found < 0) rc = cr_error_set(e, "no decode step of %d rows was traced", B);
        else *out = g.win[found];
    }
    for (int b = 0; b < B; b++) {
        free(pr[b]);
        sample_free(&out_s[b]);
    }
    free(pr);
    free(lens);
    free(out_s);
    rollout_free(r);
    return rc;
}

/* ---- printing ----------------------------------------------------------------------------- */

static OpStat total(const Window *w) {
    OpStat t = {0};
    for (int i = 0; i < OP_N; i++) {
        t.calls += w->op[i].calls;
        t.launches += w->op[i].launches;
        t.syncs += w->op[i].syncs;
        t.bytes += w->op[i].bytes;
        t.need += w->op[i].need;
        t.gpu_s += w->op[i].gpu_s;
    }
    return t;
}

/* The per-op table of one step; ref (the same B at the other context, may be NULL) flags
 * ops whose bytes grow with the context. */
static void print_window(const Window *w, const Window *ref, int B, int ctx, int ref_ctx) {
    printf("\n== B=%d, context %d: one decode step (ops per step) ==\n", B, ctx);
    printf("  %-26s %7s %8s %6s %11s %11s %6s %9s  %s\n", "op", "calls", "launches", "syncs", "MB", "need MB",
           "grid", "gpu ms", "flags");
    for (int i = 0; i < OP_N; i++) {
        const OpStat *s = &w->op[i];
        if (s->calls == 0 && s->syncs == 0) continue;
        char flags[160] = "";
        if (s->need > 0 && s->bytes > 1.2 * s->need)
            snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "x%.1f of need; ", s->bytes / s->need);
        int big = s->bytes >= 1e6;  /* growth and grid flags only for ops moving >= 1 MB a step */
        if (big && ref && ref->op[i].bytes > 0 && ref_ctx != ctx) {
            double g_ratio = s->bytes / ref->op[i].bytes;
            if (fabs(g_ratio - 1.0) > 0.05)
                snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "bytes x%.2f vs ctx %d; ", g_ratio,
                         ref_ctx);
        }
        if (s->syncs > 0) snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "host sync; ");
        if (big && s->grid > 0 && s->grid < g.cost.n_sm)
            snprintf(flags + strlen(flags), sizeof flags - strlen(flags), "grid < %.0f SMs; ", g.cost.n_sm);
        char grid[16] = "-";
        if (s->grid > 0) snprintf(grid, sizeof grid, "%.0f", s->grid);
        printf("  %-26s %7.0f %8.0f %6.0f %11.2f %11.2f %6s %9.3f  %s\n", k_op_name[i], s->calls, s->launches,
               s->syncs, s->bytes / 1e6, s->need / 1e6, grid, s->gpu_s * 1e3, flags);
    }
    OpStat t = total(w);
    printf("  %-26s %7.0f %8.0f %6.0f %11.2f %11.2f %6s %9.3f\n", "TOTAL", t.calls, t.launches, t.syncs, t.bytes / 1e6,
           t.need / 1e6, "", t.gpu_s * 1e3);
    printf("  modelled step %.3f ms (GPU busy %.3f ms, host launch+sync bound otherwise) = %.1f tok/s; "
           "bandwidth floor of the bytes needed: %.3f ms\n",
           w->step_s * 1e3, t.gpu_s * 1e3, B / w->step_s, t.need / g.cost.bw * 1e3);
}

static int parse_list(const char *s, int *v, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long x = strtol(s, &end, 10);
        if (end == s || x < 1 || x > 1000000) return -1;
        v[n++] = (int)x;
        s = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') return -1;
    }
    return *s ? -1 : n;
}

int main(int argc, char **argv) {
    const char *mode = "dry", *seqs_s = "1,8,64", *ctx_s = "1000,2000", *mcfg = "", *moe = "auto";
    long layers = 27, gen = 3;
    int record = 1, decode_bf16 = 0;
    double launch_us = 5, blas_us = 8, sync_us = 20, bw_tbs = 2.5, kmin_us = 2, n_sm = 132, sm_share = 2;
    ArgSpec specs[] = {
        {"mode", ARG_STR, &mode, "dry (nothing computed) or real (ops_cpu computes; needs --model-config)", 0},
        {"layers", ARG_INT, &layers, "dry: Lite layers (1..27)", 0},
        {"seqs", ARG_STR, &seqs_s, "batch sizes B, comma separated", 0},
        {"ctx", ARG_STR, &ctx_s, "prompt lengths (context of the traced step: ctx + gen - 1)", 0},
        {"gen", ARG_INT, &gen, "new tokens per sequence (>= 3; the last decode step is printed)", 0},
        {"record-experts", ARG_BOOL, &record, "record the chosen experts, as bench/cuda_decode's timed run", 0},
        {"model-config", ARG_STR, &mcfg, "model config JSON (default: the Lite shape, --layers of it)", 0},
        {"launch-us", ARG_FLOAT, &launch_us, "host cost of a kernel launch / async copy (us)", 0},
        {"blas-us", ARG_FLOAT, &blas_us, "host cost of a cuBLAS call (us)", 0},
        {"sync-us", ARG_FLOAT, &sync_us, "cost of a host synchronisation after the queue drained (us)", 0},
        {"bw-tbs", ARG_FLOAT, &bw_tbs, "device bandwidth every kernel is assumed to reach (TB/s)", 0},
        {"kmin-us", ARG_FLOAT, &kmin_us, "shortest kernel (us)", 0},
        {"moe", ARG_STR, &moe, "moe_experts_small kernels modelled: auto, slots or indexed (CRUCIBLE_CUDA_MOE_SMALL)", 0},
        {"decode-bf16", ARG_BOOL, &decode_bf16, "the GEMV and moe_experts_small read bf16 weight copies (CRUCIBLE_CUDA_DECODE_BF16=1)", 0},
        {"sms", ARG_FLOAT, &n_sm, "streaming multiprocessors (H100 SXM: 132)", 0},
        {"sm-share", ARG_FLOAT, &sm_share, "a kernel of b < sms / sm-share blocks reaches bw * sm-share * b / sms", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    CrError e = {0};
    int rc = cr_args_parse("decode_optrace [flags]", specs, argc - 1, argv + 1, NULL, NULL, &e);
    if (rc == CR_ARGS_HELP) return 0;
    if (rc) {
        fprintf(stderr, "decode_optrace: %s\n", e.msg);
        return 2;
    }
    int Bs[8], cs[8];
    int nB = parse_list(seqs_s, Bs, 8), nC = parse_list(ctx_s, cs, 8);
    if (nB < 1 || nC < 1 || gen < 3 || layers < 1 || layers > 27 ||
        (strcmp(mode, "dry") && strcmp(mode, "real")) || (!strcmp(mode, "real") && !*mcfg) ||
        (strcmp(moe, "auto") && strcmp(moe, "slots") && strcmp(moe, "indexed"))) {
        fprintf(stderr, "decode_optrace: bad flags: --seqs and --ctx are lists of positive integers (up to 8), "
                        "--gen >= 3, --layers 1..27, --mode dry|real (real needs --model-config), "
                        "--moe auto|slots|indexed\n");
        return 2;
    }
    g.dry = !strcmp(mode, "real") ? 0 : 1;
    g.moe_mode = !strcmp(moe, "slots") ? 1 : !strcmp(moe, "indexed") ? 2 : 0;
    g.wb = decode_bf16 ? 2.0 : 4.0;
    g.cpu = ops_cpu();
    g.cost = (Cost){launch_us * 1e-6, blas_us * 1e-6, sync_us * 1e-6, bw_tbs * 1e12, kmin_us * 1e-6, n_sm, sm_share};
    cr_rng_init(&g.rng, 11, 0, 0);
    ModelConfig cfg;
    if (!*mcfg ? decode_lite_config(&cfg, (int)layers, &e) : model_config_load(&cfg, mcfg, &e)) {
        fprintf(stderr, "decode_optrace: %s\n", e.msg);
        return 1;
    }
    Model *m = model_create_infer(&cfg, &k_trace, &e);
    if (!m) {
        fprintf(stderr, "decode_optrace: %s\n", e.msg);
        return 1;
    }
    if (!g.dry) model_init_random(m, 1);
    printf("decode_optrace: %s mode, moe_experts_small %s, weights of the few-row kernels in %s, %s: %d layers, hidden "
           "%d, %d heads, kv_lora %d, %d experts top-%d, vocab %d\n",
           mode, moe, decode_bf16 ? "bf16 (CRUCIBLE_CUDA_DECODE_BF16=1)" : "fp32", *mcfg ? mcfg : "DeepSeek-Coder-V2-Lite shape", cfg.num_hidden_layers, 
           cfg.hidden_size, cfg.num_attention_heads, cfg.kv_lora_rank, cfg.n_routed_experts,
           cfg.num_experts_per_tok, cfg.vocab_size);
    printf("  time model (estimate): launch %.1f us, cuBLAS call %.1f us, sync %.1f us, %.2f TB/s for a kernel "
           "of >= %.0f blocks (less in proportion below), >= %.1f us per kernel\n",
           launch_us, blas_us, sync_us, bw_tbs, n_sm / sm_share, kmin_us);
    printf("  unmodelled: cuBLAS efficiency at M=1..8 (FAST_16BF), latency-bound loops inside kernels "
           "(mla_decode's per-position warps), side-stream overlap of expert GEMMs\n");
    Window *w = cr_calloc((size_t)nB * nC, sizeof *w);
    for (int b = 0; b < nB; b++)
        for (int c = 0; c < nC; c++) {
            if (cs[c] + gen > cfg.max_position_embeddings) {
                fprintf(stderr, "decode_optrace: ctx %d + gen %ld exceeds the config's %d positions\n", cs[c], gen,
                        cfg.max_position_embeddings);
                return 2;
            }
            if (trace_run(m, Bs[b], cs[c], (int)gen, record, &w[b * nC + c], &e)) {
                fprintf(stderr, "decode_optrace: %s\n", e.msg);
                return 1;
            }
            print_window(&w[b * nC + c], c > 0 ? &w[b * nC] : NULL, Bs[b], cs[c] + (int)gen - 1,
                         cs[0] + (int)gen - 1);
        }
    printf("\nsummary (per decode step): B ctx | calls launches syncs | MB need-MB | modelled ms tok/s\n");
    for (int b = 0; b < nB; b++)
        for (int c = 0; c < nC; c++) {
            OpStat t = total(&w[b * nC + c]);
            printf("  %3d %6ld | %6.0f %6.0f %4.0f | %10.1f %10.1f | %8.3f %8.1f\n", Bs[b], cs[c] + gen - 1,
                   t.calls, t.launches, t.syncs, t.bytes / 1e6, t.need / 1e6, w[b * nC + c].step_s * 1e3,
                   Bs[b] / w[b * nC + c].step_s);
        }
    free(w);
    model_free(m);
    free(g.win);
    free(g.maps);
    return 0;
}
