/* model/cpu/attention.c — causal attention over packed variable-length sequences with
 * q/k head dim dqk and v head dim dv (spec §4.2 step 5, §7.6), FlashAttention-style:
 * queries are processed in blocks of ATT_BQ rows, each block's scores against its causal
 * key prefix formed by a BLAS call into per-thread scratch (ATT_BQ x seq_len, never
 * [N x N]); the row logsumexp is kept so the backward recomputes probabilities.
 *
 * Parallel tasks: forward (sequence, head, query block); backward (sequence, head), each
 * owning its heads' dK/dV rows and walking the query blocks in order, so results do not
 * depend on the thread count. OpenBLAS is single-threaded in this backend (ops_cpu), so
 * calling it from inside the parallel region is safe and not oversubscribed. */
#include "model/cpu/cpu_ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>

#include "core/alloc.h"

enum { ATT_BQ = 64 };

typedef struct AttTask {
    int s, h, q0, q1;  /* sequence, head, query rows [q0, q1) (absolute token indices) */
} AttTask;

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

/* Scaled scores of query rows [q0, q1) of head h against keys [j0, q1), masked causally and
 * turned into probabilities exp(s - lse) (lse given) or normalised (lse computed). */
static void block_probs(float *P, int bq, int kv, const float *Q, const float *K, size_t ldq, int h, int dqk,
                        int q0, int j0, float scale, float *lse, int H, int have_lse) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, kv, dqk, scale, Q + (size_t)q0 * ldq + (size_t)h * dqk,
                (int)ldq, K + (size_t)j0 * ldq + (size_t)h * dqk, (int)ldq, 0.0f, P, kv);
    for (int i = 0; i < bq; i++) {
        float *p = P + (size_t)i * kv;
        int valid = q0 + i - j0 + 1;  /* keys j0 .. q0+i */
        float *L = lse + (size_t)(q0 + i) * H + h;
        if (have_lse) {
            float l = *L;
            for (int j = 0; j < valid; j++) p[j] = expf(p[j] - l);
        } else {
            float m = p[0];
            for (int j = 1; j < valid; j++) m = p[j] > m ? p[j] : m;
            float sum = 0;
            for (int j = 0; j < valid; j++) sum += (p[j] = expf(p[j] - m));
            float inv = 1.0f / sum;
            for (int j = 0; j < valid; j++) p[j] *= inv;
            *L = m + logf(sum);
        }
        for (int j = valid; j < kv; j++) p[j] = 0.0f;
    }
}

void cpu_attention_forward(float *O, float *lse, const float *Q, const float *K, const float *V,
                           const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale) {
    (void)N;
    int maxlen = max_seqlen(cu_seqlens, n_seqs), nt = 0;
    for (int s = 0; s < n_seqs; s++) nt += (cu_seqlens[s + 1] - cu_seqlens[s] + ATT_BQ - 1) / ATT_BQ * H;
    AttTask *tasks = cr_malloc(sizeof(AttTask) * (size_t)nt);
    nt = 0;
    for (int s = 0; s < n_seqs; s++)
        for (int q0 = cu_seqlens[s]; q0 < cu_seqlens[s + 1]; q0 += ATT_BQ)
            for (int h = 0; h < H; h++) {
                int q1 = q0 + ATT_BQ < cu_seqlens[s + 1] ? q0 + ATT_BQ : cu_seqlens[s + 1];
                tasks[nt++] = (AttTask){s, h, q0, q1};
            }
    size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;
#pragma omp parallel if (attn_work(cu_seqlens, n_seqs, H, dqk, dv) > OPS_CPU_PAR_MIN)
    {
        float *P = cr_malloc(sizeof(float) * (size_t)ATT_BQ * maxlen);
#pragma omp for schedule(dynamic, 1)
        for (int t = 0; t < nt; t++) {
            AttTask k = tasks[t];
            int j0 = cu_seqlens[k.s], bq = k.q1 - k.q0, kv = k.q1 - j0;
            block_probs(P, bq, kv, Q, K, ldq, k.h, dqk, k.q0, j0, scale, lse, H, 0);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, dv, kv, 1.0f, P, kv,
                        V + (size_t)j0 * ldv + (size_t)k.h * dv, (int)ldv, 0.0f,
                        O + (size_t)k.q0 * ldv + (size_t)k.h * dv, (int)ldv);
        }
        free(P);
    }
    free(tasks);
}

void cpu_attention_backward(float *dQ, float *dK, float *dV, const float *dO, const float *O,
                            const float *lse, const float *Q, const float *K, const float *V,
                            const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale) {
    (void)N;
    int maxlen = max_seqlen(cu_seqlens, n_seqs);
    size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;
#pragma omp parallel if (attn_work(cu_seqlens, n_seqs, H, dqk, dv) > OPS_CPU_PAR_MIN)
    {
        float *P = cr_malloc(sizeof(float) * (size_t)ATT_BQ * maxlen * 2);
        float *dP = P + (size_t)ATT_BQ * maxlen;
        float Dn[ATT_BQ];
#pragma omp for schedule(dynamic, 1)
        for (long sh = 0; sh < (long)n_seqs * H; sh++) {
            int s = (int)(sh / H), h = (int)(sh % H);
            int j0 = cu_seqlens[s], j1 = cu_seqlens[s + 1];
            for (int j = j0; j < j1; j++) {
                float *b = dK + j * ldq + (size_t)h * dqk, *c = dV + j * ldv + (size_t)h * dv;
                for (int d = 0; d < dqk; d++) b[d] = 0;
                for (int d = 0; d < dv; d++) c[d] = 0;
            }
            for (int q0 = j0; q0 < j1; q0 += ATT_BQ) {
                int q1 = q0 + ATT_BQ < j1 ? q0 + ATT_BQ : j1, bq = q1 - q0, kv = q1 - j0;
                const float *dOb = dO + (size_t)q0 * ldv + (size_t)h * dv;
                block_probs(P, bq, kv, Q, K, ldq, h, dqk, q0, j0, scale, (float *)lse, H, 1);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, bq, kv, dv, 1.0f, dOb, (int)ldv,
                            V + (size_t)j0 * ldv + (size_t)h * dv, (int)ldv, 0.0f, dP, kv);
                for (int i = 0; i < bq; i++) {
                    const float *a = dOb + (size_t)i * ldv, *b = O + (size_t)(q0 + i) * ldv + (size_t)h * dv;
                    float d = 0;
                    for (int x = 0; x < dv; x++) d += a[x] * b[x];
                    Dn[i] = d;
                }
                for (int i = 0; i < bq; i++) {
                    float *p = P + (size_t)i * kv, *g = dP + (size_t)i * kv;
                    for (int j = 0; j < kv; j++) g[j] = p[j] * (g[j] - Dn[i]);  /* dS (unscaled) */
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, bq, dqk, kv, scale, dP, kv,
                            K + (size_t)j0 * ldq + (size_t)h * dqk, (int)ldq, 0.0f,
                            dQ + (size_t)q0 * ldq + (size_t)h * dqk, (int)ldq);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kv, dqk, bq, scale, dP, kv,
                            Q + (size_t)q0 * ldq + (size_t)h * dqk, (int)ldq, 1.0f,
                            dK + (size_t)j0 * ldq + (size_t)h * dqk, (int)ldq);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kv, dv, bq, 1.0f, P, kv, dOb, (int)ldv, 1.0f,
                            dV + (size_t)j0 * ldv + (size_t)h * dv, (int)ldv);
            }
        }
        free(P);
    }
}
