/* rollout/linear.c — see linear.h */
#include "rollout/linear.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#define KERNEL_ISAS __attribute__((target_clones("avx2", "default")))

/* y[m, n0..n1) for every m < M. Four W rows at a time so that each x load feeds four
 * FMAs; the simd reductions fix the summation order for a given K and ISA. */
KERNEL_ISAS
static void dot_block(float *y, int ldy, const float *x, int ldx, const float *W, int M, int n0, int n1,
                      int K, int acc) {
    int n = n0;
    for (; n + 4 <= n1; n += 4) {
        const float *w0 = W + (long)n * K, *w1 = w0 + K, *w2 = w1 + K, *w3 = w2 + K;
        for (int m = 0; m < M; m++) {
            const float *xm = x + (long)m * ldx;
            float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
            for (int k = 0; k < K; k++) {
                float xv = xm[k];
                s0 += xv * w0[k];
                s1 += xv * w1[k];
                s2 += xv * w2[k];
                s3 += xv * w3[k];
            }
            float *ym = y + (long)m * ldy + n;
            if (acc) {
                ym[0] += s0; ym[1] += s1; ym[2] += s2; ym[3] += s3;
            } else {
                ym[0] = s0; ym[1] = s1; ym[2] = s2; ym[3] = s3;
            }
        }
    }
    for (; n < n1; n++) {
        const float *w0 = W + (long)n * K;
        for (int m = 0; m < M; m++) {
            const float *xm = x + (long)m * ldx;
            float s0 = 0;
#pragma omp simd reduction(+ : s0)
            for (int k = 0; k < K; k++) s0 += xm[k] * w0[k];
            float *ym = y + (long)m * ldy + n;
            *ym = acc ? *ym + s0 : s0;
        }
    }
}

/* AVX-512: register blocks of 4 outputs x 4 rows (16 accumulators, 8 loads per 16 FMAs);
 * the K tail uses masked loads; each (row, output) is reduced in the same fixed order
 * whatever the blocking of the other rows. */
__attribute__((target("avx512f")))
static void dot_block_avx512(float *y, int ldy, const float *x, int ldx, const float *W, int M, int n0,
                             int n1, int K, int acc) {
    int kfull = K & ~15;
    __mmask16 tail = (__mmask16)((1u << (K & 15)) - 1u);
    int n = n0;
    for (; n + 4 <= n1; n += 4) {
        const float *w[4] = {W + (long)n * K, W + (long)(n + 1) * K, W + (long)(n + 2) * K,
                             W + (long)(n + 3) * K};
        int m = 0;
        for (; m < M; m += 4) {
            int mb = M - m < 4 ? M - m : 4;
            const float *xr[4];
            for (int i = 0; i < 4; i++) xr[i] = x + (long)(m + (i < mb ? i : 0)) * ldx;
            const float *x0 = xr[0], *x1 = xr[1], *x2 = xr[2], *x3 = xr[3];
            const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
            /* 16 named accumulators so that they live in registers */
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00,
                   a12 = a00, a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00,
                   a31 = a00, a32 = a00, a33 = a00;
#define STEP(LOAD, k)                                                                   \
    do {                                                                               \
        __m512 v0 = LOAD(w0 + (k)), v1 = LOAD(w1 + (k)), v2 = LOAD(w2 + (k)), v3 = LOAD(w3 + (k)); \
        __m512 xv = LOAD(x0 + (k));                                                    \
        a00 = _mm512_fmadd_ps(xv, v0, a00); a01 = _mm512_fmadd_ps(xv, v1, a01);        \
        a02 = _mm512_fmadd_ps(xv, v2, a02); a03 = _mm512_fmadd_ps(xv, v3, a03);        \
        xv = LOAD(x1 + (k));                                                           \
        a10 = _mm512_fmadd_ps(xv, v0, a10); a11 = _mm512_fmadd_ps(xv, v1, a11);        \
        a12 = _mm512_fmadd_ps(xv, v2, a12); a13 = _mm512_fmadd_ps(xv, v3, a13);        \
        xv = LOAD(x2 + (k));                                                           \
        a20 = _mm512_fmadd_ps(xv, v0, a20); a21 = _mm512_fmadd_ps(xv, v1, a21);        \
        a22 = _mm512_fmadd_ps(xv, v2, a22); a23 = _mm512_fmadd_ps(xv, v3, a23);        \
        xv = LOAD(x3 + (k));                                                           \
        a30 = _mm512_fmadd_ps(xv, v0, a30); a31 = _mm512_fmadd_ps(xv, v1, a31);        \
        a32 = _mm512_fmadd_ps(xv, v2, a32); a33 = _mm512_fmadd_ps(xv, v3, a33);        \
    } while (0)
#define LOADU(p) _mm512_loadu_ps(p)
#define LOADT(p) _mm512_maskz_loadu_ps(tail, p)
            for (int k = 0; k < kfull; k += 16) STEP(LOADU, k);
            if (tail) STEP(LOADT, kfull);
#undef STEP
#undef LOADU
#undef LOADT
            float r[4][4] = {
                {_mm512_reduce_add_ps(a00), _mm512_reduce_add_ps(a01), _mm512_reduce_add_ps(a02), _mm512_reduce_add_ps(a03)},
                {_mm512_reduce_add_ps(a10), _mm512_reduce_add_ps(a11), _mm512_reduce_add_ps(a12), _mm512_reduce_add_ps(a13)},
                {_mm512_reduce_add_ps(a20), _mm512_reduce_add_ps(a21), _mm512_reduce_add_ps(a22), _mm512_reduce_add_ps(a23)},
                {_mm512_reduce_add_ps(a30), _mm512_reduce_add_ps(a31), _mm512_reduce_add_ps(a32), _mm512_reduce_add_ps(a33)}};
            for (int i = 0; i < mb; i++) {
                float *ym = y + (long)(m + i) * ldy + n;
                for (int j = 0; j < 4; j++) ym[j] = acc ? ym[j] + r[i][j] : r[i][j];
            }
        }
    }
    if (n < n1) dot_block(y, ldy, x, ldx, W, M, n, n1, K, acc);
}

void rollout_linear(float *y, int ldy, const float *x, int ldx, const float *W, int M, int N, int K,
                    int accumulate) {
    if (M <= 0 || N <= 0) return;
    if (M > ROLLOUT_LINEAR_SMALL_M) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1.0f, x, ldx, W, K,
                    accumulate ? 1.0f : 0.0f, y, ldy);
        return;
    }
    /* Column chunks of 64 outputs (a multiple of 4): fixed partition, any thread count. */
    int chunks = (N + 63) / 64;
    long work = (long)M * N * K;
    int have_avx512 = __builtin_cpu_supports("avx512f");
#pragma omp parallel for schedule(static) if (work > (1L << 18) && chunks > 1)
    for (int ch = 0; ch < chunks; ch++) {
        int n0 = ch * 64, n1 = n0 + 64 < N ? n0 + 64 : N;
        if (have_avx512)
            dot_block_avx512(y, ldy, x, ldx, W, M, n0, n1, K, accumulate);
        else
            dot_block(y, ldy, x, ldx, W, M, n0, n1, K, accumulate);
    }
}

KERNEL_ISAS
static void axpy_rows(float *y, int ldy, const float *x, int ldx, const float *B, int ldb, int M,
                      int n0, int n1, int K) {
    for (int m = 0; m < M; m++) {
        float *ym = y + (long)m * ldy;
        const float *xm = x + (long)m * ldx;
        for (int n = n0; n < n1; n++) ym[n] = 0.0f;
        for (int k = 0; k < K; k++) {
            float a = xm[k];
            const float *b = B + (long)k * ldb;
#pragma omp simd
            for (int n = n0; n < n1; n++) ym[n] += a * b[n];
        }
    }
}

void rollout_linear_nn(float *y, int ldy, const float *x, int ldx, const float *B, int ldb, int M,
                       int N, int K) {
    if (M <= 0 || N <= 0) return;
    int chunks = (N + 127) / 128;
    long work = (long)M * N * K;
#pragma omp parallel for schedule(static) if (work > (1L << 18) && chunks > 1)
    for (int ch = 0; ch < chunks; ch++) {
        int n0 = ch * 128, n1 = n0 + 128 < N ? n0 + 128 : N;
        axpy_rows(y, ldy, x, ldx, B, ldb, M, n0, n1, K);
    }
}
