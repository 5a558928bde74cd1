/* model/cpu/mla_cache.c — the paged latent MLA cache ops (spec §9.2–9.3): writing latent
 * rows through a block table, and absorbed-MLA attention of query rows over them. Plain
 * loops, the reference the CUDA kernels are tested against: scores and sums in float,
 * softmax with the maximum subtracted, positions summed in ascending order. */
#include "model/cpu/cpu_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

/* The cached row of layer `layer` at position p of the sequence whose block ids are bt[]. */
static const float *latent_row(const float *cache, const int32_t *bt, int n_layers, int layer, int block_tokens,
                               int rw, int p) {
    size_t b = (size_t)bt[p / block_tokens];
    return cache + ((b * n_layers + layer) * block_tokens + p % block_tokens) * (size_t)rw;
}

void cpu_mla_cache_scatter(float *cache, const int32_t *block_table, int max_blocks, int n_layers, int layer,
                           int block_tokens, int rw, const float *src, const int32_t *pos, int n) {
    for (int i = 0; i < n; i++) {
        const int32_t *bt = block_table + (size_t)i * max_blocks;
        float *dst = (float *)latent_row(cache, bt, n_layers, layer, block_tokens, rw, pos[i]);
        memcpy(dst, src + (size_t)i * rw, sizeof(float) * rw);
    }
}

void cpu_mla_decode_attention(float *out, const float *qa, const float *cache, const int32_t *block_table,
                              int max_blocks, int n_layers, int layer, int block_tokens, const int32_t *pos, int n,
                              int H, int r, int dr, float scale) {
    int rw = r + dr;
    long work = 0;
    for (int i = 0; i < n; i++) work += (long)(pos[i] + 1) * H * (rw + r);
#pragma omp parallel for schedule(dynamic, 1) if (work > OPS_CPU_PAR_MIN)
    for (int ih = 0; ih < n * H; ih++) {
        int i = ih / H, ctx = pos[i] + 1;
        const int32_t *bt = block_table + (size_t)i * max_blocks;
        const float *q = qa + (size_t)ih * rw;
        float *o = out + (size_t)ih * r;
        float *s = cr_malloc(sizeof(float) * (size_t)ctx);
        float mx = -INFINITY;
        for (int j = 0; j < ctx; j++) {
            const float *c = latent_row(cache, bt, n_layers, layer, block_tokens, rw, j);
            float d = 0;
            for (int k = 0; k < rw; k++) d += q[k] * c[k];
            s[j] = scale * d;
            if (s[j] > mx) mx = s[j];
        }
        float sum = 0;
        for (int j = 0; j < ctx; j++) sum += (s[j] = expf(s[j] - mx));
        for (int k = 0; k < r; k++) o[k] = 0;
        for (int j = 0; j < ctx; j++) {
            const float *c = latent_row(cache, bt, n_layers, layer, block_tokens, rw, j);
            for (int k = 0; k < r; k++) o[k] += s[j] * c[k];
        }
        for (int k = 0; k < r; k++) o[k] /= sum;
        free(s);
    }
}
