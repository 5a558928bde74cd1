// tests/cuda/mock_param_shadow.cu — model/cuda/param_shadow.cu (the registry of declared
// parameter ranges, their dirty tracking, the GEMM route that reads bf16 shadows) and the
// rounding of model/cuda/bf16_round.cuh run on the CPU: the CUDA runtime and cuBLAS calls
// the route makes are renamed by macros to mocks doing the documented arithmetic on host
// memory (column-major cublasGemmEx reading CUDA_R_16BF / CUDA_R_32F operands), and the
// conversion launcher cuda_to_bf16_2d runs the kernel's own element function
// (bf16_convert_elem) in a host loop. Checked against: cuda_bf16.h's __float2bfloat16_rn
// and hand-derived bit patterns (rounding), a naive row-major GEMM on bf16-rounded inputs
// (routing), and counts of conversions / allocations (dirty tracking). Built and run by
// tests/cuda/test_param_shadow_host.c (needs nvcc, no GPU); prints "all ok" and exits 0.
// Not covered here: that each op of ops_cuda.cu calls the hooks (tests/cuda/
// test_param_shadow_cuda.c checks it on a GPU) and the device kernel itself.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cublas_v2.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

static int g_live_allocs, g_malloc_fails, g_last_error_reads;
static cudaError_t m_cudaMalloc(void **p, size_t b) {
    if (g_malloc_fails) {  // the device is full
        *p = NULL;
        return cudaErrorMemoryAllocation;
    }
    *p = malloc(b);
    g_live_allocs++;
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
static size_t g_mem_free = (size_t)1 << 40;  // what cudaMemGetInfo reports free (of 1 TiB)
static cudaError_t m_cudaMemGetInfo(size_t *f, size_t *t) {
    *f = g_mem_free, *t = (size_t)1 << 40;
    return cudaSuccess;
}
static cudaError_t m_cudaGetLastError(void) {
    g_last_error_reads++;
    return cudaSuccess;
}
static cudaError_t m_cudaFree(void *p) {
    if (p) g_live_allocs--;
    free(p);
    return cudaSuccess;
}
static const char *m_cudaGetErrorString(cudaError_t) { return "mock"; }
static const char *m_cublasGetStatusString(cublasStatus_t) { return "mock"; }

static float bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static float operand(const void *X, cudaDataType_t t, size_t i) {
    return t == CUDA_R_16BF ? bf16_to_float(((const uint16_t *)X)[i]) : ((const float *)X)[i];
}

// The last GemmEx call, for the routing checks.
static struct {
    int calls;
    cublasOperation_t ta, tb;
    int m, n, k, lda, ldb, ldc;
    const void *A, *B;
    cudaDataType_t at, bt, ct;
    cublasComputeType_t comp;
} g_gemm;
static cublasStatus_t m_cublasGemmEx(cublasHandle_t, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                     const void *alpha, const void *A, cudaDataType_t at, int lda, const void *B,
                                     cudaDataType_t bt, int ldb, const void *beta, void *C, cudaDataType_t ct, int ldc,
                                     cublasComputeType_t comp, cublasGemmAlgo_t) {
    g_gemm = {g_gemm.calls + 1, ta, tb, m, n, k, lda, ldb, ldc, A, B, at, bt, ct, comp};
    if (ct != CUDA_R_32F) abort();
    float a = *(const float *)alpha, b = *(const float *)beta;
    float *Cf = (float *)C;
    for (int j = 0; j < n; j++)
        for (int i = 0; i < m; i++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                float x = ta == CUBLAS_OP_N ? operand(A, at, i + (size_t)p * lda) : operand(A, at, p + (size_t)i * lda);
                float y = tb == CUBLAS_OP_N ? operand(B, bt, p + (size_t)j * ldb) : operand(B, bt, j + (size_t)p * ldb);
                s += (double)x * y;
            }
            float *c = &Cf[i + (size_t)j * ldc];
            *c = (float)(a * s + (b == 0 ? 0.0 : b * *c));
        }
    return CUBLAS_STATUS_SUCCESS;
}
#define cudaMalloc m_cudaMalloc
#define cudaFree m_cudaFree
#define cudaGetErrorString m_cudaGetErrorString
#define cudaGetLastError m_cudaGetLastError
#define cudaMemGetInfo m_cudaMemGetInfo
#define cublasGetStatusString m_cublasGetStatusString
#define cublasGemmEx m_cublasGemmEx
#include "model/cuda/param_shadow.cu"

static jmp_buf g_fail_jmp;
static int g_expect_fail;
void cuda_fail(const char *what, const char *msg, const char *file, int line) {
    if (g_expect_fail) longjmp(g_fail_jmp, 1);
    fprintf(stderr, "FAIL %s:%d %s %s\n", file, line, what, msg);
    exit(1);
}
CudaCtx *cuda_ctx(void) {
    static CudaCtx c;
    return &c;
}
// The recording's deferred work (model/cuda/ops_cuda.cu): only frees are asked for here.
static int g_deferred_frees;
void cuda_defer(CudaCtx *, void *p, size_t, int is_free) {
    if (!is_free) abort();
    g_deferred_frees++;
    m_cudaFree(p);
}
// The conversion "kernel": the element function the device kernel runs, over the grid.
struct Conv {
    const float *src;
    size_t rows, cols, ld;
};
static struct {
    int calls;
    Conv c[4];  // the first four since the count was reset
} g_conv;
void cuda_to_bf16_2d(uint16_t *dst, const float *src, size_t rows, size_t cols, size_t ld) {
    if (g_conv.calls < 4) g_conv.c[g_conv.calls] = {src, rows, cols, ld};
    g_conv.calls++;
    for (size_t i = 0; i < rows * cols; i++) bf16_convert_elem(dst, src, i, cols, ld);
}

static int g_fails;
#define EXPECT(c, ...)                                              \
    do {                                                            \
        if (!(c)) {                                                 \
            g_fails++;                                              \
            fprintf(stderr, "FAIL line %d: ", __LINE__);            \
            fprintf(stderr, __VA_ARGS__);                           \
            fprintf(stderr, "\n");                                  \
        }                                                           \
    } while (0)

static uint32_t g_rng = 12345u;
static uint32_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 17;
    g_rng ^= g_rng << 5;
    return g_rng;
}
static float bits_f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static float frand(void) { return (float)((rnd() >> 8) / 16777216.0) - 0.5f; }
static float rbf(float x) { return bf16_to_float(bf16_bits_rne(x)); }

// ---- rounding ----------------------------------------------------------------------
static void check_rounding(void) {
    struct {
        uint32_t in;
        uint16_t out;
    } hand[] = {
        {0x3F800000u, 0x3F80},  // 1.0 exact
        {0x3F808000u, 0x3F80},  // 1 + 2^-8: a tie, kept half even: down
        {0x3F818000u, 0x3F82},  // tie with kept half odd: up to even
        {0x3F808001u, 0x3F81},  // just above the tie: up
        {0x3F807FFFu, 0x3F80},  // just below: down
        {0xBF818000u, 0xBF82},  // negative tie, odd: away from zero to even
        {0x7F7FFFFFu, 0x7F80},  // FLT_MAX rounds past the largest bf16: +Inf
        {0x7F7F7FFFu, 0x7F7F},  // largest bf16 plus less than half an ulp stays finite
        {0x7F800000u, 0x7F80},  // +Inf
        {0xFF800000u, 0xFF80},  // -Inf
        {0x7F800001u, 0x7FC0},  // NaN with payload only in the dropped half: quiet NaN
        {0xFFC00000u, 0xFFC0},  // negative quiet NaN keeps its sign
        {0x7FFFFFFFu, 0x7FFF},  // NaN, all payload bits: no carry into the sign
        {0x00000001u, 0x0000},  // smallest subnormal: below half an ulp
        {0x00008000u, 0x0000},  // subnormal tie, even: down
        {0x00018000u, 0x0002},  // subnormal tie, odd: up
        {0x80000000u, 0x8000},  // -0
    };
    for (auto &h : hand) {
        uint16_t got = bf16_bits_rne(bits_f(h.in));
        EXPECT(got == h.out, "bf16_bits_rne(0x%08x) = 0x%04x, want 0x%04x", h.in, got, h.out);
    }
    // Against cuda_bf16.h's host __float2bfloat16_rn on random bit patterns (all classes).
    int bad = 0;
    for (int i = 0; i < 2000000; i++) {
        uint32_t u = rnd();
        float f = bits_f(u);
        __nv_bfloat16 r = __float2bfloat16_rn(f);
        uint16_t ref;
        memcpy(&ref, &r, sizeof ref);
        uint16_t got = bf16_bits_rne(f);
        if (isnan(f)) {
            bool nan_ok = (got & 0x7F80) == 0x7F80 && (got & 0x7F) && (got & 0x8000) == ((u >> 16) & 0x8000);
            if (!nan_ok) bad++;
        } else if (got != ref) {
            if (bad++ < 5) fprintf(stderr, "  0x%08x: 0x%04x vs __float2bfloat16_rn 0x%04x\n", u, got, ref);
        }
    }
    EXPECT(bad == 0, "%d of 2000000 random patterns differ from __float2bfloat16_rn", bad);
    // The element function's 2-D addressing (row stride ld, compact output).
    float src[3 * 7];
    for (int i = 0; i < 21; i++) src[i] = frand();
    uint16_t dst[3 * 5];
    for (size_t i = 0; i < 15; i++) bf16_convert_elem(dst, src, i, 5, 7);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 5; c++)
            EXPECT(dst[r * 5 + c] == bf16_bits_rne(src[r * 7 + c]), "convert_elem (%d,%d)", r, c);
}

// ---- registry ----------------------------------------------------------------------
static int dirty_of(const float *base) {
    for (auto &s : g_ps.s)
        if (s.base == base) return s.dirty;
    return -1;  // not declared
}

static void check_registry(void) {
    std::vector<float> mem(3000);
    for (auto &x : mem) x = frand();
    float *P = mem.data(), *Q = P + 1000;  // adjacent ranges: [0,1000) and [1000,1500)
    cuda_declare_params(P, 1000);
    cuda_declare_params(Q, 500);
    EXPECT(dirty_of(P) == 1 && dirty_of(Q) == 1, "new ranges start dirty");
    setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", "all", 1);
    // y [4, 10] = x [4, 20] W^T with W = P [10, 20] (declared) and x = mem + 2000 (not).
    float *x = P + 2000, y[40];
    long r0, g0;
    ops_cuda_param_shadow_counts(&r0, &g0);
    int allocs0 = g_live_allocs;
    EXPECT(cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y, 10) == 1, "declared B routed");
    long r1, g1;
    ops_cuda_param_shadow_counts(&r1, &g1);
    EXPECT(r1 - r0 == 1 && g1 - g0 == 1, "first GEMM: one refresh (%ld), one shadow GEMM (%ld)", r1 - r0, g1 - g0);
    EXPECT(g_live_allocs - allocs0 == 2, "shadow of P and the activation scratch allocated (%d)", g_live_allocs - allocs0);
    EXPECT(dirty_of(P) == 0 && dirty_of(Q) == 1, "P clean after its refresh, Q untouched");
    cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y, 10);
    ops_cuda_param_shadow_counts(&r1, NULL);
    EXPECT(r1 - r0 == 1, "clean range: no second refresh");
    // Writes: the last float of P dirties P only; bytes straddling P|Q dirty both.
    cuda_params_written(P + 999, sizeof(float));
    EXPECT(dirty_of(P) == 1 && dirty_of(Q) == 1, "write into P's last float");
    cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y, 10);
    EXPECT(dirty_of(P) == 0, "refreshed");
    cuda_params_written(P + 1500, 400);
    EXPECT(dirty_of(P) == 0, "write past both ranges leaves P clean");
    cuda_params_written(P + 1000, sizeof(float));
    EXPECT(dirty_of(P) == 0, "write at Q's first float leaves P clean");
    cuda_params_written(P + 999, 2 * sizeof(float));
    EXPECT(dirty_of(P) == 1 && dirty_of(Q) == 1, "a write straddling P|Q dirties both");
    cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y, 10);
    // A GEMM's C as written bytes: rows with a stride, the last row only N floats.
    cuda_params_written_matrix(P - 30, 2, 10, 30);  // covers [P-30, P-20) and [P, P+10)
    EXPECT(dirty_of(P) == 1, "C's second row lies in P");
    cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y, 10);
    cuda_params_written_matrix(P - 40, 2, 10, 30);  // [P-40, P-30) and [P-10, P)
    EXPECT(dirty_of(P) == 0, "C ending right before P");
    // An AdamW step over P tensor by tensor (four writes), then three GEMMs: one refresh.
    ops_cuda_param_shadow_counts(&r0, NULL);
    for (int t = 0; t < 4; t++) cuda_params_written(P + 250 * t, 250 * sizeof(float));
    for (int k = 0; k < 3; k++) cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y, 10);
    ops_cuda_param_shadow_counts(&r1, NULL);
    EXPECT(r1 - r0 == 1, "one refresh after an AdamW step, however many GEMMs (%ld)", r1 - r0);
    // The shadow is what the GEMM reads: a master changed behind the registry's back is
    // not seen until the range is marked written.
    float y_old[40], y_new[40];
    cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y_old, 10);
    for (int i = 0; i < 200; i++) P[i] += 1.0f;
    cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y_new, 10);
    EXPECT(!memcmp(y_old, y_new, sizeof y_old), "unmarked write: the GEMM still reads the old shadow");
    cuda_params_written(P, 200 * sizeof(float));
    cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y_new, 10);
    EXPECT(memcmp(y_old, y_new, sizeof y_old) != 0, "marked write: the refreshed shadow is read");
    // Operands not wholly inside a declared range are not routed.
    EXPECT(cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P + 990, 20, 0.0f, y, 10) == 0,
           "B running past P's end is not routed (even though Q follows)");
    EXPECT(cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P + 2100, 20, 0.0f, y, 10) == 0,
           "no declared operand: not routed");
    // Declared again with another size: rebuilt; overlapping another range: an error.
    cuda_declare_params(Q, 400);
    EXPECT(dirty_of(Q) == 1, "re-declared range is dirty");
    g_expect_fail = 1;
    int failed = 0;
    if (setjmp(g_fail_jmp)) failed = 1;
    else cuda_declare_params(P + 500, 1000);
    g_expect_fail = 0;
    EXPECT(failed, "a range overlapping a declared one is refused");
    // Freed: forgotten, its shadow freed, its GEMMs no longer routed.
    int before = g_live_allocs;
    cuda_params_freed(P);
    EXPECT(dirty_of(P) == -1, "freed range forgotten");
    EXPECT(before - g_live_allocs == 1, "freed range's shadow released");
    EXPECT(cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y, 10) == 0, "freed range not routed");
    cuda_params_freed(Q);
    // A full registry ignores further declarations (their GEMMs keep FAST_16BF).
    std::vector<float> many((PARAM_SHADOW_SLOTS + 1) * 100);
    for (int i = 0; i <= PARAM_SHADOW_SLOTS; i++) cuda_declare_params(many.data() + 100 * i, 100);
    EXPECT(dirty_of(many.data() + 100 * PARAM_SHADOW_SLOTS) == -1, "declaration past the last slot ignored");
    for (int i = 0; i <= PARAM_SHADOW_SLOTS; i++) cuda_params_freed(many.data() + 100 * i);
    // The switch: off by default, and a bad value is an error.
    cuda_declare_params(P, 1000);
    unsetenv("CRUCIBLE_CUDA_BF16_WEIGHTS");
    EXPECT(cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y, 10) == 0, "unset: not routed");
    setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", "0", 1);
    EXPECT(cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y, 10) == 0, "=0: not routed");
    setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", "1", 1);
    EXPECT(cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y, 10) == 0, "=1: small GEMM not routed");
    setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", "yes", 1);
    g_expect_fail = 1;
    failed = 0;
    if (setjmp(g_fail_jmp)) failed = 1;
    else cuda_gemm_bf16_shadow(0, 1, 4, 10, 20, 1.0f, x, 20, P, 20, 0.0f, y, 10);
    g_expect_fail = 0;
    EXPECT(failed, "CRUCIBLE_CUDA_BF16_WEIGHTS=yes refused");
    cuda_params_freed(P);
    unsetenv("CRUCIBLE_CUDA_BF16_WEIGHTS");
}

// The size rule (param_shadow.cu): M N K >= 2^30 and the weight's free dimension >= 1024.
static void check_rule(void) {
    EXPECT(shadow_pays(4096, 3072, 2048, 3072), "q_proj forward shape pays");
    EXPECT(shadow_pays(4096, 2048, 3072, 2048), "q_proj dX shape pays");
    EXPECT(!shadow_pays(4096, 576, 2048, 576), "kv_a (576 outputs) does not pay");
    EXPECT(!shadow_pays(64, 2048, 2048, 2048), "decode-sized GEMM (2^28) does not pay");
    EXPECT(shadow_pays(1024, 1024, 1024, 1024), "2^30 with 1024 weight columns: at the edge, taken");
    EXPECT(!shadow_pays(1023, 1024, 1024, 1024), "just under 2^30");
    EXPECT(shadow_pays(16, 16, 1 << 22, -1), "both declared: no conversion, only the M N K rule");
}

// ---- routing against a naive row-major GEMM on bf16-rounded inputs ---------------------
static void rowgemm_ref(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                        int ldb, float beta, float *C, int ldc) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0;
            for (int p = 0; p < K; p++)
                s += (double)rbf(ta ? A[p * (size_t)lda + i] : A[i * (size_t)lda + p]) *
                     rbf(tb ? B[j * (size_t)ldb + p] : B[p * (size_t)ldb + j]);
            float *c = &C[i * (size_t)ldc + j];
            *c = (float)(alpha * s + (beta == 0 ? 0.0 : beta * *c));
        }
}

// decl: 1 = B declared (weight), 2 = A declared, 3 = both.
static void check_route(int ta, int tb, int decl) {
    const int M = 7, N = 9, K = 11, pad = 3;
    std::vector<float> W(4000), act(4000);
    for (auto &v : W) v = frand();
    for (auto &v : act) v = frand();
    float *base = W.data();
    cuda_declare_params(base, W.size());
    // Stored operands with padded strides, at offsets inside their buffers.
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    int lda = ac + pad, ldb = bc + pad + 1, ldc = N + 2;
    const float *A = (decl & 2 ? W.data() : act.data()) + 37;
    const float *B = (decl & 1 ? W.data() : act.data()) + 1501;
    std::vector<float> C(M * ldc), R(M * ldc);
    for (size_t i = 0; i < C.size(); i++) C[i] = R[i] = frand();
    float alpha = 0.75f, beta = decl == 3 ? 0.0f : 0.5f;
    if (beta == 0) for (size_t i = 0; i < C.size(); i++) C[i] = NAN;  // beta 0 must not read C
    setenv("CRUCIBLE_CUDA_BF16_WEIGHTS", "all", 1);
    g_conv.calls = 0;
    int routed = cuda_gemm_bf16_shadow(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C.data(), ldc);
    unsetenv("CRUCIBLE_CUDA_BF16_WEIGHTS");
    EXPECT(routed, "ta=%d tb=%d decl=%d routed", ta, tb, decl);
    rowgemm_ref(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, R.data(), ldc);
    double err = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) err = fmax(err, fabs((double)C[i * ldc + j] - R[i * ldc + j]));
    for (int i = 0; i < M; i++)
        for (int j = N; j < ldc; j++)
            EXPECT(beta != 0 ? C[i * ldc + j] == R[i * ldc + j] : isnan(C[i * ldc + j]),
                   "padding column %d of row %d untouched", j, i);
    EXPECT(err < 1e-5, "ta=%d tb=%d decl=%d: max |C - ref| = %g", ta, tb, decl, err);
    // cuBLAS call: B first (C^T = op(B)^T op(A)^T), bf16 operands, fp32 C and compute.
    const uint16_t *sh = NULL;
    for (auto &s : g_ps.s)
        if (s.base == base) sh = s.bf;
    EXPECT(g_gemm.m == N && g_gemm.n == M && g_gemm.k == K && g_gemm.ldc == ldc, "dims mapped column-major");
    EXPECT(g_gemm.ta == (tb ? CUBLAS_OP_T : CUBLAS_OP_N) && g_gemm.tb == (ta ? CUBLAS_OP_T : CUBLAS_OP_N), "ops swapped");
    EXPECT(g_gemm.at == CUDA_R_16BF && g_gemm.bt == CUDA_R_16BF && g_gemm.ct == CUDA_R_32F &&
               g_gemm.comp == CUBLAS_COMPUTE_32F,
           "types bf16 x bf16 -> fp32, CUBLAS_COMPUTE_32F");
    if (decl & 1) EXPECT(g_gemm.A == sh + (B - base) && g_gemm.lda == ldb, "declared B read from its shadow, ld kept");
    else EXPECT(g_gemm.A == g_ps.act && g_gemm.lda == bc, "B converted compact (ld %d, want %d)", g_gemm.lda, bc);
    if (decl & 2) EXPECT(g_gemm.B == sh + (A - base) && g_gemm.ldb == lda, "declared A read from its shadow, ld kept");
    else EXPECT(g_gemm.B == g_ps.act && g_gemm.ldb == ac, "A converted compact (ld %d, want %d)", g_gemm.ldb, ac);
    // Conversions: the range once (it was new), plus the activation with its stride.
    EXPECT(g_conv.calls == (decl == 3 ? 1 : 2), "conversions %d", g_conv.calls);
    if (decl != 3) {
        const float *act_op = decl & 1 ? A : B;
        size_t rows = decl & 1 ? ar : br, cols = decl & 1 ? ac : bc, ld = decl & 1 ? lda : ldb;
        int seen = 0;
        for (int i = 0; i < g_conv.calls && i < 4; i++) {
            const Conv &c = g_conv.c[i];
            if (c.src == act_op) seen = c.rows == rows && c.cols == cols && c.ld == ld;
        }
        EXPECT(seen, "activation converted as [%zu, %zu] stride %zu", rows, cols, ld);
    }
    for (int i = 0; i < g_conv.calls && i < 4; i++)
        if (g_conv.c[i].src == base) EXPECT(g_conv.c[i].rows == 1 && g_conv.c[i].cols == W.size(), "whole range");
    cuda_params_freed(base);
}

// ---- the decode kernels' copies (cuda_decode_shadow, CRUCIBLE_CUDA_DECODE_BF16) --------
static void check_decode(void) {
    std::vector<float> mem(2000);
    for (auto &x : mem) x = frand();
    float *P = mem.data();
    CudaCtx *c = cuda_ctx();
    unsetenv("CRUCIBLE_CUDA_DECODE_BF16");
    cuda_declare_params(P, 1000);
    EXPECT(cuda_decode_shadow(P + 10, 100) == NULL, "switch unset: no copy");
    setenv("CRUCIBLE_CUDA_DECODE_BF16", "0", 1);
    EXPECT(cuda_decode_shadow(P + 10, 100) == NULL, "=0: no copy");
    setenv("CRUCIBLE_CUDA_DECODE_BF16", "1", 1);
    EXPECT(cuda_decode_shadow(P + 1500, 10) == NULL, "undeclared weight: no copy");
    EXPECT(cuda_decode_shadow(P + 950, 51) == NULL, "extent past the range's end: no copy");
    // Recording before any copy exists: none is made inside the recording.
    static int rec_stream_tag;
    c->rec = (cudaStream_t)&rec_stream_tag, c->stream = c->rec;
    int allocs0 = g_live_allocs;
    EXPECT(cuda_decode_shadow(P + 10, 100) == NULL && g_live_allocs == allocs0, "recording, no copy yet: fp32");
    c->stream = 0;
    long r0, r1;
    ops_cuda_param_shadow_counts(&r0, NULL);
    long reads0 = ops_cuda_decode_bf16_reads();
    const uint16_t *b = cuda_decode_shadow(P + 10, 100);
    ops_cuda_param_shadow_counts(&r1, NULL);
    EXPECT(b != NULL && r1 - r0 == 1 && g_live_allocs - allocs0 == 1, "first use: allocated, refreshed once");
    EXPECT(ops_cuda_decode_bf16_reads() - reads0 == 1, "reads counted");
    const uint16_t *base16 = b ? b - 10 : NULL;
    int exact = b != NULL;
    for (int i = 0; exact && i < 1000; i++) exact = base16[i] == bf16_bits_rne(P[i]);
    EXPECT(exact, "the copy is P rounded to nearest even, at P's offsets");
    EXPECT(cuda_decode_shadow(P + 900, 100) == base16 + 900, "last 100 floats: served at their offset");
    ops_cuda_param_shadow_counts(&r0, NULL);
    EXPECT(r0 == r1, "a fresh copy is not refreshed again");
    // A write into the range: stale, and the epoch moves once (a recorded step may have read it).
    unsigned long e0 = c->epoch;
    cuda_params_written(P + 3, sizeof(float));
    EXPECT(c->epoch == e0 + 1, "fresh copy turned stale: epoch moved (%lu -> %lu)", e0, c->epoch);
    cuda_params_written(P + 4, sizeof(float));
    EXPECT(c->epoch == e0 + 1, "already stale: epoch unchanged");
    // Recording with a stale copy: fp32 (no refresh recorded); after it, refreshed directly.
    c->stream = c->rec;
    EXPECT(cuda_decode_shadow(P + 10, 100) == NULL, "recording, stale copy: fp32");
    c->stream = 0;
    P[3] = 1.0f;
    cuda_params_written(P + 3, sizeof(float));
    EXPECT(cuda_decode_shadow(P + 3, 1) == base16 + 3 && base16[3] == 0x3F80, "refreshed outside the recording");
    c->stream = c->rec;
    EXPECT(cuda_decode_shadow(P + 3, 1) == base16 + 3, "recording, fresh copy: served");
    c->stream = 0, c->rec = 0;
    // Writes to a range whose copy was never made do not move the epoch.
    float *Q = P + 1000;
    cuda_declare_params(Q, 500);
    e0 = c->epoch;
    cuda_params_written(Q, 40);
    EXPECT(c->epoch == e0, "no copy yet: epoch unchanged");
    // No room on the device: fp32 from then on, the error cleared, no retry.
    g_malloc_fails = 1;
    int reads_before = g_last_error_reads;
    EXPECT(cuda_decode_shadow(Q, 10) == NULL, "no room: fp32");
    EXPECT(g_last_error_reads == reads_before + 1, "the allocation's error cleared");
    g_malloc_fails = 0;
    EXPECT(cuda_decode_shadow(Q, 10) == NULL && g_last_error_reads == reads_before + 1, "not retried");
    EXPECT(cuda_decode_shadow(P, 10) == base16, "the other range still served");
    cuda_declare_params(Q, 400);  // another size: a new copy may be tried
    EXPECT(cuda_decode_shadow(Q, 10) != NULL, "re-declared with another size: served");
    // Room, but not the headroom (1/32 of the device = 32 GiB of the mock's 1 TiB) beyond it.
    cuda_declare_params(Q, 300);
    g_mem_free = (size_t)300 * 2 + ((size_t)1 << 35) - 1;
    EXPECT(cuda_decode_shadow(Q, 10) == NULL, "no headroom beside the copy: fp32");
    cuda_declare_params(Q, 200);
    g_mem_free = (size_t)200 * 2 + ((size_t)1 << 35);
    EXPECT(cuda_decode_shadow(Q, 10) != NULL, "exactly the copy + headroom free: served");
    g_mem_free = (size_t)1 << 40;
    // A copy released while a step is being recorded: its free waits for the recording's
    // end (cuda_defer), and the epoch moves.
    c->rec = (cudaStream_t)&rec_stream_tag, c->stream = c->rec;
    e0 = c->epoch;
    int live = g_live_allocs, deferred = g_deferred_frees;
    cuda_declare_params(Q, 100);
    EXPECT(g_deferred_frees == deferred + 1 && g_live_allocs == live - 1 && c->epoch > e0,
           "copy released while recording: deferred free, epoch moved");
    c->stream = 0, c->rec = 0;
    // A bad value names the variable.
    setenv("CRUCIBLE_CUDA_DECODE_BF16", "on", 1);
    g_expect_fail = 1;
    int failed = 0;
    if (setjmp(g_fail_jmp)) failed = 1;
    else cuda_decode_shadow(P, 10);
    g_expect_fail = 0;
    EXPECT(failed, "CRUCIBLE_CUDA_DECODE_BF16=on refused");
    unsetenv("CRUCIBLE_CUDA_DECODE_BF16");
    cuda_params_freed(P);
    cuda_params_freed(Q);
}

int main(void) {
    check_rounding();
    check_decode();
    check_registry();
    check_rule();
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (int decl = 1; decl <= 3; decl++) check_route(ta, tb, decl);
    if (g_fails) {
        printf("%d check(s) FAILED\n", g_fails);
        return 1;
    }
    printf("all ok\n");
    return 0;
}
