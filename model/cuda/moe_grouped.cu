// model/cuda/moe_grouped.cu — the routed experts' SwiGLU GEMMs (Ops.moe_experts_forward /
// moe_experts_backward; model/cpu/moe_dispatch.c is the specification).
//
// Each pass is a list of independent GEMMs (one or more per expert with rows; outputs
// disjoint), run one of three ways, chosen per call by CRUCIBLE_CUDA_EXPERTS:
//   loop     one cuBLAS call per GEMM through the table's gemm, in order (the first
//            implementation; kept to compare against);
//   grouped  one cublasGemmGroupedBatchedEx call per list (cuBLAS >= 12.5): every
//            expert's GEMM in a single launch. cuBLAS documents it for CUBLAS_COMPUTE_32F
//            (and 32F_PEDANTIC / 32F_FAST_TF32) with fp32 A/B/C, NOT for
//            CUBLAS_COMPUTE_32F_FAST_16BF: a list whose call answers NOT_SUPPORTED (or
//            whose compute type needs 16-byte aligned pointers it does not have) runs
//            as `streams` instead, and that compute type is not tried again;
//   streams  the GEMMs spread over side streams (4; CRUCIBLE_CUDA_EXPERT_STREAMS = 1..8;
//            one cuBLAS handle and workspace each), forked from and joined back into the
//            default stream, so an expert's GEMM (a few hundred rows: a quarter of an
//            H100's SMs) runs beside the others instead of after them;
//   auto     grouped where cuBLAS supports the compute type, else streams.
// Unset: streams. All four ran on the H100 on 2026-11-23 (tests/cuda/test_experts_grouped_cuda.c
// against the CPU op, also under compute-sanitizer memcheck); bench/cuda_ops_bench, Lite
// experts at 4096 tokens, fwd / bwd ms: bf16 table loop 3.56 / 9.36, streams4 2.96 / 6.80
// (grouped is NOT_SUPPORTED for FAST_16BF and falls back to streams); fp32 table loop
// 13.1 / 25.7, grouped 13.2 / 22.8, streams4 10.8 / 21.7 — streams is fastest for both.
// Lists: forward {G_e, U_e} -> SwiGLU over all rows -> {Yp_e}; backward {dHm_e, dWd_e}
// -> SwiGLU backward -> {dXp_e = dG_e Wg_e, dWg_e, dWu_e} -> {dXp_e += dU_e Wu_e}.
// Gate and up share a launch (their stacks are separate [E, I, D] tensors, so a fused
// [2I, D] GEMM would need a copy of the weights; one grouped call holds both instead).
// Determinism: every GEMM is computed whole by one cuBLAS call with fixed shapes (no
// split over calls, no atomics), and the dXp sum has the loop's order (gate term, then
// up term with beta 1). cuBLAS gives bit-wise repeatable results on one GPU model and
// toolkit; with concurrent streams only when each stream has its own handle (its
// "Results reproducibility" section), hence one handle per side stream.
#include "model/cuda/cuda_ops.cuh"

#include <string.h>

enum { STREAMS_DEFAULT = 4, STREAMS_MAX = 8 };

// Row-major C[M,N] = op(A)[M,K] op(B)[K,N] + beta C (alpha 1), cblas semantics.
typedef struct ExpertGemm {
    int ta, tb, M, N, K, lda, ldb, ldc;
    float beta;
    const float *A, *B;
    float *C;
} ExpertGemm;

typedef enum { MODE_AUTO, MODE_LOOP, MODE_GROUPED, MODE_STREAMS } ExpertsMode;

// This module's state, created on first use and kept for the process (the backend is
// single-threaded: ops_cuda.h).
typedef struct ExpertsCtx {
    void **dptr;  // device pointer arrays of the grouped calls (A, B, C)
    size_t dptr_cap;
    int n_ready;  // side streams created so far (each with its handle and join event)
    cudaStream_t stream[STREAMS_MAX];
    cublasHandle_t blas[STREAMS_MAX];
    void *ws[STREAMS_MAX];  // each handle's cuBLAS workspace (cuda_blas_workspace)
    cudaEvent_t fork, join[STREAMS_MAX];
    int grouped_off[2];  // grouped found unsupported: [0] COMPUTE_32F, [1] FAST_16BF
    int warned[2];
} ExpertsCtx;
static ExpertsCtx g_ex;

static ExpertsMode experts_mode(void) {
    static const char *const v[4] = {"streams", "loop", "auto", "grouped"};
    static const ExpertsMode m[4] = {MODE_STREAMS, MODE_LOOP, MODE_AUTO, MODE_GROUPED};
    return m[cuda_env_pick("CRUCIBLE_CUDA_EXPERTS", v, 4)];
}

// The compute type of a table's gemm; -1 for a gemm this file does not know (loop only).
static int compute_slot(GemmFn gemm) {
    if (gemm == cuda_gemm_fp32) return 0;
    if (gemm == cuda_gemm_bf16) return 1;
    return -1;
}
static const cublasComputeType_t k_ct[2] = {CUBLAS_COMPUTE_32F, CUBLAS_COMPUTE_32F_FAST_16BF};

// ---- loop ----------------------------------------------------------------------------

static void run_loop(GemmFn gemm, const ExpertGemm *p, int n) {
    for (int i = 0; i < n; i++)
        gemm(p[i].ta, p[i].tb, p[i].M, p[i].N, p[i].K, 1.0f, p[i].A, p[i].lda, p[i].B, p[i].ldb, p[i].beta, p[i].C,
             p[i].ldc);
}

// ---- streams -------------------------------------------------------------------------

static int n_streams(void) {
    const char *s = getenv("CRUCIBLE_CUDA_EXPERT_STREAMS");
    if (!s || !*s) return STREAMS_DEFAULT;
    char *end;
    long n = strtol(s, &end, 10);
    if (*end || n < 1 || n > STREAMS_MAX)
        cuda_fail("CRUCIBLE_CUDA_EXPERT_STREAMS", "must be an integer in 1..8", __FILE__, __LINE__);
    return (int)n;
}

// Side streams 0..n-1 exist afterwards (created on first need, kept for the process).
static void streams_init(int n) {
    if (g_ex.n_ready == 0) cudaCheck(cudaEventCreateWithFlags(&g_ex.fork, cudaEventDisableTiming));
    for (int i = g_ex.n_ready; i < n; i++) {
        cudaCheck(cudaStreamCreateWithFlags(&g_ex.stream[i], cudaStreamNonBlocking));
        cublasCheck(cublasCreate(&g_ex.blas[i]));
        cublasCheck(cublasSetStream(g_ex.blas[i], g_ex.stream[i]));
        cublasCheck(cublasSetMathMode(g_ex.blas[i], CUBLAS_DEFAULT_MATH));  // as the context's handle
        cuda_blas_workspace(g_ex.blas[i], &g_ex.ws[i]);  // its own: the side streams run at once
        cudaCheck(cudaEventCreateWithFlags(&g_ex.join[i], cudaEventDisableTiming));
        g_ex.n_ready = i + 1;
    }
}

// Row-major to cuBLAS column-major as cuda_gemm_ex: C^T = op(B)^T op(A)^T, B first.
static void gemm_on(cublasHandle_t h, cublasComputeType_t ct, const ExpertGemm *p) {
    const float one = 1.0f;
    cublasCheck(cublasGemmEx(h, p->tb ? CUBLAS_OP_T : CUBLAS_OP_N, p->ta ? CUBLAS_OP_T : CUBLAS_OP_N, p->N, p->M,
                             p->K, &one, p->B, CUDA_R_32F, p->ldb, p->A, CUDA_R_32F, p->lda, &p->beta, p->C,
                             CUDA_R_32F, p->ldc, ct, CUBLAS_GEMM_DEFAULT));
}

static void run_streams(cublasComputeType_t ct, const ExpertGemm *p, int n) {
    int ns = n_streams();
    streams_init(ns);
    cudaCheck(cudaEventRecord(g_ex.fork, 0));
    for (int s = 0; s < ns; s++) cudaCheck(cudaStreamWaitEvent(g_ex.stream[s], g_ex.fork, 0));
    // Each GEMM to the stream with the least work so far (ties: lowest index): fixed by
    // the shapes, and the result of a GEMM does not depend on its stream anyway.
    double load[STREAMS_MAX] = {0};
    for (int i = 0; i < n; i++) {
        int s = 0;
        for (int j = 1; j < ns; j++)
            if (load[j] < load[s]) s = j;
        load[s] += (double)p[i].M * p[i].N * p[i].K;
        gemm_on(g_ex.blas[s], ct, &p[i]);
    }
    for (int s = 0; s < ns; s++) {
        cudaCheck(cudaEventRecord(g_ex.join[s], g_ex.stream[s]));
        cudaCheck(cudaStreamWaitEvent(0, g_ex.join[s], 0));
    }
}

// ---- grouped -------------------------------------------------------------------------

static int same_shape(const ExpertGemm *a, const ExpertGemm *b) {
    return a->ta == b->ta && a->tb == b->tb && a->M == b->M && a->N == b->N && a->K == b->K && a->lda == b->lda &&
           a->ldb == b->ldb && a->ldc == b->ldc && a->beta == b->beta;
}

static void *xmalloc(size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (!p) cuda_fail("malloc", "out of memory", __FILE__, __LINE__);
    return p;
}

// 1 = ran; 0 = cuBLAS does not support it (nothing was launched).
static int try_grouped(cublasComputeType_t ct, const ExpertGemm *p, int n) {
    // Groups: runs of consecutive GEMMs with one shape (e.g. an expert's gate and up).
    int *gsize = (int *)xmalloc(sizeof(int) * (size_t)n);
    int *gidx = (int *)xmalloc(sizeof(int) * (size_t)n);  // first GEMM of each group
    int G = 0;
    for (int i = 0; i < n; i++) {
        if (G > 0 && same_shape(&p[gidx[G - 1]], &p[i])) {
            gsize[G - 1]++;
            continue;
        }
        gidx[G] = i;
        gsize[G++] = 1;
    }
    cublasOperation_t *opa = (cublasOperation_t *)xmalloc(sizeof(cublasOperation_t) * 2 * (size_t)G),
                      *opb = opa + G;
    int *dims = (int *)xmalloc(sizeof(int) * 6 * (size_t)G);
    int *m = dims, *nn = dims + G, *k = dims + 2 * G, *lda = dims + 3 * G, *ldb = dims + 4 * G, *ldc = dims + 5 * G;
    float *scal = (float *)xmalloc(sizeof(float) * 2 * (size_t)G), *alpha = scal, *beta = scal + G;
    for (int g = 0; g < G; g++) {  // column-major view: the row-major B is cuBLAS's A
        const ExpertGemm *q = &p[gidx[g]];
        opa[g] = q->tb ? CUBLAS_OP_T : CUBLAS_OP_N;
        opb[g] = q->ta ? CUBLAS_OP_T : CUBLAS_OP_N;
        m[g] = q->N, nn[g] = q->M, k[g] = q->K;
        lda[g] = q->ldb, ldb[g] = q->lda, ldc[g] = q->ldc;
        alpha[g] = 1.0f, beta[g] = q->beta;
    }
    const void **hp = (const void **)xmalloc(sizeof(void *) * 3 * (size_t)n);
    for (int i = 0; i < n; i++) hp[i] = p[i].B, hp[n + i] = p[i].A, hp[2 * n + i] = p[i].C;
    size_t bytes = sizeof(void *) * 3 * (size_t)n;
    if (bytes > g_ex.dptr_cap) {
        if (g_ex.dptr) cudaCheck(cudaFree(g_ex.dptr));  // synchronises: no call still reads it
        g_ex.dptr = NULL;
        cudaCheck(cudaMalloc((void **)&g_ex.dptr, bytes));
        g_ex.dptr_cap = bytes;
    }
    // Synchronous copy: from pageable memory only cudaMemcpy is documented to have read
    // the source when it returns (cudaMemcpyAsync may stage it later, and hp is freed
    // below), and its stream sync first lets the previous list's call finish reading
    // the pointer arrays this overwrites.
    cudaCheck(cudaMemcpy(g_ex.dptr, hp, bytes, cudaMemcpyHostToDevice));
    void **dA = g_ex.dptr, **dB = dA + n, **dC = dA + 2 * n;
    cublasStatus_t st = cublasGemmGroupedBatchedEx(cuda_ctx()->blas, opa, opb, m, nn, k, alpha,
                                                   (const void *const *)dA, CUDA_R_32F, lda,
                                                   (const void *const *)dB, CUDA_R_32F, ldb, beta, dC, CUDA_R_32F,
                                                   ldc, G, gsize, ct);
    free(gsize), free(gidx), free(opa), free(dims), free(scal), free(hp);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED) return 0;
    cublasCheck(st);
    return 1;
}

// The FAST compute types need 16-byte aligned matrices (cuBLAS's rule for grouped
// calls); fp32 storage with an odd row length does not give that.
static int aligned16(const ExpertGemm *p, int n) {
    for (int i = 0; i < n; i++)
        if (((uintptr_t)p[i].A | (uintptr_t)p[i].B | (uintptr_t)p[i].C) & 15u) return 0;
    return 1;
}

// ---- one list ------------------------------------------------------------------------

static void run_list(GemmFn gemm, ExpertsMode mode, const ExpertGemm *p, int n) {
    if (n == 0) return;
    int slot = compute_slot(gemm);
    for (int i = 0; i < n; i++)  // K == 0 (C = beta C) is the loop's gemm's special case
        if (p[i].K <= 0) slot = -1;
    if (mode == MODE_LOOP || slot < 0) {
        run_loop(gemm, p, n);
        return;
    }
    if (mode == MODE_AUTO || mode == MODE_GROUPED) {
        const char *why = NULL;
        if (g_ex.grouped_off[slot]) why = "cuBLAS answered NOT_SUPPORTED";
        else if (slot != 0 && !aligned16(p, n)) why = "rows not 16-byte aligned";
        else if (try_grouped(k_ct[slot], p, n)) return;
        else {
            g_ex.grouped_off[slot] = 1;  // NOT_SUPPORTED: a property of this cuBLAS, not of the shapes
            why = "cuBLAS answered NOT_SUPPORTED";
        }
        if (mode == MODE_GROUPED && !g_ex.warned[slot]) {  // asked for explicitly: say what ran instead
            g_ex.warned[slot] = 1;
            fprintf(stderr, "crucible: no cuBLAS grouped GEMM for %s (%s): routed experts run on %d streams\n",
                    slot ? "CUBLAS_COMPUTE_32F_FAST_16BF" : "CUBLAS_COMPUTE_32F", why, n_streams());
        }
    }
    run_streams(k_ct[slot], p, n);
}

// ---- the ops -------------------------------------------------------------------------

static ExpertGemm eg(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb,
                     float beta, float *C, int ldc) {
    ExpertGemm g = {ta, tb, M, N, K, lda, ldb, ldc, beta, A, B, C};
    return g;
}

void cuda_moe_experts_forward_g(GemmFn gemm, float *Yp, float *G, float *U, float *Hm, const float *Xp,
                                const float *Wg, const float *Wu, const float *Wd, const int32_t *offsets_host,
                                int E, int D, int I) {
    ExpertsMode mode = experts_mode();
    ExpertGemm *p = (ExpertGemm *)xmalloc(sizeof(ExpertGemm) * 2 * (size_t)(E > 0 ? E : 1));
    int n = 0;
    for (int e = 0; e < E; e++) {
        int r0 = offsets_host[e], M = offsets_host[e + 1] - r0;
        if (M == 0) continue;
        const float *x = Xp + (size_t)r0 * D;
        p[n++] = eg(0, 1, M, I, D, x, D, Wg + (size_t)e * I * D, D, 0.0f, G + (size_t)r0 * I, I);
        p[n++] = eg(0, 1, M, I, D, x, D, Wu + (size_t)e * I * D, D, 0.0f, U + (size_t)r0 * I, I);
    }
    run_list(gemm, mode, p, n);
    cuda_swiglu_forward(Hm, G, U, (size_t)offsets_host[E] * I);
    n = 0;
    for (int e = 0; e < E; e++) {
        int r0 = offsets_host[e], M = offsets_host[e + 1] - r0;
        if (M == 0) continue;
        p[n++] = eg(0, 1, M, D, I, Hm + (size_t)r0 * I, I, Wd + (size_t)e * D * I, I, 0.0f, Yp + (size_t)r0 * D, D);
    }
    run_list(gemm, mode, p, n);
    free(p);
}

void cuda_moe_experts_backward_g(GemmFn gemm, float *dXp, float *dWg, float *dWu, float *dWd, const float *dYp,
                                 float *dG, float *dU, float *dHm, const float *Xp, const float *G,
                                 const float *U, const float *Hm, const float *Wg, const float *Wu,
                                 const float *Wd, const int32_t *offsets_host, int E, int D, int I) {
    ExpertsMode mode = experts_mode();
    ExpertGemm *p = (ExpertGemm *)xmalloc(sizeof(ExpertGemm) * 3 * (size_t)(E > 0 ? E : 1));
    int n = 0;
    for (int e = 0; e < E; e++) {  // dHm = dY Wd_e; dWd_e += dY^T Hm
        int r0 = offsets_host[e], M = offsets_host[e + 1] - r0;
        if (M == 0) continue;
        const float *dy = dYp + (size_t)r0 * D;
        p[n++] = eg(0, 0, M, I, D, dy, D, Wd + (size_t)e * D * I, I, 0.0f, dHm + (size_t)r0 * I, I);
        p[n++] = eg(1, 0, D, I, M, dy, D, Hm + (size_t)r0 * I, I, 1.0f, dWd + (size_t)e * D * I, I);
    }
    run_list(gemm, mode, p, n);
    cuda_swiglu_backward(dG, dU, dHm, G, U, (size_t)offsets_host[E] * I);
    n = 0;
    for (int e = 0; e < E; e++) {  // dXp = dG Wg_e; dWg_e += dG^T X; dWu_e += dU^T X
        int r0 = offsets_host[e], M = offsets_host[e + 1] - r0;
        if (M == 0) continue;
        const float *x = Xp + (size_t)r0 * D, *dg = dG + (size_t)r0 * I, *du = dU + (size_t)r0 * I;
        p[n++] = eg(0, 0, M, D, I, dg, I, Wg + (size_t)e * I * D, D, 0.0f, dXp + (size_t)r0 * D, D);
        p[n++] = eg(1, 0, I, D, M, dg, I, x, D, 1.0f, dWg + (size_t)e * I * D, D);
        p[n++] = eg(1, 0, I, D, M, du, I, x, D, 1.0f, dWu + (size_t)e * I * D, D);
    }
    run_list(gemm, mode, p, n);
    n = 0;
    for (int e = 0; e < E; e++) {  // dXp += dU Wu_e (a second list: same output as the first term)
        int r0 = offsets_host[e], M = offsets_host[e + 1] - r0;
        if (M == 0) continue;
        p[n++] = eg(0, 0, M, D, I, dU + (size_t)r0 * I, I, Wu + (size_t)e * I * D, D, 1.0f, dXp + (size_t)r0 * D, D);
    }
    run_list(gemm, mode, p, n);
    free(p);
}
