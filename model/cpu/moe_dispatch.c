/* model/cpu/moe_dispatch.c — grouping tokens by expert: a stable counting sort of the
 * (token, k) slots, per-expert SwiGLU GEMMs on contiguous rows, and the weighted combine
 * that sums a token's K slots in fixed k order (spec §6.2, §7.8). No atomics. */
#include "model/cpu/cpu_ops.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void cpu_moe_permute(float *Xp, int32_t *row_of_slot, int32_t *slot_of_row, int32_t *offsets, const float *x,
                     const int32_t *idx, int N, int D, int E, int K) {
    int S = N * K;
    for (int e = 0; e <= E; e++) offsets[e] = 0;
    for (int s = 0; s < S; s++) offsets[idx[s] + 1]++;
    for (int e = 0; e < E; e++) offsets[e + 1] += offsets[e];
    /* Walk the slots once in order: the sort is stable (ties keep slot order). */
    int32_t *cursor = cr_malloc(sizeof(int32_t) * (size_t)E);
    for (int e = 0; e < E; e++) cursor[e] = offsets[e];
    for (int s = 0; s < S; s++) row_of_slot[s] = cursor[idx[s]]++;
    free(cursor);
    for (int s = 0; s < S; s++) slot_of_row[row_of_slot[s]] = s;
#pragma omp parallel for schedule(static) if ((long)S * D > OPS_CPU_PAR_MIN)
    for (int r = 0; r < S; r++) memcpy(Xp + (size_t)r * D, x + (size_t)(slot_of_row[r] / K) * D, sizeof(float) * D);
}

void cpu_moe_permute_backward(float *dx, const float *dXp, const int32_t *row_of_slot, int N, int D, int K) {
#pragma omp parallel for schedule(static) if ((long)N * K * D > OPS_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        float *d = dx + (size_t)n * D;
        for (int k = 0; k < K; k++) {
            const float *src = dXp + (size_t)row_of_slot[(size_t)n * K + k] * D;
            for (int i = 0; i < D; i++) d[i] += src[i];
        }
    }
}

/* Experts run in parallel, one task per expert (their rows, weights and weight
 * gradients are disjoint); inside a task the GEMMs run on the task's thread. An expert's
 * rows are usually too few for cpu_gemm to split, so this is where the parallelism is. */
static long experts_work(const int32_t *off, int E, int D, int I) { return (long)off[E] * D * I; }

void cpu_moe_experts_forward(float *Yp, float *G, float *U, float *Hm, const float *Xp, const float *Wg,
                             const float *Wu, const float *Wd, const int32_t *offsets_host, int E, int D, int I) {
#pragma omp parallel for schedule(dynamic, 1) if (experts_work(offsets_host, E, D, I) > 8 * OPS_CPU_PAR_MIN)
    for (int e = 0; e < E; e++) {
        int r0 = offsets_host[e], M = offsets_host[e + 1] - r0;
        if (M == 0) continue;
        const float *x = Xp + (size_t)r0 * D;
        float *g = G + (size_t)r0 * I, *u = U + (size_t)r0 * I, *h = Hm + (size_t)r0 * I;
        cpu_gemm(0, 1, M, I, D, 1.0f, x, D, Wg + (size_t)e * I * D, D, 0.0f, g, I);
        cpu_gemm(0, 1, M, I, D, 1.0f, x, D, Wu + (size_t)e * I * D, D, 0.0f, u, I);
        cpu_swiglu_forward(h, g, u, (size_t)M * I);
        cpu_gemm(0, 1, M, D, I, 1.0f, h, I, Wd + (size_t)e * D * I, I, 0.0f, Yp + (size_t)r0 * D, D);
    }
}

void cpu_moe_experts_backward(float *dXp, float *dWg, float *dWu, float *dWd, const float *dYp, float *dG,
                              float *dU, float *dHm, const float *Xp, const float *G, const float *U,
                              const float *Hm, const float *Wg, const float *Wu, const float *Wd,
                              const int32_t *offsets_host, int E, int D, int I) {
#pragma omp parallel for schedule(dynamic, 1) if (experts_work(offsets_host, E, D, I) > 8 * OPS_CPU_PAR_MIN)
    for (int e = 0; e < E; e++) {
        int r0 = offsets_host[e], M = offsets_host[e + 1] - r0;
        if (M == 0) continue;
        const float *dy = dYp + (size_t)r0 * D, *x = Xp + (size_t)r0 * D;
        float *dh = dHm + (size_t)r0 * I, *dg = dG + (size_t)r0 * I, *du = dU + (size_t)r0 * I;
        float *dx = dXp + (size_t)r0 * D;
        cpu_gemm(0, 0, M, I, D, 1.0f, dy, D, Wd + (size_t)e * D * I, I, 0.0f, dh, I);
        cpu_gemm(1, 0, D, I, M, 1.0f, dy, D, Hm + (size_t)r0 * I, I, 1.0f, dWd + (size_t)e * D * I, I);
        cpu_swiglu_backward(dg, du, dh, G + (size_t)r0 * I, U + (size_t)r0 * I, (size_t)M * I);
        cpu_gemm(0, 0, M, D, I, 1.0f, dg, I, Wg + (size_t)e * I * D, D, 0.0f, dx, D);
        cpu_gemm(0, 0, M, D, I, 1.0f, du, I, Wu + (size_t)e * I * D, D, 1.0f, dx, D);
        cpu_gemm(1, 0, I, D, M, 1.0f, dg, I, x, D, 1.0f, dWg + (size_t)e * I * D, D);
        cpu_gemm(1, 0, I, D, M, 1.0f, du, I, x, D, 1.0f, dWu + (size_t)e * I * D, D);
    }
}

void cpu_moe_unpermute(float *y, const float *Yp, const float *w, const int32_t *row_of_slot, int N, int D,
                       int K) {
#pragma omp parallel for schedule(static) if ((long)N * K * D > OPS_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        float *o = y + (size_t)n * D;
        for (int i = 0; i < D; i++) o[i] = 0;
        for (int k = 0; k < K; k++) {
            float wk = w[(size_t)n * K + k];
            const float *src = Yp + (size_t)row_of_slot[(size_t)n * K + k] * D;
            for (int i = 0; i < D; i++) o[i] += wk * src[i];
        }
    }
}

void cpu_moe_unpermute_backward(float *dYp, float *dw, const float *dy, const float *Yp, const float *w,
                                const int32_t *row_of_slot, const int32_t *slot_of_row, int N, int D, int K) {
    int S = N * K;
#pragma omp parallel for schedule(static) if ((long)S * D > OPS_CPU_PAR_MIN)
    for (int r = 0; r < S; r++) {
        int s = slot_of_row[r];
        const float *g = dy + (size_t)(s / K) * D;
        float *d = dYp + (size_t)r * D;
        float ws = w[s];
        for (int i = 0; i < D; i++) d[i] = ws * g[i];
    }
#pragma omp parallel for schedule(static) if ((long)S * D > OPS_CPU_PAR_MIN)
    for (int s = 0; s < S; s++) {
        const float *g = dy + (size_t)(s / K) * D, *yp = Yp + (size_t)row_of_slot[s] * D;
        float acc = 0;
        for (int i = 0; i < D; i++) acc += g[i] * yp[i];
        dw[s] = acc;
    }
}
