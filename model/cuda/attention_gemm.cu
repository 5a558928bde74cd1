// model/cuda/attention_gemm.cu — causal varlen attention (same contract as attention.cu)
// on cuBLAS: per sequence, query rows are taken in chunks of C; for each chunk and all
// heads at once (strided-batched GEMMs over heads), the scores of the chunk's rows
// against the keys they can see, S [H, C, keys], are formed in a context-owned scratch,
// softmax-ed in place by a kernel, and multiplied by V. Scores therefore exist only for
// C query rows at a time (O(H C T) memory, never the whole [T x T] of a long sequence);
// C is fixed by the shapes, so results are deterministic. The backward recomputes P
// from the saved logsumexp chunk by chunk: dP = dO V^T, dS = P (dP - D) scale,
// dQ = dS K, dK += dS^T Q, dV += P^T dO (GEMM accumulation in chunk order: no atomics).
// The GEMMs run with the table's compute type: fp32 (ops_cuda) or bf16 tensor cores
// with fp32 accumulation (ops_cuda_bf16); softmax and its gradient are fp32 always.
#include "model/cuda/cuda_ops.cuh"
#include "model/cuda/attention_delta.cuh"

#include <string.h>

enum { ATTG_MAX_SCRATCH_FLOATS = 1 << 25 };  // 128 MiB per score buffer

// Rows of one chunk: row r (query a + r) sees keys c <= a + r - s0 (c counts from s0).
__global__ void attg_softmax_kernel(float *S, float *lse, int nq, int nk, int a, int s0, int H) {
    __shared__ float sh[32];
    int r = blockIdx.x, h = blockIdx.y;
    float *row = S + ((size_t)h * nq + r) * nk;
    int lim = a + r - s0;  // last visible key index
    float m = -INFINITY;
    for (int c = threadIdx.x; c <= lim; c += blockDim.x) m = fmaxf(m, row[c]);
    m = block_max(m, sh);
    float s = 0;
    for (int c = threadIdx.x; c <= lim; c += blockDim.x) s += expf(row[c] - m);
    s = block_sum(s, sh);
    float L = m + logf(s);
    for (int c = threadIdx.x; c < nk; c += blockDim.x) row[c] = c <= lim ? expf(row[c] - L) : 0.0f;
    if (threadIdx.x == 0) lse[(size_t)(a + r) * H + h] = L;
}

// Backward: P from the saved lse (in place in S).
__global__ void attg_probs_kernel(float *S, const float *lse, int nq, int nk, int a, int s0, int H) {
    int r = blockIdx.x, h = blockIdx.y;
    float *row = S + ((size_t)h * nq + r) * nk;
    int lim = a + r - s0;
    float L = lse[(size_t)(a + r) * H + h];
    for (int c = threadIdx.x; c < nk; c += blockDim.x) row[c] = c <= lim ? expf(row[c] - L) : 0.0f;
}

// dP -> dS = P (dP - D[n,h]) scale, in place in dP.
__global__ void attg_dscores_kernel(float *dP, const float *P, const float *Dd, int nq, int nk, int a, int H,
                                    float scale) {
    int r = blockIdx.x, h = blockIdx.y;
    size_t off = ((size_t)h * nq + r) * nk;
    float d = Dd[(size_t)(a + r) * H + h];
    for (int c = threadIdx.x; c < nk; c += blockDim.x) dP[off + c] = P[off + c] * (dP[off + c] - d) * scale;
}

static int attg_chunk(int H, int maxlen) {
    // Largest power of two in [16, 1024] with H * C * maxlen within the score buffer.
    long long c = 1024;
    while (c > 16 && (long long)H * c * maxlen > ATTG_MAX_SCRATCH_FLOATS) c >>= 1;
    return (int)c;
}

static int32_t *host_cu(const int32_t *cu_dev, int n_seqs, int *maxlen) {
    int32_t *cu = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n_seqs + 1));
    if (!cu) cuda_fail("malloc", "out of memory", __FILE__, __LINE__);
    cudaCheck(cudaMemcpy(cu, cu_dev, sizeof(int32_t) * (size_t)(n_seqs + 1), cudaMemcpyDeviceToHost));
    *maxlen = 1;
    for (int s = 0; s < n_seqs; s++)
        if (cu[s + 1] - cu[s] > *maxlen) *maxlen = cu[s + 1] - cu[s];
    return cu;
}

void cuda_attention_forward_gemm(cublasComputeType_t ct, float *O, float *lse, const float *Q, const float *K,
                                 const float *V, const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv,
                                 float scale) {
    if (N <= 0 || H <= 0) return;
    int maxlen;
    int32_t *cu = host_cu(cu_seqlens, n_seqs, &maxlen);
    const int C = attg_chunk(H, maxlen);
    const int ldq = H * dqk, ldv = H * dv;
    float *S = (float *)cuda_big_scratch(sizeof(float) * (size_t)H * C * (size_t)maxlen);
    for (int s = 0; s < n_seqs; s++) {
        int s0 = cu[s], s1 = cu[s + 1];
        for (int a = s0; a < s1; a += C) {
            int nq = s1 - a < C ? s1 - a : C, nk = a + nq - s0;
            long long sS = (long long)nq * nk;
            cuda_gemm_batched(ct, 0, 1, nq, nk, dqk, scale, Q + (size_t)a * ldq, ldq, dqk, K + (size_t)s0 * ldq, ldq,
                              dqk, 0.0f, S, nk, sS, H);
            attg_softmax_kernel<<<dim3(nq, H), 128, 0, cuda_stream()>>>(S, lse, nq, nk, a, s0, H);
            launchCheck();
            cuda_gemm_batched(ct, 0, 0, nq, dv, nk, 1.0f, S, nk, sS, V + (size_t)s0 * ldv, ldv, dv, 0.0f,
                              O + (size_t)a * ldv, ldv, dv, H);
        }
    }
    free(cu);
}

void cuda_attention_backward_gemm(cublasComputeType_t ct, float *dQ, float *dK, float *dV, const float *dO,
                                  const float *O, const float *lse, const float *Q, const float *K, const float *V,
                                  const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale) {
    if (N <= 0 || H <= 0) return;
    int maxlen;
    int32_t *cu = host_cu(cu_seqlens, n_seqs, &maxlen);
    const int C = attg_chunk(H, maxlen);
    const int ldq = H * dqk, ldv = H * dv;
    size_t chunk = (size_t)H * C * (size_t)maxlen;
    float *P = (float *)cuda_big_scratch(sizeof(float) * (2 * chunk + (size_t)N * H));
    float *dP = P + chunk, *Dd = dP + chunk;
    attention_delta_kernel<<<(N * H + 7) / 8, 256, 0, cuda_stream()>>>(Dd, dO, O, (long long)N * H, dv);
    launchCheck();
    // dK, dV accumulate over chunks (beta 1): clear them first (rows of all sequences).
    cudaCheck(cudaMemsetAsync(dK, 0, sizeof(float) * (size_t)N * ldq, cuda_stream()));
    cudaCheck(cudaMemsetAsync(dV, 0, sizeof(float) * (size_t)N * ldv, cuda_stream()));
    for (int s = 0; s < n_seqs; s++) {
        int s0 = cu[s], s1 = cu[s + 1];
        for (int a = s0; a < s1; a += C) {
            int nq = s1 - a < C ? s1 - a : C, nk = a + nq - s0;
            long long sS = (long long)nq * nk;
            const float *q = Q + (size_t)a * ldq, *k = K + (size_t)s0 * ldq;
            const float *v = V + (size_t)s0 * ldv, *go = dO + (size_t)a * ldv;
            cuda_gemm_batched(ct, 0, 1, nq, nk, dqk, scale, q, ldq, dqk, k, ldq, dqk, 0.0f, P, nk, sS, H);
            attg_probs_kernel<<<dim3(nq, H), 128, 0, cuda_stream()>>>(P, lse, nq, nk, a, s0, H);
            launchCheck();
            cuda_gemm_batched(ct, 0, 1, nq, nk, dv, 1.0f, go, ldv, dv, v, ldv, dv, 0.0f, dP, nk, sS, H);
            // dV[keys] += P^T dO[chunk]
            cuda_gemm_batched(ct, 1, 0, nk, dv, nq, 1.0f, P, nk, sS, go, ldv, dv, 1.0f, dV + (size_t)s0 * ldv, ldv,
                              dv, H);
            attg_dscores_kernel<<<dim3(nq, H), 128, 0, cuda_stream()>>>(dP, P, Dd, nq, nk, a, H, scale);
            launchCheck();
            // dQ[chunk] = dS K[keys];  dK[keys] += dS^T Q[chunk]
            cuda_gemm_batched(ct, 0, 0, nq, dqk, nk, 1.0f, dP, nk, sS, k, ldq, dqk, 0.0f, dQ + (size_t)a * ldq, ldq,
                              dqk, H);
            cuda_gemm_batched(ct, 1, 0, nk, dqk, nq, 1.0f, dP, nk, sS, q, ldq, dqk, 1.0f, dK + (size_t)s0 * ldq, ldq,
                              dqk, H);
        }
    }
    free(cu);
}
