/* model/cpu/attention.c — causal attention over packed variable-length sequences with
 * q/k head dim dqk and v head dim dv (spec §4.2 step 5, §7.6). Scores are formed one
 * query row at a time (O(seq_len) scratch per thread); the row's logsumexp is kept so the
 * backward recomputes probabilities instead of storing them. */
#include "model/cpu/cpu_ops.h"

#include <math.h>
#include <stdlib.h>

#include "core/alloc.h"

static int max_seqlen(const int32_t *cu, int n_seqs) {
    int m = 1;
    for (int s = 0; s < n_seqs; s++)
        if (cu[s + 1] - cu[s] > m) m = cu[s + 1] - cu[s];
    return m;
}

/* sum over sequences of len^2/2 * H * (dqk + dv): the causal work. */
static long attn_work(const int32_t *cu, int n_seqs, int H, int dqk, int dv) {
    long w = 0;
    for (int s = 0; s < n_seqs; s++) {
        long l = cu[s + 1] - cu[s];
        w += l * (l + 1) / 2 * H * (dqk + dv);
    }
    return w;
}

static float dotf(const float *a, const float *b, int n) {
    float s = 0;
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void cpu_attention_forward(float *O, float *lse, const float *Q, const float *K, const float *V,
                           const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale) {
    int maxlen = max_seqlen(cu_seqlens, n_seqs);
    size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;
#pragma omp parallel if (attn_work(cu_seqlens, n_seqs, H, dqk, dv) > OPS_CPU_PAR_MIN)
    {
        float *sc = cr_malloc(sizeof(float) * maxlen);
        int s = 0;
#pragma omp for schedule(dynamic, 8)
        for (long nh = 0; nh < (long)N * H; nh++) {
            int n = (int)(nh / H), h = (int)(nh % H);
            while (s > 0 && cu_seqlens[s] > n) s--;
            while (cu_seqlens[s + 1] <= n) s++;
            int j0 = cu_seqlens[s], cnt = n - j0 + 1;
            const float *q = Q + n * ldq + (size_t)h * dqk;
            float m = -INFINITY;
            for (int j = 0; j < cnt; j++) {
                float v = scale * dotf(q, K + (j0 + j) * ldq + (size_t)h * dqk, dqk);
                sc[j] = v;
                if (v > m) m = v;
            }
            float sum = 0;
            for (int j = 0; j < cnt; j++) {
                sc[j] = expf(sc[j] - m);
                sum += sc[j];
            }
            float inv = 1.0f / sum;
            float *o = O + n * ldv + (size_t)h * dv;
            for (int d = 0; d < dv; d++) o[d] = 0;
            for (int j = 0; j < cnt; j++) {
                const float *vr = V + (j0 + j) * ldv + (size_t)h * dv;
                float p = sc[j] * inv;
#pragma omp simd
                for (int d = 0; d < dv; d++) o[d] += p * vr[d];
            }
            lse[(size_t)n * H + h] = m + logf(sum);
        }
        free(sc);
    }
}

/* One task per (sequence, head): it owns the dK/dV rows of that head and walks the
 * queries in order, so every sum has a fixed order. */
void cpu_attention_backward(float *dQ, float *dK, float *dV, const float *dO, const float *O,
                            const float *lse, const float *Q, const float *K, const float *V,
                            const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale) {
    (void)N;
    size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;
#pragma omp parallel for schedule(dynamic, 1) if (attn_work(cu_seqlens, n_seqs, H, dqk, dv) > OPS_CPU_PAR_MIN)
    for (long sh = 0; sh < (long)n_seqs * H; sh++) {
        int s = (int)(sh / H), h = (int)(sh % H);
        int j0 = cu_seqlens[s], j1 = cu_seqlens[s + 1];
        for (int j = j0; j < j1; j++) {
            float *a = dQ + j * ldq + (size_t)h * dqk, *b = dK + j * ldq + (size_t)h * dqk;
            float *c = dV + j * ldv + (size_t)h * dv;
            for (int d = 0; d < dqk; d++) a[d] = b[d] = 0;
            for (int d = 0; d < dv; d++) c[d] = 0;
        }
        for (int n = j0; n < j1; n++) {
            const float *q = Q + n * ldq + (size_t)h * dqk;
            const float *dout = dO + n * ldv + (size_t)h * dv;
            float *dq = dQ + n * ldq + (size_t)h * dqk;
            float Dn = dotf(dout, O + n * ldv + (size_t)h * dv, dv);
            float L = lse[(size_t)n * H + h];
            for (int j = j0; j <= n; j++) {
                const float *k = K + j * ldq + (size_t)h * dqk;
                const float *v = V + j * ldv + (size_t)h * dv;
                float p = expf(scale * dotf(q, k, dqk) - L);
                float ds = p * (dotf(dout, v, dv) - Dn) * scale;
                float *dk = dK + j * ldq + (size_t)h * dqk, *dvv = dV + j * ldv + (size_t)h * dv;
#pragma omp simd
                for (int d = 0; d < dqk; d++) {
                    dq[d] += ds * k[d];
                    dk[d] += ds * q[d];
                }
#pragma omp simd
                for (int d = 0; d < dv; d++) dvv[d] += p * dout[d];
            }
        }
    }
}
