// model/cuda/lmhead.cu — LM head fused with log-softmax, chunked over rows and vocabulary
// as the CPU path, but with larger chunks (LM_ROWS x LM_COLS logits, 128 MiB, in the
// context's scratch instead of the caller's OPS_LMHEAD_ROWS x OPS_LMHEAD_COLS one, which
// is left unused): bigger GEMMs keep the tensor cores busy. GEMM per chunk, then one
// block per row updates an online logsumexp. The backward recomputes each chunk's
// logits and forms dlogits = dlogp (onehot - p) in place before the two gradient GEMMs.
// Chunk sizes are constants, so the summation order depends only on the shapes.
#include "model/cuda/cuda_ops.cuh"

enum { LM_ROWS = 4096, LM_COLS = 8192 };

static float *lm_scratch(void) {
    return (float *)cuda_big_scratch(sizeof(float) * ((size_t)LM_ROWS * LM_COLS + 3 * (size_t)LM_ROWS));
}

__global__ void lmhead_init_kernel(float *mx, float *sm, float *tl, int nr) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < nr) {
        mx[i] = -INFINITY;
        sm[i] = 0;
        tl[i] = 0;
    }
}
__global__ void lmhead_chunk_kernel(const float *lg, int nc, int c0, const int32_t *targets, float *mx, float *sm,
                                    float *tl) {
    __shared__ float sh[32];
    int i = blockIdx.x;
    const float *l = lg + (size_t)i * nc;
    float m = -INFINITY;
    for (int j = threadIdx.x; j < nc; j += blockDim.x) m = fmaxf(m, l[j]);
    m = block_max(m, sh);
    float nm = fmaxf(m, mx[i]);
    float s = 0;
    for (int j = threadIdx.x; j < nc; j += blockDim.x) s += expf(l[j] - nm);
    s = block_sum(s, sh);
    if (threadIdx.x == 0) {
        sm[i] = sm[i] * expf(mx[i] - nm) + s;
        mx[i] = nm;
        int t = targets[i];
        if (t >= c0 && t < c0 + nc) tl[i] = l[t - c0];
    }
}
__global__ void lmhead_finish_kernel(float *logp, float *lse, const int32_t *targets, const float *mx,
                                     const float *sm, const float *tl, int nr) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= nr) return;
    float L = mx[i] + logf(sm[i]);
    lse[i] = L;
    logp[i] = targets[i] >= 0 ? tl[i] - L : 0.0f;
}

void cuda_lmhead_logprob_forward_g(GemmFn gemm, float *logp, float *lse, const float *y, const float *W,
                                   const int32_t *targets, int N, int V, int D, float *scratch) {
    (void)scratch;
    float *lg = lm_scratch();
    float *mx = lg + (size_t)LM_ROWS * LM_COLS, *sm = mx + LM_ROWS, *tl = sm + LM_ROWS;
    for (int r0 = 0; r0 < N; r0 += LM_ROWS) {
        int nr = N - r0 < LM_ROWS ? N - r0 : LM_ROWS;
        lmhead_init_kernel<<<(nr + 255) / 256, 256>>>(mx, sm, tl, nr);
        launchCheck();
        for (int c0 = 0; c0 < V; c0 += LM_COLS) {
            int nc = V - c0 < LM_COLS ? V - c0 : LM_COLS;
            gemm(0, 1, nr, nc, D, 1.0f, y + (size_t)r0 * D, D, W + (size_t)c0 * D, D, 0.0f, lg, nc);
            lmhead_chunk_kernel<<<nr, 256>>>(lg, nc, c0, targets + r0, mx, sm, tl);
            launchCheck();
        }
        lmhead_finish_kernel<<<(nr + 255) / 256, 256>>>(logp + r0, lse + r0, targets + r0, mx, sm, tl, nr);
        launchCheck();
    }
}

__global__ void lmhead_dlogits_kernel(float *lg, int nc, int c0, const int32_t *targets, const float *dlogp,
                                      const float *lse) {
    int i = blockIdx.x;
    float *l = lg + (size_t)i * nc;
    int t = targets[i];
    float g = t >= 0 ? dlogp[i] : 0.0f, L = lse[i];
    for (int j = threadIdx.x; j < nc; j += blockDim.x) {
        float v = -g * expf(l[j] - L);
        if (c0 + j == t) v += g;
        l[j] = v;
    }
}

void cuda_lmhead_logprob_backward_g(GemmFn gemm, float *dy, float beta_dy, float *dW, const float *dlogp,
                                    const float *lse, const float *y, const float *W, const int32_t *targets,
                                    int N, int V, int D, float *scratch) {
    (void)scratch;
    float *lg = lm_scratch();
    for (int r0 = 0; r0 < N; r0 += LM_ROWS) {
        int nr = N - r0 < LM_ROWS ? N - r0 : LM_ROWS;
        for (int c0 = 0; c0 < V; c0 += LM_COLS) {
            int nc = V - c0 < LM_COLS ? V - c0 : LM_COLS;
            gemm(0, 1, nr, nc, D, 1.0f, y + (size_t)r0 * D, D, W + (size_t)c0 * D, D, 0.0f, lg, nc);
            lmhead_dlogits_kernel<<<nr, 256>>>(lg, nc, c0, targets + r0, dlogp + r0, lse + r0);
            launchCheck();
            gemm(0, 0, nr, D, nc, 1.0f, lg, nc, W + (size_t)c0 * D, D, c0 == 0 ? beta_dy : 1.0f,
                 dy + (size_t)r0 * D, D);
            gemm(1, 0, nc, D, nr, 1.0f, lg, nc, y + (size_t)r0 * D, D, 1.0f, dW + (size_t)c0 * D, D);
        }
    }
}
