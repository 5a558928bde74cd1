/* rollout/linear.c — see linear.h */
#include "rollout/linear.h"

#include <cblas.h>
#include <immintrin.h>
#include <omp.h>

#define KERNEL_ISAS __attribute__((target_clones("avx512f", "avx2", "default")))

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

/* Sixteen horizontal sums at once: lane 4*q + s of the result is the sum of the lanes of
 * a[4*s + q]. Every add combines two partial sums of the SAME accumulator, pairing lanes
 * (i, i+8), then (i, i+4), (i, i+2), (i, i+1), so an accumulator's sum does not depend on
 * what the other fifteen hold (zeros included). */
__attribute__((target("avx512f")))
static inline __m512 reduce16(const __m512 a[16]) {
    __m512 b1[8], b2[4], b3[2];
    for (int t = 0; t < 8; t++)
        b1[t] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * t], a[2 * t + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_f32x4(a[2 * t], a[2 * t + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    for (int u = 0; u < 4; u++)
        b2[u] = _mm512_add_ps(_mm512_shuffle_f32x4(b1[2 * u], b1[2 * u + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                              _mm512_shuffle_f32x4(b1[2 * u], b1[2 * u + 1], _MM_SHUFFLE(3, 1, 3, 1)));
    for (int v = 0; v < 2; v++)
        b3[v] = _mm512_add_ps(_mm512_shuffle_ps(b2[2 * v], b2[2 * v + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                              _mm512_shuffle_ps(b2[2 * v], b2[2 * v + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    return _mm512_add_ps(_mm512_shuffle_ps(b3[0], b3[1], _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_ps(b3[0], b3[1], _MM_SHUFFLE(3, 1, 3, 1)));
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
        const float *w0 = w[0], *w1 = w[1], *w2 = w[2], *w3 = w[3];
        int m = 0;
        for (; m + 4 <= M; m += 4) {
            const float *x0 = x + (long)m * ldx, *x1 = x0 + ldx, *x2 = x1 + ldx, *x3 = x2 + ldx;
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
            /* accumulator (row i, output j) at index 4*i + j -> result lane 4*j + i */
            const __m512 all[16] = {a00, a01, a02, a03, a10, a11, a12, a13,
                                    a20, a21, a22, a23, a30, a31, a32, a33};
            float r[16];
            _mm512_storeu_ps(r, reduce16(all));
            for (int i = 0; i < 4; i++) {
                float *ym = y + (long)(m + i) * ldy + n;
                for (int j = 0; j < 4; j++) ym[j] = acc ? ym[j] + r[4 * j + i] : r[4 * j + i];
            }
        }
        /* leftover rows one at a time: the same per-(row, output) operation sequence as
         * above, so the bits do not depend on which kernel a row went through */
        for (; m < M; m++) {
            const float *x0 = x + (long)m * ldx;
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
#define STEP1(LOAD, k)                                                                  \
    do {                                                                               \
        __m512 xv = LOAD(x0 + (k));                                                    \
        a00 = _mm512_fmadd_ps(xv, LOAD(w0 + (k)), a00);                                \
        a01 = _mm512_fmadd_ps(xv, LOAD(w1 + (k)), a01);                                \
        a02 = _mm512_fmadd_ps(xv, LOAD(w2 + (k)), a02);                                \
        a03 = _mm512_fmadd_ps(xv, LOAD(w3 + (k)), a03);                                \
    } while (0)
            for (int k = 0; k < kfull; k += 16) STEP1(LOADU, k);
            if (tail) STEP1(LOADT, kfull);
#undef STEP1
            __m512 z = _mm512_setzero_ps();
            const __m512 all[16] = {a00, a01, a02, a03, z, z, z, z, z, z, z, z, z, z, z, z};
            float r[16];
            _mm512_storeu_ps(r, reduce16(all));
            float *ym = y + (long)m * ldy + n;
            for (int j = 0; j < 4; j++) ym[j] = acc ? ym[j] + r[4 * j] : r[4 * j];
        }
#undef LOADU
#undef LOADT
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
                      int n0, int n1, int K, int acc) {
    for (int m = 0; m < M; m++) {
        float *ym = y + (long)m * ldy;
        const float *xm = x + (long)m * ldx;
        if (!acc)
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
                       int N, int K, int accumulate) {
    if (M <= 0 || N <= 0) return;
    int chunks = (N + 127) / 128;
    long work = (long)M * N * K;
#pragma omp parallel for schedule(static) if (work > (1L << 18) && chunks > 1)
    for (int ch = 0; ch < chunks; ch++) {
        int n0 = ch * 128, n1 = n0 + 128 < N ? n0 + 128 : N;
        axpy_rows(y, ldy, x, ldx, B, ldb, M, n0, n1, K, accumulate);
    }
}
