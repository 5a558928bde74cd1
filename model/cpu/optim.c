/* model/cpu/optim.c — the CPU backend's optimizer ops: the AdamW per-element update and
 * the sum of squares behind the global gradient norm (model/ops.h adamw_update, sumsq).
 * model/adamw.c and model/schedule.c call these same functions for host buffers, so
 * the CPU path has one copy of each loop (bit-identical whichever way it is reached). */
#include "model/cpu/cpu_ops.h"

#include <math.h>
#include <stdlib.h>

#include "core/alloc.h"

void cpu_adamw_update(float beta1, float beta2, float eps, float weight_decay, long t, float lr, int decay,
                      float *p, const float *g, float *m, float *v, size_t n) {
    const float b1 = beta1, b2 = beta2;
    const double bc1 = 1.0 - pow((double)b1, (double)t), bc2 = 1.0 - pow((double)b2, (double)t);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float keep = decay ? 1.0f - lr * weight_decay : 1.0f;
#pragma omp parallel for schedule(static) if (n > (1 << 15))
    for (size_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * keep;
        float mi = m[i] + (1.0f - b1) * (gi - m[i]);     /* torch: exp_avg.lerp_(grad, 1 - beta1) */
        float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p[i] = pi - step_size * (mi / denom);
        m[i] = mi;
        v[i] = vi;
    }
}

/* Sum of squares in double over fixed 64K-element blocks, blocks added in order: the
 * result does not depend on the thread count or scheduling (bit-exact resume). */
#define NORM_BLOCK (1u << 16)

double cpu_sumsq(const float *g, size_t n) {
    size_t nb = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    if (nb <= 1) {
        double s = 0;
        for (size_t j = 0; j < n; j++) s += (double)g[j] * g[j];
        return s;
    }
    double *part = cr_malloc(sizeof(double) * nb);
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * NORM_BLOCK, hi = lo + NORM_BLOCK < n ? lo + NORM_BLOCK : n;
        double s = 0;
        for (size_t j = lo; j < hi; j++) s += (double)g[j] * g[j];
        part[b] = s;
    }
    double s = 0;
    for (size_t b = 0; b < nb; b++) s += part[b];
    free(part);
    return s;
}
