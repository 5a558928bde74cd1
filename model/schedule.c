/* model/schedule.c — see schedule.h */
#include "model/schedule.h"

#include "core/alloc.h"
#include "model/ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

double lr_schedule(long step, long warmup_steps, long total_steps, double lr_max, double min_lr_ratio) {
    if (step < 0) step = 0;
    if (warmup_steps > 0 && step < warmup_steps) return lr_max * (double)step / (double)warmup_steps;
    if (total_steps <= warmup_steps) return lr_max;
    long span = total_steps - warmup_steps;
    double p = (double)(step - warmup_steps) / (double)(span > 1 ? span : 1);
    if (p > 1) p = 1;
    double f = 0.5 * (1.0 + cos(M_PI * p));
    return lr_max * (min_lr_ratio + (1.0 - min_lr_ratio) * f);
}

/* Sum of squares in double over fixed 64K-element blocks, blocks added in order: the
 * result does not depend on the thread count or scheduling (bit-exact resume). */
#define NORM_BLOCK (1u << 16)

static double sumsq(const float *g, size_t n) {
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

double grad_global_norm(const Model *m) {
    if (m->ops && strcmp(m->ops->name, "cpu") != 0)
        CR_DIE("grad_global_norm: gradients live on the %s backend; this needs host memory", m->ops->name);
    double total = 0;
    for (int i = 0; i < m->n_tensors; i++) total += sumsq(m->grads + m->tensors[i].offset, m->tensors[i].numel);
    return sqrt(total);
}

float grad_clip_global_norm(Model *m, float max_norm) {
    double norm = grad_global_norm(m);
    if (max_norm <= 0 || !isfinite(norm)) return (float)norm;
    double coef = (double)max_norm / (norm + 1e-6);
    if (coef < 1.0) {
        float c = (float)coef;
        for (int i = 0; i < m->n_tensors; i++) {
            float *g = m->grads + m->tensors[i].offset;
            size_t n = m->tensors[i].numel;
#pragma omp parallel for schedule(static) if (n > (1 << 16))
            for (size_t j = 0; j < n; j++) g[j] *= c;
        }
    }
    return (float)norm;
}
