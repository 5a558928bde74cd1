// model/cuda/moe_indexed.cu — Ops.moe_experts_small on the GPU, expert-indexed: the slots
// (n, k) are grouped by expert on the device, and each selected expert's weights are read
// from memory once per call however many rows chose it (moe_small.cu reads them once per
// slot). No host synchronisation: the number of groups never leaves the device. Selected
// by CRUCIBLE_CUDA_MOE_SMALL=indexed (model/cuda/ops_cuda.h); model/cpu/moe_small.c is the
// specification.
//
// Five launches, S = N*K slots, all on the default stream:
//  (1) rank:    order[rank(s)] = s, rank(s) = #{t : idx[t] < idx[s]} + #{t < s : idx[t] ==
//               idx[s]}: a stable sort by expert in slot order, by counting (O(S^2) integer
//               compares over an idx tile in shared memory, one thread per slot; ~S compares
//               per thread, a few us at S = 4096). It needs no bound on the expert ids — the
//               op is not told E —, and no atomics: the result is a function of idx.
//  (2) groups:  one block: the positions p of `order` where the expert changes are the
//               groups' starts; gstart[g] = p (exclusive scan of the start flags),
//               gstart[G] = S, *ngroups = G.
//  (3) up:      blocks (tile of 16 rows i of I, group g, g += gridDim.y while g < G). The
//               block walks its group's slots in runs of IDX_RUN (64); per run, the input
//               rows (x) in tiles of IDX_LT (512) floats; per tile, chunks of IDX_SLOTS (8)
//               slots: their x tiles are staged in shared memory, each warp reads its
//               IDX_ROWS rows of Wg_e and Wu_e over the tile and, per float4 of them, updates
//               the chunk's accumulators (registers); warp_sum, then lane 0 adds the tile's
//               sums to the earlier tiles' (shared memory) and after the last tile writes
//               h[s, i] = silu(g) u. The chunks of a tile re-read the same 64 KiB of weights
//               back to back (L1/L2 hits), so an expert with r slots comes from DRAM
//               ceil(r / 64) times — once for every decode batch where no expert has more
//               than 64 rows (Lite, uniform routing: 6 slots per selected expert at batch 64,
//               64 at batch 682) —, against r times for moe_small.cu.
//  (4) down:    the same kernel on Wd_e: blocks (tile of rows d of D, group); z[s, d] =
//               <Wd_e[d], h[s]> into a [S, D] scratch.
//  (5) combine: y[n, d] = sum_k w[n*K+k] z[n*K+k, d], k = 0..K-1 in order.
// A dot product is one warp's: lane j takes float4 groups (or floats) j, j+32, ... of each
// tile in order and the lanes meet in warp_sum's fixed xor tree. Fixed order everywhere,
// no floating-point atomics: results repeat bit for bit (they differ from moe_small.cu's
// in rounding: the sums are split at the tile boundaries, each tile's warp-reduced).
// Scratch: the context's big buffer, (2S + 2) int32 + S*D floats (32 MiB at S = 4096,
// D = 2048); grown (a synchronising cudaFree + cudaMalloc) only when too small.
// Read per call, Lite's shape (D 2048, I 1408): 34.6 MB per distinct expert (per run of
// 64 of its slots, above) + the rows of x, h and z (S * (D + 2I + 2D) floats, mostly L2).
// Why these sizes (not measured on a GPU yet): 8 slots x 2 rows x 2 matrices = 32 fp32
// accumulators per lane (float4 paths: 64-80 registers, no spills on sm_90; the scalar
// gate/up fallback spills 12 bytes; 24 KiB of static shared memory: 3 blocks of 256
// threads per SM); per float4 of weights a lane
// reads 8 float4 of staged inputs from shared memory, well under shared memory's bandwidth
// per DRAM byte; 16 rows per block give 88 x 6 = 528 gate/up blocks at batch 1 (as many as
// moe_small.cu's up kernel).
// Launch cost: 5 launches per call against moe_small.cu's 2 (the rank and groups kernels
// are a few us each at decode sizes).
// With CRUCIBLE_CUDA_DECODE_BF16=1 the weights of a declared parameter range are read from
// its bf16 copy (param_shadow.cuh; weight_load.cuh: the same loops on the rounded values).
#include "model/cuda/cuda_ops.cuh"
#include "model/cuda/param_shadow.cuh"
#include "model/cuda/weight_load.cuh"

#include <stdint.h>

enum {
    IDX_THREADS = 256,
    IDX_WARPS = IDX_THREADS / 32,
    IDX_ROWS = 2,                          // weight rows per warp
    IDX_TILE = IDX_ROWS * IDX_WARPS,       // weight rows per block (16)
    IDX_SLOTS = 8,                         // slots per chunk (accumulators: 2 x 2 x 8 per lane)
    IDX_LT = 512,                          // input floats per staged tile: 8 x 2 KiB of shared memory
    IDX_RUN = 64,                          // slots per run (8 chunks): partial sums in shared memory
    IDX_GROUP_BLOCKS = 64,                 // grid.y: blocks over groups (a loop covers more groups)
    IDX_GROUPS_THREADS = 256,
    IDX_GRID_X_MAX = 0x7fffffff,
};

// order[rank(s)] = s (see (1) above); grid ceil(S / IDX_THREADS).
__global__ void __launch_bounds__(IDX_THREADS) moe_idx_rank_kernel(int32_t *order, const int32_t *idx, int S) {
    __shared__ int32_t tile[IDX_THREADS];
    int s = blockIdx.x * IDX_THREADS + threadIdx.x;
    int32_t e = s < S ? idx[s] : 0;
    int less = 0, before = 0;
    for (int t0 = 0; t0 < S; t0 += IDX_THREADS) {
        __syncthreads();  // the previous tile is read by all
        if (t0 + (int)threadIdx.x < S) tile[threadIdx.x] = idx[t0 + threadIdx.x];
        __syncthreads();
        int n = min(IDX_THREADS, S - t0);
        for (int j = 0; j < n; j++) {
            int32_t v = tile[j];
            less += v < e;
            before += (v == e) & (t0 + j < s);
        }
    }
    if (s < S) order[less + before] = s;
}

// gstart[0..G], *ngroups = G (see (2) above); one block of IDX_GROUPS_THREADS.
__global__ void __launch_bounds__(IDX_GROUPS_THREADS)
    moe_idx_groups_kernel(int32_t *gstart, int32_t *ngroups, const int32_t *order, const int32_t *idx, int S) {
    __shared__ int32_t scan[IDX_GROUPS_THREADS];
    int t = threadIdx.x, per = (S + IDX_GROUPS_THREADS - 1) / IDX_GROUPS_THREADS;
    int p0 = min(S, t * per), p1 = min(S, p0 + per), mine = 0;
    for (int p = p0; p < p1; p++) mine += p == 0 || idx[order[p]] != idx[order[p - 1]];
    scan[t] = mine;
    __syncthreads();
    for (int off = 1; off < IDX_GROUPS_THREADS; off <<= 1) {  // inclusive Hillis-Steele scan
        int v = t >= off ? scan[t - off] : 0;
        __syncthreads();
        scan[t] += v;
        __syncthreads();
    }
    int g = scan[t] - mine;
    for (int p = p0; p < p1; p++)
        if (p == 0 || idx[order[p]] != idx[order[p - 1]]) gstart[g++] = p;
    if (t == IDX_GROUPS_THREADS - 1) gstart[scan[t]] = S, *ngroups = scan[t];
}

// For every group g and slot s of it (expert e = idx[s]), rows r of this block's tile:
//   UP:  out[s, r] = silu(<A_e[r], in_s>) <B_e[r], in_s>,  in_s = in[s / K]   (A, B: [E, R, L])
//   !UP: out[s, r] = <A_e[r], in_s>,                       in_s = in[s]
// Grid (ceil(R / IDX_TILE), min(S, IDX_GROUP_BLOCKS)). VEC: wload4_ok(A, L) and (B, L)
// (the staged inputs are always 16-byte aligned).
// Loop order: group g > run of up to IDX_RUN slots > input tile l0 > chunk of IDX_SLOTS
// slots > the warp's rows. A chunk's dot products over one tile end in warp_sum; lane 0
// adds them to the previous tiles' sums (part[], one entry per slot, matrix and row: each
// owned by one warp's lane 0, so no barrier guards it) and, at the last tile, writes out.
// The chunks of a run re-read the same tile of weight rows back to back (64 KiB per block
// at IDX_LT 512: from L1/L2), so DRAM sees each expert once per run.
template <bool VEC, bool UP, typename W>
__global__ void __launch_bounds__(IDX_THREADS)
    moe_idx_rows_kernel(float *out, const float *in, const int32_t *idx, const int32_t *order,
                        const int32_t *gstart, const int32_t *ngroups, const W *A, const W *B, int L, int R, int K) {
    __shared__ float4 xs4[IDX_SLOTS][IDX_LT / 4];  // float4: 16-byte aligned rows
    __shared__ float part[IDX_RUN][2][IDX_TILE];
    __shared__ int32_t slot[IDX_RUN];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, r0 = blockIdx.x * IDX_TILE;
    const int G = *ngroups;
    float *xs = (float *)xs4;
    for (int g = blockIdx.y; g < G; g += gridDim.y) {  // uniform over the block
        const int p0 = gstart[g], p1 = gstart[g + 1];
        const size_t e = (size_t)idx[order[p0]];
        for (int q0 = p0; q0 < p1; q0 += IDX_RUN) {
            const int nq = min(IDX_RUN, p1 - q0);
            __syncthreads();  // the previous run's slot[] is read by all
            if ((int)threadIdx.x < nq) slot[threadIdx.x] = order[q0 + threadIdx.x];
            for (int l0 = 0; l0 < L; l0 += IDX_LT) {
                const int nl = min(IDX_LT, L - l0), last = l0 + IDX_LT >= L;
                for (int c0 = 0; c0 < nq; c0 += IDX_SLOTS) {
                    const int nc = min(IDX_SLOTS, nq - c0);
                    __syncthreads();  // slot[] written; the previous chunk's tile read by all
                    for (int q = threadIdx.x; q < nc * IDX_LT; q += IDX_THREADS) {
                        int c = q / IDX_LT, j = q - c * IDX_LT;
                        if (j < nl) {
                            size_t row = UP ? (size_t)(slot[c0 + c] / K) : (size_t)slot[c0 + c];
                            xs[c * IDX_LT + j] = in[row * L + l0 + j];
                        }
                    }
                    __syncthreads();
                    float a[IDX_ROWS][IDX_SLOTS], b[IDX_ROWS][IDX_SLOTS];
#pragma unroll
                    for (int r = 0; r < IDX_ROWS; r++)
#pragma unroll
                        for (int c = 0; c < IDX_SLOTS; c++) a[r][c] = 0.0f, b[r][c] = 0.0f;
#pragma unroll
                    for (int r = 0; r < IDX_ROWS; r++) {
                        const int row = r0 + warp + r * IDX_WARPS;
                        if (row >= R) continue;  // uniform over the warp
                        const size_t off = (e * R + row) * (size_t)L + l0;
                        if (VEC) {
                            const W *a4 = A + off, *b4 = UP ? B + off : A + off;
                            for (int j = lane; j < (nl >> 2); j += 32) {
                                float4 p = wload4(a4, j), q = UP ? wload4(b4, j) : p;
#pragma unroll
                                for (int c = 0; c < IDX_SLOTS; c++) {
                                    if (c >= nc) break;
                                    float4 v = xs4[c][j];
                                    a[r][c] = fmaf(p.x, v.x, a[r][c]);
                                    a[r][c] = fmaf(p.y, v.y, a[r][c]);
                                    a[r][c] = fmaf(p.z, v.z, a[r][c]);
                                    a[r][c] = fmaf(p.w, v.w, a[r][c]);
                                    if (UP) {
                                        b[r][c] = fmaf(q.x, v.x, b[r][c]);
                                        b[r][c] = fmaf(q.y, v.y, b[r][c]);
                                        b[r][c] = fmaf(q.z, v.z, b[r][c]);
                                        b[r][c] = fmaf(q.w, v.w, b[r][c]);
                                    }
                                }
                            }
                        } else {
                            const W *ar = A + off, *br = UP ? B + off : A + off;
                            for (int j = lane; j < nl; j += 32) {
                                float p = wload1(ar, j), q = UP ? wload1(br, j) : p;
#pragma unroll
                                for (int c = 0; c < IDX_SLOTS; c++) {
                                    if (c >= nc) break;
                                    float v = xs[c * IDX_LT + j];
                                    a[r][c] = fmaf(p, v, a[r][c]);
                                    if (UP) b[r][c] = fmaf(q, v, b[r][c]);
                                }
                            }
                        }
                    }
#pragma unroll
                    for (int r = 0; r < IDX_ROWS; r++) {
                        const int row = r0 + warp + r * IDX_WARPS, rr = warp + r * IDX_WARPS;
                        if (row >= R) continue;
#pragma unroll
                        for (int c = 0; c < IDX_SLOTS; c++) {
                            if (c >= nc) break;  // uniform over the warp: every lane shuffles
                            float va = warp_sum(a[r][c]), vb = UP ? warp_sum(b[r][c]) : 0.0f;
                            if (lane == 0) {
                                float *pa = &part[c0 + c][0][rr], *pb = &part[c0 + c][1][rr];
                                if (l0 > 0) va = *pa + va, vb = *pb + vb;
                                if (!last)
                                    *pa = va, *pb = vb;
                                else  // as cpu_swiglu_forward
                                    out[(size_t)slot[c0 + c] * R + row] = UP ? va / (1.0f + expf(-va)) * vb : va;
                            }
                        }
                    }
                }
            }
        }
    }
}

// y[n, d] = sum_k w[n*K+k] z[n*K+k, d], k in order (a grid-stride loop over N*D).
__global__ void moe_idx_combine_kernel(float *y, const float *z, const float *w, int N, int D, int K) {
    size_t total = (size_t)N * D;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < total; i += (size_t)gridDim.x * blockDim.x) {
        size_t n = i / D, d = i - n * D;
        float acc = 0.0f;
        for (int k = 0; k < K; k++) {
            size_t s = n * K + k;
            acc += w[s] * z[s * D + d];
        }
        y[i] = acc;
    }
}

template <bool UP, typename W>
static void launch_rows(dim3 grid, float *out, const float *in, const int32_t *idx, const int32_t *order,
                        const int32_t *gstart, const int32_t *ngroups, const W *A, const W *B, int L, int R, int K) {
    // staged inputs are 16-byte aligned copies: only the weights' alignment matters
    if (wload4_ok(A, L) && (!UP || wload4_ok(B, L)))
        moe_idx_rows_kernel<true, UP, W>
            <<<grid, IDX_THREADS, 0, cuda_stream()>>>(out, in, idx, order, gstart, ngroups, A, B, L, R, K);
    else
        moe_idx_rows_kernel<false, UP, W>
            <<<grid, IDX_THREADS, 0, cuda_stream()>>>(out, in, idx, order, gstart, ngroups, A, B, L, R, K);
    launchCheck();
}

void cuda_moe_experts_indexed(float *y, float *h, const float *x, const int32_t *idx, const float *w,
                              const float *Wg, const float *Wu, const float *Wd, int N, int D, int I, int K) {
    if (N <= 0 || D <= 0) return;
    if (K <= 0 || I <= 0) {  // an empty sum
        cudaCheck(cudaMemsetAsync(y, 0, sizeof(float) * (size_t)N * D, cuda_stream()));
        return;
    }
    long long S = (long long)N * K;
    long long up_tiles = ((long long)I + IDX_TILE - 1) / IDX_TILE, down_tiles = ((long long)D + IDX_TILE - 1) / IDX_TILE;
    if (S > INT32_MAX / 2 || up_tiles > IDX_GRID_X_MAX || down_tiles > IDX_GRID_X_MAX)
        cuda_fail("moe_experts_small (indexed)", "too many slots, or I or D too large for the grid", __FILE__,
                  __LINE__);
    // scratch: order [S], gstart [S + 1], ngroups [1], then z [S, D] at a 256-byte boundary
    size_t ints = (size_t)(2 * S + 2), zoff = (ints * sizeof(int32_t) + 255) & ~(size_t)255;
    char *base = (char *)cuda_big_scratch(zoff + sizeof(float) * (size_t)S * D);
    int32_t *order = (int32_t *)base, *gstart = order + S, *ngroups = gstart + S + 1;
    float *z = (float *)(base + zoff);

    moe_idx_rank_kernel<<<(unsigned)((S + IDX_THREADS - 1) / IDX_THREADS), IDX_THREADS, 0, cuda_stream()>>>(order, idx,
                                                                                                            (int)S);
    launchCheck();
    moe_idx_groups_kernel<<<1, IDX_GROUPS_THREADS, 0, cuda_stream()>>>(gstart, ngroups, order, idx, (int)S);
    launchCheck();
    unsigned gy = (unsigned)(S < (long long)IDX_GROUP_BLOCKS ? S : (long long)IDX_GROUP_BLOCKS);
    dim3 gu((unsigned)up_tiles, gy), gd((unsigned)down_tiles, gy);
    const WeightBits *g16, *u16, *d16;  // bf16 copies (CRUCIBLE_CUDA_DECODE_BF16)
    if (cuda_decode_shadow_experts(Wg, Wu, Wd, I, D, &g16, &u16, &d16)) {
        launch_rows<true>(gu, h, x, idx, order, gstart, ngroups, g16, u16, D, I, K);
        launch_rows<false>(gd, z, h, idx, order, gstart, ngroups, d16, (const WeightBits *)NULL, I, D, K);
    } else {
        launch_rows<true>(gu, h, x, idx, order, gstart, ngroups, Wg, Wu, D, I, K);
        launch_rows<false>(gd, z, h, idx, order, gstart, ngroups, Wd, (const float *)NULL, I, D, K);
    }
    moe_idx_combine_kernel<<<grid_for((size_t)N * D), CUDA_THREADS, 0, cuda_stream()>>>(y, z, w, N, D, K);
    launchCheck();
}
