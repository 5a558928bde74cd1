// tests/cuda/mock_moe_grouped.cu — model/cuda/moe_grouped.cu's host side (the GEMM
// lists, the grouped call's groups and pointer arrays, the column-major mapping, the
// stream assignment, the NOT_SUPPORTED / alignment fallbacks) run on the CPU: the CUDA
// runtime and cuBLAS calls it makes are renamed by macros to mocks below that do the
// documented arithmetic on host memory (column-major GEMMs, grouped problems in group
// order, beta 0 not reading C). Checked against the per-expert spec of
// model/cpu/moe_dispatch.c written here with a naive row-major GEMM, for every
// CRUCIBLE_CUDA_EXPERTS way and both tables, outputs NaN-poisoned, plus how many calls
// each way made. Built and run by tests/cuda/test_experts_grouped_host.c (needs nvcc,
// no GPU); prints "all ok" and exits 0 on success. MOCK_16BF_OK=1 makes the mocked
// grouped call accept FAST_16BF (which cuBLAS documents it does not).
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <map>
#include <set>
#include <vector>

static int g_grouped_calls, g_gemmex_calls, g_fast16bf_grouped_ok, g_events;
static cudaError_t m_cudaMalloc(void **p, size_t b) { *p = malloc(b); return cudaSuccess; }
static cudaError_t m_cudaFree(void *p) { free(p); return cudaSuccess; }
static cudaError_t m_cudaMemcpy(void *d, const void *s, size_t b, cudaMemcpyKind) { memcpy(d, s, b); return cudaSuccess; }
static cudaError_t m_cudaStreamCreateWithFlags(cudaStream_t *s, unsigned) { static long k = 1; *s = (cudaStream_t)(k++); return cudaSuccess; }
static cudaError_t m_cudaEventCreateWithFlags(cudaEvent_t *e, unsigned) { static long k = 100; *e = (cudaEvent_t)(k++); return cudaSuccess; }
static cudaError_t m_cudaEventRecord(cudaEvent_t, cudaStream_t) { g_events++; return cudaSuccess; }
static cudaError_t m_cudaStreamWaitEvent(cudaStream_t, cudaEvent_t, unsigned) { return cudaSuccess; }
static const char *m_cudaGetErrorString(cudaError_t) { return "mock"; }
static cublasStatus_t m_cublasCreate(cublasHandle_t *h) { static long k = 1000; *h = (cublasHandle_t)(k++); return CUBLAS_STATUS_SUCCESS; }
static cublasStatus_t m_cublasSetStream(cublasHandle_t, cudaStream_t) { return CUBLAS_STATUS_SUCCESS; }
static cublasStatus_t m_cublasSetMathMode(cublasHandle_t, cublasMath_t) { return CUBLAS_STATUS_SUCCESS; }
static const char *m_cublasGetStatusString(cublasStatus_t) { return "mock"; }

// column-major C = alpha op(A) op(B) + beta C
static void colgemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, float alpha, const float *A, int lda,
                    const float *B, int ldb, float beta, float *C, int ldc) {
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                float a = ta == CUBLAS_OP_N ? A[i + (size_t)p * lda] : A[p + (size_t)i * lda];
                float b = tb == CUBLAS_OP_N ? B[p + (size_t)j * ldb] : B[j + (size_t)p * ldb];
                s += (double)a * b;
            }
            float *c = &C[i + (size_t)j * ldc];
            *c = (float)(alpha * s + (beta == 0 ? 0.0 : beta * *c));
        }
}
static cublasStatus_t m_cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                     const void *alpha, const void *A, cudaDataType_t at, int lda, const void *B,
                                     cudaDataType_t bt, int ldb, const void *beta, void *C, cudaDataType_t ct, int ldc,
                                     cublasComputeType_t, cublasGemmAlgo_t) {
    if (at != CUDA_R_32F || bt != CUDA_R_32F || ct != CUDA_R_32F) abort();
    g_gemmex_calls++;
    colgemm(ta, tb, m, n, k, *(const float *)alpha, (const float *)A, lda, (const float *)B, ldb, *(const float *)beta,
            (float *)C, ldc);
    return CUBLAS_STATUS_SUCCESS;
}
static cublasStatus_t m_cublasGemmGroupedBatchedEx(cublasHandle_t, const cublasOperation_t ta[], const cublasOperation_t tb[],
                                                   const int m[], const int n[], const int k[], const void *alpha,
                                                   const void *const Aarr[], cudaDataType_t, const int lda[],
                                                   const void *const Barr[], cudaDataType_t, const int ldb[],
                                                   const void *beta, void *const Carr[], cudaDataType_t, const int ldc[],
                                                   int G, const int gs[], cublasComputeType_t ct) {
    if (ct == CUBLAS_COMPUTE_32F_FAST_16BF && !g_fast16bf_grouped_ok) return CUBLAS_STATUS_NOT_SUPPORTED;
    g_grouped_calls++;
    int idx = 0;
    for (int g = 0; g < G; g++)
        for (int j = 0; j < gs[g]; j++, idx++)
            colgemm(ta[g], tb[g], m[g], n[g], k[g], ((const float *)alpha)[g], (const float *)Aarr[idx], lda[g],
                    (const float *)Barr[idx], ldb[g], ((const float *)beta)[g], (float *)Carr[idx], ldc[g]);
    return CUBLAS_STATUS_SUCCESS;
}
#define cudaMalloc m_cudaMalloc
#define cudaFree m_cudaFree
#define cudaMemcpy m_cudaMemcpy
#define cudaStreamCreateWithFlags m_cudaStreamCreateWithFlags
#define cudaEventCreateWithFlags m_cudaEventCreateWithFlags
#define cudaEventRecord m_cudaEventRecord
#define cudaStreamWaitEvent m_cudaStreamWaitEvent
#define cudaGetErrorString m_cudaGetErrorString
#undef cublasCreate  // cublas_v2.h maps these to their _v2 names
#undef cublasSetStream
#define cublasCreate m_cublasCreate
#define cublasSetStream m_cublasSetStream
#define cublasSetMathMode m_cublasSetMathMode
#define cublasGetStatusString m_cublasGetStatusString
#define cublasGemmEx m_cublasGemmEx
#define cublasGemmGroupedBatchedEx m_cublasGemmGroupedBatchedEx
#include "model/cuda/moe_grouped.cu"

void cuda_fail(const char *what, const char *msg, const char *file, int line) {
    fprintf(stderr, "FAIL %s:%d %s %s\n", file, line, what, msg);
    exit(1);
}
CudaCtx *cuda_ctx(void) { static CudaCtx c; return &c; }
// The workspaces given to the side handles: one buffer each (their GEMMs run at once).
static std::map<long, void *> g_ws;
void cuda_blas_workspace(cublasHandle_t h, void **ws) {
    if (!*ws) *ws = malloc(16);
    g_ws[(long)h] = *ws;
}
// row-major cblas semantics
static void rowgemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int p = 0; p < K; p++)
                s += (double)(ta ? A[p * (size_t)lda + i] : A[i * (size_t)lda + p]) *
                     (tb ? B[j * (size_t)ldb + p] : B[p * (size_t)ldb + j]);
            float *c = &C[i * (size_t)ldc + j];
            *c = (float)(alpha * s + (beta == 0 ? 0.0 : beta * *c));
        }
}
static int g_loop_calls;
void cuda_gemm_fp32(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc) { g_loop_calls++; rowgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); }
void cuda_gemm_bf16(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                    float beta, float *C, int ldc) { g_loop_calls++; rowgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc); }
void cuda_swiglu_forward(float *h, const float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) h[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}
void cuda_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float x = g[i], sg = 1.0f / (1.0f + expf(-x)), si = x * sg, d = dh[i];
        du[i] = d * si;
        dg[i] = d * u[i] * sg * (1.0f + x * (1.0f - sg));
    }
}

static float frand(unsigned *s) {
    *s = *s * 1664525u + 1013904223u;
    return ((*s >> 8) / 16777216.0f) - 0.5f;
}
static std::vector<float> rv(size_t n, unsigned *s) {
    std::vector<float> v(n ? n : 1);
    for (size_t i = 0; i < n; i++) v[i] = frand(s);
    return v;
}
static double maxdiff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;  // NaN sticks
    }
    return m;
}

int main() {
    g_fast16bf_grouped_ok = getenv("MOCK_16BF_OK") != NULL;
    unsigned seed = 7;
    const char *modes[] = {"loop", "grouped", "streams", "auto"};
    // E, D, I, load pattern: 0 uneven (every third expert empty), 1 one expert has
    // every row, 2 no rows at all. D = 17 gives rows that are not 16-byte aligned.
    int cases[][4] = {{16, 24, 20, 0}, {8, 17, 9, 0}, {5, 32, 16, 1}, {4, 8, 8, 2}};
    int fails = 0;
    for (int cs = 0; cs < 4; cs++) {
        int E = cases[cs][0], D = cases[cs][1], I = cases[cs][2], pat = cases[cs][3];
        std::vector<int> off(E + 1, 0);
        int nonempty = 0;
        for (int e = 0; e < E; e++) {
            int c = 1 + (int)((frand(&seed) + 0.5f) * 30);
            if (pat == 0 && e % 3 == 1) c = 0;
            if (pat == 1) c = e == 3 ? 41 : 0;
            if (pat == 2) c = 0;
            off[e + 1] = off[e] + c;
            nonempty += c > 0;
        }
        int S = off[E];
        size_t nx = (size_t)S * D, ni = (size_t)S * I, nw = (size_t)E * I * D;
        auto Xp = rv(nx, &seed), Wg = rv(nw, &seed), Wu = rv(nw, &seed), Wd = rv(nw, &seed), dYp = rv(nx, &seed);
        auto dW0 = rv(nw, &seed);
        // the specification, expert by expert (model/cpu/moe_dispatch.c)
        std::vector<float> rY(nx + 1), rG(ni + 1), rU(ni + 1), rH(ni + 1), rdX(nx + 1), rdG(ni + 1), rdU(ni + 1),
            rdH(ni + 1);
        std::vector<float> rdWg = dW0, rdWu = dW0, rdWd = dW0;
        for (int e = 0; e < E; e++) {
            int r0 = off[e], M = off[e + 1] - r0;
            if (!M) continue;
            rowgemm(0, 1, M, I, D, 1, &Xp[r0 * D], D, &Wg[e * I * D], D, 0, &rG[r0 * I], I);
            rowgemm(0, 1, M, I, D, 1, &Xp[r0 * D], D, &Wu[e * I * D], D, 0, &rU[r0 * I], I);
            cuda_swiglu_forward(&rH[r0 * I], &rG[r0 * I], &rU[r0 * I], (size_t)M * I);
            rowgemm(0, 1, M, D, I, 1, &rH[r0 * I], I, &Wd[e * D * I], I, 0, &rY[r0 * D], D);
            rowgemm(0, 0, M, I, D, 1, &dYp[r0 * D], D, &Wd[e * D * I], I, 0, &rdH[r0 * I], I);
            rowgemm(1, 0, D, I, M, 1, &dYp[r0 * D], D, &rH[r0 * I], I, 1, &rdWd[e * D * I], I);
            cuda_swiglu_backward(&rdG[r0 * I], &rdU[r0 * I], &rdH[r0 * I], &rG[r0 * I], &rU[r0 * I], (size_t)M * I);
            rowgemm(0, 0, M, D, I, 1, &rdG[r0 * I], I, &Wg[e * I * D], D, 0, &rdX[r0 * D], D);
            rowgemm(0, 0, M, D, I, 1, &rdU[r0 * I], I, &Wu[e * I * D], D, 1, &rdX[r0 * D], D);
            rowgemm(1, 0, I, D, M, 1, &rdG[r0 * I], I, &Xp[r0 * D], D, 1, &rdWg[e * I * D], D);
            rowgemm(1, 0, I, D, M, 1, &rdU[r0 * I], I, &Xp[r0 * D], D, 1, &rdWu[e * I * D], D);
        }
        for (int t = 0; t < 2; t++)
            for (int m = 0; m < 4; m++) {
                setenv("CRUCIBLE_CUDA_EXPERTS", modes[m], 1);
                std::vector<float> Y(nx + 1, NAN), G(ni + 1, NAN), U(ni + 1, NAN), H(ni + 1, NAN), dX(nx + 1, NAN),
                    dG(ni + 1, NAN), dU(ni + 1, NAN), dH(ni + 1, NAN), dWg = dW0, dWu = dW0, dWd = dW0;
                g_grouped_calls = g_gemmex_calls = g_loop_calls = 0;
                GemmFn fn = t ? cuda_gemm_bf16 : cuda_gemm_fp32;
                cuda_moe_experts_forward_g(fn, Y.data(), G.data(), U.data(), H.data(), Xp.data(), Wg.data(), Wu.data(),
                                           Wd.data(), off.data(), E, D, I);
                cuda_moe_experts_backward_g(fn, dX.data(), dWg.data(), dWu.data(), dWd.data(), dYp.data(), dG.data(),
                                            dU.data(), dH.data(), Xp.data(), G.data(), U.data(), H.data(), Wg.data(),
                                            Wu.data(), Wd.data(), off.data(), E, D, I);
                double d = maxdiff(Y.data(), rY.data(), nx) + maxdiff(dX.data(), rdX.data(), nx) +
                           maxdiff(G.data(), rG.data(), ni) + maxdiff(U.data(), rU.data(), ni) +
                           maxdiff(H.data(), rH.data(), ni) + maxdiff(dWg.data(), rdWg.data(), nw) +
                           maxdiff(dWu.data(), rdWu.data(), nw) + maxdiff(dWd.data(), rdWd.data(), nw);
                // calls expected: 9 GEMMs per expert with rows; grouped = 2 forward + 3 backward
                // lists where cuBLAS takes the compute type and the rows are aligned
                int grouped_ok = t == 0 || (g_fast16bf_grouped_ok && D % 4 == 0 && I % 4 == 0);
                int want_grouped = (m == 1 || m == 3) && grouped_ok && nonempty ? 5 : 0;
                int want_loop = m == 0 ? 9 * nonempty : 0;
                int want_ex = m != 0 && !want_grouped ? 9 * nonempty : 0;
                int ok = d < 1e-4 && g_grouped_calls == want_grouped && g_loop_calls == want_loop &&
                         g_gemmex_calls == want_ex;
                printf("%s case %d %s %-8s rows %3d: max diff %.3g; calls grouped %d, streams %d, loop %d\n",
                       ok ? "ok  " : "FAIL", cs, t ? "bf16" : "fp32", modes[m], S, d, g_grouped_calls, g_gemmex_calls,
                       g_loop_calls);
                fails += !ok;
            }
    }
    {  // every side handle made got a workspace of its own
        std::set<void *> bufs;
        for (auto &kv : g_ws) bufs.insert(kv.second);
        bool ok = g_ws.size() >= 2 && bufs.size() == g_ws.size() && !bufs.count(NULL);
        if (!ok) fprintf(stderr, "side handles' workspaces: %zu handles, %zu distinct buffers\n", g_ws.size(), bufs.size());
        fails += !ok;
    }
    printf(fails ? "FAILED %d\n" : "all ok\n", fails);
    return fails != 0;
}
