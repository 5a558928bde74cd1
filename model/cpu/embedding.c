/* model/cpu/embedding.c — token embedding gather and its deterministic scatter-add. */
#include "model/cpu/cpu_ops.h"

#include <string.h>

void cpu_embedding_forward(float *out, const float *table, const int32_t *tokens, int N, int D) {
#pragma omp parallel for schedule(static) if ((long)N * D > OPS_CPU_PAR_MIN)
    for (int t = 0; t < N; t++) memcpy(out + (size_t)t * D, table + (size_t)tokens[t] * D, sizeof(float) * D);
}

/* Threads own column ranges and walk the tokens in order: a token repeated in the batch
 * is summed in the same order whatever the thread count. */
void cpu_embedding_backward(float *dtable, const float *dout, const int32_t *tokens, int N, int D) {
#pragma omp parallel for schedule(static) if ((long)N * D > OPS_CPU_PAR_MIN)
    for (int c0 = 0; c0 < D; c0 += 64) {
        int c1 = c0 + 64 < D ? c0 + 64 : D;
        for (int t = 0; t < N; t++) {
            float *dst = dtable + (size_t)tokens[t] * D;
            const float *src = dout + (size_t)t * D;
            for (int c = c0; c < c1; c++) dst[c] += src[c];
        }
    }
}
