// model/cuda/moe_dispatch.cu — grouping tokens by expert: a stable counting sort of the
// (token, k) slots in fixed chunks (histogram, scan, in-order assignment: no atomics)
// and the weighted combine that sums a token's K slots in fixed k order (spec §6.2,
// §7.8). The experts' GEMMs on the sorted rows are in moe_grouped.cu.
#include "model/cuda/cuda_ops.cuh"

enum { PERMUTE_CHUNK = 256 };

#define GRID_STRIDE(i, n) \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n); i += (size_t)gridDim.x * blockDim.x)

// cnt[c, e] = slots of chunk c routed to expert e (thread e scans the chunk).
__global__ void permute_hist_kernel(int32_t *cnt, const int32_t *idx, int S, int E) {
    int c = blockIdx.x, s0 = c * PERMUTE_CHUNK, s1 = min(S, s0 + PERMUTE_CHUNK);
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        int k = 0;
        for (int s = s0; s < s1; s++) k += idx[s] == e;
        cnt[(size_t)c * E + e] = k;
    }
}
// offsets[e] = rows before expert e; base[c, e] = first row of chunk c's slots of e.
__global__ void permute_scan_kernel(int32_t *offsets, int32_t *base, const int32_t *cnt, int C, int E) {
    __shared__ int tot[1024];
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        int t = 0;
        for (int c = 0; c < C; c++) t += cnt[(size_t)c * E + e];
        tot[e] = t;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        int run = 0;
        for (int e = 0; e < E; e++) {
            offsets[e] = run;
            run += tot[e];
        }
        offsets[E] = run;
    }
    __syncthreads();
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        int run = offsets[e];
        for (int c = 0; c < C; c++) {
            base[(size_t)c * E + e] = run;
            run += cnt[(size_t)c * E + e];
        }
    }
}
__global__ void permute_assign_kernel(int32_t *row_of_slot, int32_t *slot_of_row, const int32_t *base,
                                      const int32_t *idx, int S, int E) {
    int c = blockIdx.x, s0 = c * PERMUTE_CHUNK, s1 = min(S, s0 + PERMUTE_CHUNK);
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        int row = base[(size_t)c * E + e];
        for (int s = s0; s < s1; s++)
            if (idx[s] == e) {
                row_of_slot[s] = row;
                slot_of_row[row] = s;
                row++;
            }
    }
}
__global__ void permute_gather_kernel(float *Xp, const float *x, const int32_t *slot_of_row, int S, int D, int K) {
    GRID_STRIDE(i, (size_t)S * D) {
        size_t r = i / D, c = i % D;
        Xp[i] = x[(size_t)(slot_of_row[r] / K) * D + c];
    }
}

void cuda_moe_permute(float *Xp, int32_t *row_of_slot, int32_t *slot_of_row, int32_t *offsets, const float *x,
                      const int32_t *idx, int N, int D, int E, int K) {
    int S = N * K, C = (S + PERMUTE_CHUNK - 1) / PERMUTE_CHUNK;
    if (E > 1024 || (size_t)2 * C * E * sizeof(int32_t) > CUDA_SCRATCH_BYTES)
        cuda_fail("moe_permute", "too many experts or slots for the scratch buffer", __FILE__, __LINE__);
    int32_t *cnt = (int32_t *)cuda_ctx()->scratch, *base = cnt + (size_t)C * E;
    int threads = E < 32 ? 32 : (E > 1024 ? 1024 : (E + 31) / 32 * 32);
    if (C > 0) {
        permute_hist_kernel<<<C, threads, 0, cuda_stream()>>>(cnt, idx, S, E);
        launchCheck();
    }
    permute_scan_kernel<<<1, threads, 0, cuda_stream()>>>(offsets, base, cnt, C, E);
    launchCheck();
    if (C > 0) {
        permute_assign_kernel<<<C, threads, 0, cuda_stream()>>>(row_of_slot, slot_of_row, base, idx, S, E);
        launchCheck();
        permute_gather_kernel<<<grid_for((size_t)S * D), CUDA_THREADS, 0, cuda_stream()>>>(Xp, x, slot_of_row, S, D, K);
        launchCheck();
    }
}

__global__ void permute_backward_kernel(float *dx, const float *dXp, const int32_t *row_of_slot, int N, int D,
                                        int K) {
    GRID_STRIDE(i, (size_t)N * D) {
        size_t n = i / D, c = i % D;
        float s = dx[i];
        for (int k = 0; k < K; k++) s += dXp[(size_t)row_of_slot[n * K + k] * D + c];
        dx[i] = s;
    }
}
void cuda_moe_permute_backward(float *dx, const float *dXp, const int32_t *row_of_slot, int N, int D, int K) {
    if (N <= 0 || D <= 0) return;
    permute_backward_kernel<<<grid_for((size_t)N * D), CUDA_THREADS, 0, cuda_stream()>>>(dx, dXp, row_of_slot, N, D, K);
    launchCheck();
}

__global__ void unpermute_kernel(float *y, const float *Yp, const float *w, const int32_t *row_of_slot, int N, int D,
                                 int K) {
    GRID_STRIDE(i, (size_t)N * D) {
        size_t n = i / D, c = i % D;
        float s = 0;
        for (int k = 0; k < K; k++) s += w[n * K + k] * Yp[(size_t)row_of_slot[n * K + k] * D + c];
        y[i] = s;
    }
}
void cuda_moe_unpermute(float *y, const float *Yp, const float *w, const int32_t *row_of_slot, int N, int D, int K) {
    if (N <= 0 || D <= 0) return;
    unpermute_kernel<<<grid_for((size_t)N * D), CUDA_THREADS, 0, cuda_stream()>>>(y, Yp, w, row_of_slot, N, D, K);
    launchCheck();
}

__global__ void unpermute_backward_dyp_kernel(float *dYp, const float *dy, const float *w, const int32_t *slot_of_row,
                                              int S, int D, int K) {
    GRID_STRIDE(i, (size_t)S * D) {
        size_t r = i / D, c = i % D;
        int s = slot_of_row[r];
        dYp[i] = w[s] * dy[(size_t)(s / K) * D + c];
    }
}
// One warp per slot: dw[s] = <dy[s/K], Yp[row_of_slot[s]]> with a fixed shuffle tree.
__global__ void unpermute_backward_dw_kernel(float *dw, const float *dy, const float *Yp, const int32_t *row_of_slot,
                                             int S, int D, int K) {
    int s = blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32, lane = threadIdx.x & 31;
    if (s >= S) return;
    const float *g = dy + (size_t)(s / K) * D, *yp = Yp + (size_t)row_of_slot[s] * D;
    float acc = 0;
    for (int i = lane; i < D; i += 32) acc += g[i] * yp[i];
    acc = warp_sum(acc);
    if (lane == 0) dw[s] = acc;
}
void cuda_moe_unpermute_backward(float *dYp, float *dw, const float *dy, const float *Yp, const float *w,
                                 const int32_t *row_of_slot, const int32_t *slot_of_row, int N, int D, int K) {
    int S = N * K;
    if (S <= 0) return;
    unpermute_backward_dyp_kernel<<<grid_for((size_t)S * D), CUDA_THREADS, 0, cuda_stream()>>>(dYp, dy, w, slot_of_row,
                                                                                               S, D, K);
    launchCheck();
    unpermute_backward_dw_kernel<<<(S + 7) / 8, 256, 0, cuda_stream()>>>(dw, dy, Yp, row_of_slot, S, D, K);
    launchCheck();
}
