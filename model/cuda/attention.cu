// model/cuda/attention.cu — the fused (flash) variant of causal attention over packed variable-length sequences with
// q/k head dim dqk and v head dim dv (MLA: 192 and 128), fp32, flash-style: tiles of
// ATT_BQ queries x ATT_BK keys in shared memory, an online softmax, and the row's
// logsumexp saved so the backward recomputes probabilities. No [N x N] matrix exists.
//
// Varlen without a host-side tile list: a query tile may straddle a sequence boundary;
// each query row finds its sequence start j0 by binary search in cu_seqlens, and a
// (query n, key j) pair is live iff j0(n) <= j <= n.
//
// Backward: two kernels, so that every output element has one owner and no atomics are
// needed: one block per (key tile, head) accumulates dK, dV over the query tiles that
// can see it; one block per (query tile, head) accumulates dQ over its key tiles. Both
// recompute P = exp(scale q.k - lse) and dS = P (dO.v - D) scale, D = dO.O per row.
#include "model/cuda/cuda_ops.cuh"

enum { ATT_BQ = 32, ATT_BK = 32, ATT_THREADS = 256 };

// Thread layout for the [ATT_BQ x ATT_BK] score tile: column tx = tid % 32, rows
// ty, ty+8, ty+16, ty+24 (ty = tid / 32): each K value loaded once serves four rows.
#define ROWS_PER_THREAD (ATT_BQ / (ATT_THREADS / ATT_BK))

__global__ void attention_forward_kernel(float *O, float *lse, const float *Q, const float *K, const float *V,
                                         const int32_t *cu, int n_seqs, int N, int H, int dqk, int dv,
                                         float scale) {
    extern __shared__ float smem[];
    const int sq = dqk + 1, ss = ATT_BK + 1;
    float *Qs = smem;                       // [BQ][dqk+1]
    float *Ks = Qs + ATT_BQ * sq;           // [BK][dqk+1]
    float *Vs = Ks + ATT_BK * sq;           // [BK][dv]
    float *S = Vs + ATT_BK * dv;            // [BQ][BK+1]
    float *Os = S + ATT_BQ * ss;            // [BQ][dv]
    float *mrow = Os + ATT_BQ * dv, *lrow = mrow + ATT_BQ, *arow = lrow + ATT_BQ;
    int *j0 = (int *)(arow + ATT_BQ);

    const int tid = threadIdx.x, h = blockIdx.y, q0 = blockIdx.x * ATT_BQ;
    const int nq = min(ATT_BQ, N - q0);
    const size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;

    for (int i = tid; i < ATT_BQ * dqk; i += ATT_THREADS) {
        int r = i / dqk, d = i % dqk;
        Qs[r * sq + d] = r < nq ? Q[(q0 + r) * ldq + (size_t)h * dqk + d] : 0.0f;
    }
    for (int i = tid; i < ATT_BQ * dv; i += ATT_THREADS) Os[i] = 0.0f;
    if (tid < ATT_BQ) {
        mrow[tid] = -INFINITY;
        lrow[tid] = 0.0f;
        j0[tid] = tid < nq ? cu[seq_of_token(cu, n_seqs, q0 + tid)] : 0x7fffffff;
    }
    __syncthreads();
    const int kbeg = j0[0], kend = q0 + nq;  // keys [kbeg, kend)
    const int tx = tid % ATT_BK, ty = tid / ATT_BK;

    for (int kt = kbeg; kt < kend; kt += ATT_BK) {
        const int nk = min(ATT_BK, kend - kt);
        for (int i = tid; i < ATT_BK * dqk; i += ATT_THREADS) {
            int c = i / dqk, d = i % dqk;
            Ks[c * sq + d] = c < nk ? K[(kt + c) * ldq + (size_t)h * dqk + d] : 0.0f;
        }
        for (int i = tid; i < ATT_BK * dv; i += ATT_THREADS) {
            int c = i / dv, d = i % dv;
            Vs[i] = c < nk ? V[(kt + c) * ldv + (size_t)h * dv + d] : 0.0f;
        }
        __syncthreads();
        {
            float acc[ROWS_PER_THREAD] = {0};
            const float *kr = Ks + tx * sq;
            for (int d = 0; d < dqk; d++) {
                float kv = kr[d];
#pragma unroll
                for (int i = 0; i < ROWS_PER_THREAD; i++) acc[i] += Qs[(ty + 8 * i) * sq + d] * kv;
            }
            const int j = kt + tx;
#pragma unroll
            for (int i = 0; i < ROWS_PER_THREAD; i++) {
                int r = ty + 8 * i, n = q0 + r;
                bool live = r < nq && tx < nk && j <= n && j >= j0[r];
                S[r * ss + tx] = live ? scale * acc[i] : -INFINITY;
            }
        }
        __syncthreads();
        {   // online softmax: 8 threads per row, 4 columns each, reductions within the 8
            const int r = tid / 8, sub = tid % 8;
            float mx = -INFINITY;
            for (int c = sub; c < ATT_BK; c += 8) mx = fmaxf(mx, S[r * ss + c]);
            for (int o = 4; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
            float mold = mrow[r], mnew = fmaxf(mold, mx);
            float sum = 0;
            for (int c = sub; c < ATT_BK; c += 8) {
                float s = S[r * ss + c];
                float p = mnew == -INFINITY ? 0.0f : expf(s - mnew);
                S[r * ss + c] = p;
                sum += p;
            }
            for (int o = 4; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
            __syncwarp();
            if (sub == 0) {
                float a = mnew == -INFINITY ? 1.0f : expf(mold - mnew);
                arow[r] = a;
                lrow[r] = lrow[r] * a + sum;
                mrow[r] = mnew;
            }
        }
        __syncthreads();
        for (int i = tid; i < ATT_BQ * dv; i += ATT_THREADS) {
            int r = i / dv, d = i % dv;
            float acc = Os[i] * arow[r];
            const float *p = S + r * ss;
            for (int c = 0; c < ATT_BK; c++) acc += p[c] * Vs[c * dv + d];
            Os[i] = acc;
        }
        __syncthreads();
    }
    for (int i = tid; i < nq * dv; i += ATT_THREADS) {
        int r = i / dv, d = i % dv;
        O[(q0 + r) * ldv + (size_t)h * dv + d] = Os[i] / lrow[r];
    }
    if (tid < nq) lse[(size_t)(q0 + tid) * H + h] = mrow[tid] + logf(lrow[tid]);
}

// Loads a query tile's Q, dO, lse, j0 and D = dO.O (8 threads per row).
__device__ void att_load_query_tile(float *Qs, float *dOs, float *lse_s, float *Dd, int *j0, const float *Q,
                                    const float *dO, const float *O, const float *lse, const int32_t *cu,
                                    int n_seqs, int q0, int nq, int H, int h, int dqk, int dv) {
    const int tid = threadIdx.x, sq = dqk + 1, sv = dv + 1;
    const size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;
    for (int i = tid; i < ATT_BQ * dqk; i += ATT_THREADS) {
        int r = i / dqk, d = i % dqk;
        Qs[r * sq + d] = r < nq ? Q[(q0 + r) * ldq + (size_t)h * dqk + d] : 0.0f;
    }
    for (int i = tid; i < ATT_BQ * dv; i += ATT_THREADS) {
        int r = i / dv, d = i % dv;
        dOs[r * sv + d] = r < nq ? dO[(q0 + r) * ldv + (size_t)h * dv + d] : 0.0f;
    }
    {
        const int r = tid / 8, sub = tid % 8;
        float s = 0;
        if (r < nq)
            for (int d = sub; d < dv; d += 8)
                s += dO[(q0 + r) * ldv + (size_t)h * dv + d] * O[(q0 + r) * ldv + (size_t)h * dv + d];
        for (int o = 4; o > 0; o >>= 1) s += __shfl_xor_sync(0xffffffffu, s, o);
        if (sub == 0) Dd[r] = s;
    }
    if (tid < ATT_BQ) {
        lse_s[tid] = tid < nq ? lse[(size_t)(q0 + tid) * H + h] : 0.0f;
        j0[tid] = tid < nq ? cu[seq_of_token(cu, n_seqs, q0 + tid)] : 0x7fffffff;
    }
}

// P and dS for the current (query tile, key tile) pair into Ps, dSs ([BQ][BK+1]).
__device__ void att_probs_and_dscores(float *Ps, float *dSs, const float *Qs, const float *dOs, const float *Ks,
                                      const float *Vs, const float *lse_s, const float *Dd, const int *j0, int q0,
                                      int nq, int k0, int nk, int dqk, int dv, float scale) {
    const int tid = threadIdx.x, tx = tid % ATT_BK, ty = tid / ATT_BK;
    const int sq = dqk + 1, sv = dv + 1, ss = ATT_BK + 1;
    float s[ROWS_PER_THREAD] = {0}, dp[ROWS_PER_THREAD] = {0};
    const float *kr = Ks + tx * sq, *vr = Vs + tx * sv;
    for (int d = 0; d < dqk; d++) {
        float kv = kr[d];
#pragma unroll
        for (int i = 0; i < ROWS_PER_THREAD; i++) s[i] += Qs[(ty + 8 * i) * sq + d] * kv;
    }
    for (int d = 0; d < dv; d++) {
        float vv = vr[d];
#pragma unroll
        for (int i = 0; i < ROWS_PER_THREAD; i++) dp[i] += dOs[(ty + 8 * i) * sv + d] * vv;
    }
    const int j = k0 + tx;
#pragma unroll
    for (int i = 0; i < ROWS_PER_THREAD; i++) {
        int r = ty + 8 * i, n = q0 + r;
        bool live = r < nq && tx < nk && j <= n && j >= j0[r];
        float p = live ? expf(scale * s[i] - lse_s[r]) : 0.0f;
        Ps[r * ss + tx] = p;
        dSs[r * ss + tx] = p * (dp[i] - Dd[r]) * scale;
    }
}

__global__ void attention_backward_dkdv_kernel(float *dK, float *dV, const float *dO, const float *O,
                                               const float *lse, const float *Q, const float *K, const float *V,
                                               const int32_t *cu, int n_seqs, int N, int H, int dqk, int dv,
                                               float scale) {
    extern __shared__ float smem[];
    const int sq = dqk + 1, sv = dv + 1, ss = ATT_BK + 1;
    float *Ks = smem;                    // [BK][dqk+1]
    float *Vs = Ks + ATT_BK * sq;        // [BK][dv+1]
    float *Qs = Vs + ATT_BK * sv;        // [BQ][dqk+1]
    float *dOs = Qs + ATT_BQ * sq;       // [BQ][dv+1]
    float *dKs = dOs + ATT_BQ * sv;      // [BK][dqk]
    float *dVs = dKs + ATT_BK * dqk;     // [BK][dv]
    float *Ps = dVs + ATT_BK * dv;       // [BQ][BK+1]
    float *dSs = Ps + ATT_BQ * ss;       // [BQ][BK+1]
    float *lse_s = dSs + ATT_BQ * ss, *Dd = lse_s + ATT_BQ;
    int *j0 = (int *)(Dd + ATT_BQ);
    __shared__ int qend_s;

    const int tid = threadIdx.x, h = blockIdx.y, k0 = blockIdx.x * ATT_BK;
    const int nk = min(ATT_BK, N - k0);
    const size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;
    for (int i = tid; i < ATT_BK * dqk; i += ATT_THREADS) {
        int c = i / dqk, d = i % dqk;
        Ks[c * sq + d] = c < nk ? K[(k0 + c) * ldq + (size_t)h * dqk + d] : 0.0f;
        dKs[i] = 0.0f;
    }
    for (int i = tid; i < ATT_BK * dv; i += ATT_THREADS) {
        int c = i / dv, d = i % dv;
        Vs[c * sv + d] = c < nk ? V[(k0 + c) * ldv + (size_t)h * dv + d] : 0.0f;
        dVs[i] = 0.0f;
    }
    if (tid == 0) qend_s = cu[seq_of_token(cu, n_seqs, k0 + nk - 1) + 1];  // queries that can see a key
    __syncthreads();
    const int qend = qend_s;
    for (int q0 = k0; q0 < qend; q0 += ATT_BQ) {
        const int nq = min(ATT_BQ, qend - q0);
        att_load_query_tile(Qs, dOs, lse_s, Dd, j0, Q, dO, O, lse, cu, n_seqs, q0, nq, H, h, dqk, dv);
        __syncthreads();
        att_probs_and_dscores(Ps, dSs, Qs, dOs, Ks, Vs, lse_s, Dd, j0, q0, nq, k0, nk, dqk, dv, scale);
        __syncthreads();
        for (int i = tid; i < ATT_BK * dv; i += ATT_THREADS) {
            int c = i / dv, d = i % dv;
            float acc = dVs[i];
            for (int r = 0; r < ATT_BQ; r++) acc += Ps[r * ss + c] * dOs[r * sv + d];
            dVs[i] = acc;
        }
        for (int i = tid; i < ATT_BK * dqk; i += ATT_THREADS) {
            int c = i / dqk, d = i % dqk;
            float acc = dKs[i];
            for (int r = 0; r < ATT_BQ; r++) acc += dSs[r * ss + c] * Qs[r * sq + d];
            dKs[i] = acc;
        }
        __syncthreads();
    }
    for (int i = tid; i < nk * dqk; i += ATT_THREADS) {
        int c = i / dqk, d = i % dqk;
        dK[(k0 + c) * ldq + (size_t)h * dqk + d] = dKs[i];
    }
    for (int i = tid; i < nk * dv; i += ATT_THREADS) {
        int c = i / dv, d = i % dv;
        dV[(k0 + c) * ldv + (size_t)h * dv + d] = dVs[i];
    }
}

__global__ void attention_backward_dq_kernel(float *dQ, const float *dO, const float *O, const float *lse,
                                             const float *Q, const float *K, const float *V, const int32_t *cu,
                                             int n_seqs, int N, int H, int dqk, int dv, float scale) {
    extern __shared__ float smem[];
    const int sq = dqk + 1, sv = dv + 1, ss = ATT_BK + 1;
    float *Qs = smem;                    // [BQ][dqk+1]
    float *dOs = Qs + ATT_BQ * sq;       // [BQ][dv+1]
    float *Ks = dOs + ATT_BQ * sv;       // [BK][dqk+1]
    float *Vs = Ks + ATT_BK * sq;        // [BK][dv+1]
    float *dQs = Vs + ATT_BK * sv;       // [BQ][dqk]
    float *Ps = dQs + ATT_BQ * dqk;      // [BQ][BK+1]
    float *dSs = Ps + ATT_BQ * ss;       // [BQ][BK+1]
    float *lse_s = dSs + ATT_BQ * ss, *Dd = lse_s + ATT_BQ;
    int *j0 = (int *)(Dd + ATT_BQ);

    const int tid = threadIdx.x, h = blockIdx.y, q0 = blockIdx.x * ATT_BQ;
    const int nq = min(ATT_BQ, N - q0);
    const size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;
    att_load_query_tile(Qs, dOs, lse_s, Dd, j0, Q, dO, O, lse, cu, n_seqs, q0, nq, H, h, dqk, dv);
    for (int i = tid; i < ATT_BQ * dqk; i += ATT_THREADS) dQs[i] = 0.0f;
    __syncthreads();
    const int kbeg = j0[0], kend = q0 + nq;
    for (int k0 = kbeg; k0 < kend; k0 += ATT_BK) {
        const int nk = min(ATT_BK, kend - k0);
        for (int i = tid; i < ATT_BK * dqk; i += ATT_THREADS) {
            int c = i / dqk, d = i % dqk;
            Ks[c * sq + d] = c < nk ? K[(k0 + c) * ldq + (size_t)h * dqk + d] : 0.0f;
        }
        for (int i = tid; i < ATT_BK * dv; i += ATT_THREADS) {
            int c = i / dv, d = i % dv;
            Vs[c * sv + d] = c < nk ? V[(k0 + c) * ldv + (size_t)h * dv + d] : 0.0f;
        }
        __syncthreads();
        att_probs_and_dscores(Ps, dSs, Qs, dOs, Ks, Vs, lse_s, Dd, j0, q0, nq, k0, nk, dqk, dv, scale);
        __syncthreads();
        for (int i = tid; i < ATT_BQ * dqk; i += ATT_THREADS) {
            int r = i / dqk, d = i % dqk;
            float acc = dQs[i];
            for (int c = 0; c < ATT_BK; c++) acc += dSs[r * ss + c] * Ks[c * sq + d];
            dQs[i] = acc;
        }
        __syncthreads();
    }
    for (int i = tid; i < nq * dqk; i += ATT_THREADS) {
        int r = i / dqk, d = i % dqk;
        dQ[(q0 + r) * ldq + (size_t)h * dqk + d] = dQs[i];
    }
}

static size_t fwd_smem(int dqk, int dv) {
    return sizeof(float) * ((size_t)(ATT_BQ + ATT_BK) * (dqk + 1) + (size_t)ATT_BK * dv + ATT_BQ * (ATT_BK + 1) +
                            (size_t)ATT_BQ * dv + 4 * ATT_BQ);
}
static size_t dkdv_smem(int dqk, int dv) {
    return sizeof(float) * ((size_t)(ATT_BQ + ATT_BK) * (dqk + 1 + dv + 1) + (size_t)ATT_BK * (dqk + dv) +
                            2 * ATT_BQ * (ATT_BK + 1) + 3 * ATT_BQ);
}
static size_t dq_smem(int dqk, int dv) {
    return sizeof(float) * ((size_t)(ATT_BQ + ATT_BK) * (dqk + 1 + dv + 1) + (size_t)ATT_BQ * dqk +
                            2 * ATT_BQ * (ATT_BK + 1) + 3 * ATT_BQ);
}

// Raise a kernel's dynamic shared-memory limit (needed above 48 KB) or fail clearly.
static void set_smem(const void *kernel, size_t bytes) {
    int dev = 0, optin = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (bytes > (size_t)optin) cuda_fail("attention", "head dims too large for shared memory", __FILE__, __LINE__);
    cudaCheck(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

void cuda_attention_forward_flash(float *O, float *lse, const float *Q, const float *K, const float *V,
                            const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale) {
    if (N <= 0 || H <= 0) return;
    size_t sm = fwd_smem(dqk, dv);
    set_smem((const void *)attention_forward_kernel, sm);
    dim3 grid((N + ATT_BQ - 1) / ATT_BQ, H);
    attention_forward_kernel<<<grid, ATT_THREADS, sm, cuda_stream()>>>(O, lse, Q, K, V, cu_seqlens, n_seqs, N, H, dqk,
                                                                       dv, scale);
    launchCheck();
}

void cuda_attention_backward_flash(float *dQ, float *dK, float *dV, const float *dO, const float *O, const float *lse,
                             const float *Q, const float *K, const float *V, const int32_t *cu_seqlens, int n_seqs,
                             int N, int H, int dqk, int dv, float scale) {
    if (N <= 0 || H <= 0) return;
    size_t s1 = dkdv_smem(dqk, dv), s2 = dq_smem(dqk, dv);
    set_smem((const void *)attention_backward_dkdv_kernel, s1);
    set_smem((const void *)attention_backward_dq_kernel, s2);
    dim3 gk((N + ATT_BK - 1) / ATT_BK, H), gq((N + ATT_BQ - 1) / ATT_BQ, H);
    attention_backward_dkdv_kernel<<<gk, ATT_THREADS, s1, cuda_stream()>>>(dK, dV, dO, O, lse, Q, K, V, cu_seqlens,
                                                                           n_seqs, N, H, dqk, dv, scale);
    launchCheck();
    attention_backward_dq_kernel<<<gq, ATT_THREADS, s2, cuda_stream()>>>(dQ, dO, O, lse, Q, K, V, cu_seqlens, n_seqs, N,
                                                                         H, dqk, dv, scale);
    launchCheck();
}
