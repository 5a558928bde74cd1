/* model/cpu/lmhead.c — LM head fused with log-softmax, chunked over rows and vocabulary
 * so that at most OPS_LMHEAD_ROWS x OPS_LMHEAD_COLS logits exist at once. The forward
 * keeps an online logsumexp per row; the backward recomputes each chunk's logits and
 * forms dlogits = dlogp (onehot - p) chunk by chunk. */
#include "model/cpu/cpu_ops.h"

#include <math.h>

void cpu_lmhead_logprob_forward(float *logp, float *lse, const float *y, const float *W,
                                const int32_t *targets, int N, int V, int D, float *scratch) {
    float *lg = scratch;
    float *mx = scratch + (size_t)OPS_LMHEAD_ROWS * OPS_LMHEAD_COLS, *sm = mx + OPS_LMHEAD_ROWS,
          *tl = sm + OPS_LMHEAD_ROWS;
    for (int r0 = 0; r0 < N; r0 += OPS_LMHEAD_ROWS) {
        int nr = N - r0 < OPS_LMHEAD_ROWS ? N - r0 : OPS_LMHEAD_ROWS;
        for (int i = 0; i < nr; i++) {
            mx[i] = -INFINITY;
            sm[i] = 0;
            tl[i] = 0;
        }
        for (int c0 = 0; c0 < V; c0 += OPS_LMHEAD_COLS) {
            int nc = V - c0 < OPS_LMHEAD_COLS ? V - c0 : OPS_LMHEAD_COLS;
            cpu_gemm(0, 1, nr, nc, D, 1.0f, y + (size_t)r0 * D, D, W + (size_t)c0 * D, D, 0.0f, lg, nc);
#pragma omp parallel for schedule(static) if ((long)nr * nc > OPS_CPU_PAR_MIN)
            for (int i = 0; i < nr; i++) {
                const float *l = lg + (size_t)i * nc;
                float m = l[0];
                for (int j = 1; j < nc; j++) m = l[j] > m ? l[j] : m;
                float nm = m > mx[i] ? m : mx[i];
                float s = 0;
                for (int j = 0; j < nc; j++) s += expf(l[j] - nm);
                sm[i] = sm[i] * expf(mx[i] - nm) + s;
                mx[i] = nm;
                int t = targets[r0 + i];
                if (t >= c0 && t < c0 + nc) tl[i] = l[t - c0];
            }
        }
        for (int i = 0; i < nr; i++) {
            float L = mx[i] + logf(sm[i]);
            lse[r0 + i] = L;
            logp[r0 + i] = targets[r0 + i] >= 0 ? tl[i] - L : 0.0f;
        }
    }
}

void cpu_lmhead_logprob_backward(float *dy, float beta_dy, float *dW, const float *dlogp, const float *lse,
                                 const float *y, const float *W, const int32_t *targets, int N, int V, int D,
                                 float *scratch) {
    float *lg = scratch;
    for (int r0 = 0; r0 < N; r0 += OPS_LMHEAD_ROWS) {
        int nr = N - r0 < OPS_LMHEAD_ROWS ? N - r0 : OPS_LMHEAD_ROWS;
        for (int c0 = 0; c0 < V; c0 += OPS_LMHEAD_COLS) {
            int nc = V - c0 < OPS_LMHEAD_COLS ? V - c0 : OPS_LMHEAD_COLS;
            cpu_gemm(0, 1, nr, nc, D, 1.0f, y + (size_t)r0 * D, D, W + (size_t)c0 * D, D, 0.0f, lg, nc);
#pragma omp parallel for schedule(static) if ((long)nr * nc > OPS_CPU_PAR_MIN)
            for (int i = 0; i < nr; i++) {
                float *l = lg + (size_t)i * nc;
                int t = targets[r0 + i];
                float g = t >= 0 ? dlogp[r0 + i] : 0.0f, L = lse[r0 + i];
                for (int j = 0; j < nc; j++) l[j] = -g * expf(l[j] - L);
                if (t >= c0 && t < c0 + nc) l[t - c0] += g;
            }
            cpu_gemm(0, 0, nr, D, nc, 1.0f, lg, nc, W + (size_t)c0 * D, D, c0 == 0 ? beta_dy : 1.0f,
                     dy + (size_t)r0 * D, D);
            cpu_gemm(1, 0, nc, D, nr, 1.0f, lg, nc, y + (size_t)r0 * D, D, 1.0f, dW + (size_t)c0 * D, D);
        }
    }
}
