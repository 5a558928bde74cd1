/* model/cpu/ops_cpu.c — the CPU backend table: memory (host), GEMM (OpenBLAS),
 * elementwise helpers, and the Ops instance returned by ops_cpu(). */
#include "model/cpu/cpu_ops.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <pthread.h>
#include <string.h>

#include "core/alloc.h"

static void *cpu_alloc(size_t bytes) { return cr_alloc_aligned(bytes ? bytes : 1); }
static void cpu_free(void *p) { cr_free_aligned(p); }
static void cpu_memcpy(void *dst, const void *src, size_t bytes) {
    if (bytes) memcpy(dst, src, bytes);
}
static void cpu_zero(void *p, size_t bytes) {
    if (bytes) memset(p, 0, bytes);
}

/* OpenBLAS runs single-threaded (see ops_cpu) and a large GEMM is cut into fixed blocks of
 * GEMM_BLOCK rows (or columns) of C that OpenMP threads share. The cut depends only on the
 * shape, never on the thread count, so every block is the same BLAS call whatever the
 * number of threads: results are bit-identical across thread counts (OpenBLAS picks
 * different kernels for different block shapes, so a thread-dependent cut would not be). */
enum { GEMM_BLOCK = 128 };

static void gemm_block(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void cpu_gemm(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
              const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {  /* BLAS may skip beta scaling when K == 0; do it ourselves. */
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(size_t)i * ldc + j] = beta == 0 ? 0 : beta * C[(size_t)i * ldc + j];
        return;
    }
    int split_m = M >= N;
    int len = split_m ? M : N;
    double flops = 2.0 * M * N * K;
    if (len < 2 * GEMM_BLOCK || flops < 2.0 * 64 * 64 * 64) {
        gemm_block(transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    int nblk = (len + GEMM_BLOCK - 1) / GEMM_BLOCK;
#pragma omp parallel for schedule(dynamic, 1) if (!omp_in_parallel())
    for (int b = 0; b < nblk; b++) {
        int o = b * GEMM_BLOCK, n = len - o < GEMM_BLOCK ? len - o : GEMM_BLOCK;
        if (split_m)
            gemm_block(transA, transB, n, N, K, alpha, transA ? A + o : A + (size_t)o * lda, lda, B, ldb, beta,
                       C + (size_t)o * ldc, ldc);
        else
            gemm_block(transA, transB, M, n, K, alpha, A, lda, transB ? B + (size_t)o * ldb : B + o, ldb, beta,
                       C + o, ldc);
    }
}

/* One gemm per batch entry, in order: the same products as separate gemm() calls. */
static void cpu_gemm_batched(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                             long long strideA, const float *B, int ldb, long long strideB, float beta, float *C,
                             int ldc, long long strideC, int batch) {
    for (int b = 0; b < batch; b++)
        cpu_gemm(transA, transB, M, N, K, alpha, A + b * strideA, lda, B + b * strideB, ldb, beta, C + b * strideC,
                 ldc);
}

static void cpu_copy2d(float *dst, int ldd, const float *src, int lds, int rows, int cols) {
    if (cols <= 0) return;
    for (int i = 0; i < rows; i++) memcpy(dst + (size_t)i * ldd, src + (size_t)i * lds, sizeof(float) * (size_t)cols);
}

static void cpu_add(float *y, const float *x, size_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++) y[i] += x[i];
}

static void cpu_scale(float *y, float a, size_t n) {
#pragma omp parallel for schedule(static) if (n > 32768)
    for (size_t i = 0; i < n; i++) y[i] *= a;
}

static void cpu_count_nonfinite(const float *x, size_t n, size_t *count) {
    size_t c = 0;
#pragma omp parallel for schedule(static) reduction(+ : c) if (n > 65536)
    for (size_t i = 0; i < n; i++) c += !isfinite(x[i]);
    *count = c;
}

static float silu_f(float g) { return g / (1.0f + expf(-g)); }

void cpu_swiglu_forward(float *h, const float *g, const float *u, size_t n) {
#pragma omp parallel for schedule(static) if (n > 16384 && !omp_in_parallel())
    for (size_t i = 0; i < n; i++) h[i] = silu_f(g[i]) * u[i];
}

void cpu_swiglu_backward(float *dg, float *du, const float *dh, const float *g, const float *u, size_t n) {
#pragma omp parallel for schedule(static) if (n > 16384 && !omp_in_parallel())
    for (size_t i = 0; i < n; i++) {
        float sg = 1.0f / (1.0f + expf(-g[i]));
        float si = g[i] * sg;
        du[i] = dh[i] * si;
        dg[i] = dh[i] * u[i] * sg * (1.0f + g[i] * (1.0f - sg));
    }
}

static const Ops k_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .zero = cpu_zero,
    .copy = cpu_memcpy,
    .gemm = cpu_gemm,
    .gemm_batched = cpu_gemm_batched,
    .copy2d = cpu_copy2d,
    .add = cpu_add,
    .scale = cpu_scale,
    .count_nonfinite = cpu_count_nonfinite,
    .embedding_forward = cpu_embedding_forward,
    .embedding_backward = cpu_embedding_backward,
    .rmsnorm_forward = cpu_rmsnorm_forward,
    .rmsnorm_backward = cpu_rmsnorm_backward,
    .rope_forward = cpu_rope_forward,
    .rope_backward = cpu_rope_backward,
    .swiglu_forward = cpu_swiglu_forward,
    .swiglu_backward = cpu_swiglu_backward,
    .attention_forward = cpu_attention_forward,
    .attention_backward = cpu_attention_backward,
    .mla_kv_assemble_forward = cpu_mla_kv_assemble_forward,
    .mla_kv_assemble_backward = cpu_mla_kv_assemble_backward,
    .moe_route_forward = cpu_moe_route_forward,
    .moe_route_backward = cpu_moe_route_backward,
    .moe_aux_forward = cpu_moe_aux_forward,
    .moe_permute = cpu_moe_permute,
    .moe_permute_backward = cpu_moe_permute_backward,
    .moe_experts_forward = cpu_moe_experts_forward,
    .moe_experts_backward = cpu_moe_experts_backward,
    .moe_unpermute = cpu_moe_unpermute,
    .moe_unpermute_backward = cpu_moe_unpermute_backward,
    .lmhead_logprob_forward = cpu_lmhead_logprob_forward,
    .lmhead_logprob_backward = cpu_lmhead_logprob_backward,
    .adamw_update = cpu_adamw_update,
    .sumsq = cpu_sumsq,
    .mla_cache_scatter = cpu_mla_cache_scatter,
    .mla_decode_attention = cpu_mla_decode_attention,
    .moe_experts_small = cpu_moe_experts_small,
};

/* OpenMP threads and OpenBLAS's own pthread pool would otherwise spin against each other
 * on the same cores (measured: 40x slower small GEMMs on 2 cores). */
static void blas_single_thread(void) { openblas_set_num_threads(1); }

const Ops *ops_cpu(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, blas_single_thread);
    return &k_cpu;
}
