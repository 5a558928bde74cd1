/* model/cpu/moe_small.c — Ops.moe_experts_small: the routed experts of a few rows, each
 * (row, k) slot run through its own expert with no sort by expert (rollout decode; the
 * contract is in model/ops.h). The products are one-row GEMMs through cpu_gemm (the same
 * shape-determined OpenBLAS blocks whatever the thread count); the combine sums k in
 * order, as moe_unpermute does. */
#include "model/cpu/cpu_ops.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void cpu_moe_experts_small(float *y, float *h, const float *x, const int32_t *idx, const float *w,
                           const float *Wg, const float *Wu, const float *Wd, int N, int D, int I, int K) {
    if (N <= 0 || D <= 0) return;
    if (K <= 0 || I <= 0) { /* an empty sum */
        memset(y, 0, sizeof(float) * (size_t)N * D);
        return;
    }
    int S = N * K;
    long work = (long)S * I * D;
    float *g = cr_malloc(sizeof(float) * (size_t)S * I); /* the gate rows; h holds the up rows */
#pragma omp parallel for schedule(static) if (S > 1 && work > 8 * OPS_CPU_PAR_MIN)
    for (int s = 0; s < S; s++) {
        size_t e = (size_t)idx[s];
        const float *xn = x + (size_t)(s / K) * D;
        cpu_gemm(0, 1, 1, I, D, 1.0f, xn, D, Wg + e * I * D, D, 0.0f, g + (size_t)s * I, I);
        cpu_gemm(0, 1, 1, I, D, 1.0f, xn, D, Wu + e * I * D, D, 0.0f, h + (size_t)s * I, I);
    }
    cpu_swiglu_forward(h, g, h, (size_t)S * I);
    free(g);
    /* y[n] = w[n,0] (Wd_e0 h[n,0]) (overwrite), then += w[n,k] (Wd_ek h[n,k]), k in order. */
#pragma omp parallel for schedule(static) if (N > 1 && work > 8 * OPS_CPU_PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            size_t s = (size_t)n * K + k, e = (size_t)idx[s];
            cpu_gemm(0, 1, 1, D, I, w[s], h + s * I, I, Wd + e * D * I, I, k ? 1.0f : 0.0f, y + (size_t)n * D, D);
        }
}
