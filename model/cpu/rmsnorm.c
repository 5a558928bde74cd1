/* model/cpu/rmsnorm.c — RMSNorm forward/backward over strided rows (spec §3.2, §7.3). */
#include "model/cpu/cpu_ops.h"

#include <math.h>

void cpu_rmsnorm_forward(float *out, int ldo, float *rstd, const float *x, int ldx, const float *w,
                         int N, int D, float eps) {
#pragma omp parallel for schedule(static) if ((long)N * D > OPS_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * ldx;
        float *o = out + (size_t)n * ldo;
        float ss = 0;
#pragma omp simd reduction(+ : ss)
        for (int i = 0; i < D; i++) ss += xr[i] * xr[i];
        float r = 1.0f / sqrtf(ss / D + eps);
        rstd[n] = r;
        for (int i = 0; i < D; i++) o[i] = w[i] * (xr[i] * r);
    }
}

void cpu_rmsnorm_backward(float *dx, int lddx, float *dw, const float *dout, int lddo, const float *x,
                          int ldx, const float *w, const float *rstd, int N, int D) {
    /* dw: threads own column ranges, rows summed in order (deterministic). */
#pragma omp parallel for schedule(static) if ((long)N * D > OPS_CPU_PAR_MIN)
    for (int c0 = 0; c0 < D; c0 += 32) {
        int c1 = c0 + 32 < D ? c0 + 32 : D;
        for (int n = 0; n < N; n++) {
            const float *xr = x + (size_t)n * ldx, *g = dout + (size_t)n * lddo;
            float r = rstd[n];
            for (int c = c0; c < c1; c++) dw[c] += g[c] * xr[c] * r;
        }
    }
#pragma omp parallel for schedule(static) if ((long)N * D > OPS_CPU_PAR_MIN)
    for (int n = 0; n < N; n++) {
        const float *xr = x + (size_t)n * ldx, *g = dout + (size_t)n * lddo;
        float *d = dx + (size_t)n * lddx;
        float r = rstd[n], dot = 0;
#pragma omp simd reduction(+ : dot)
        for (int i = 0; i < D; i++) dot += g[i] * w[i] * xr[i];
        dot *= r / D;  /* mean(g * xh) with xh = x r */
        for (int i = 0; i < D; i++) d[i] += r * (g[i] * w[i] - xr[i] * r * dot);
    }
}
