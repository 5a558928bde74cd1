// model/cuda/attention_wmma.cu — causal varlen attention (contract: model/ops.h; the CPU
// op model/cpu/attention.c is the specification) as tensor-core flash kernels: scores
// exist only as one 64 x 64 tile per warp group in shared memory, never in global memory.
//
// Numerics. Q, K, V, dO are fp32 in global memory (the Ops contract); each call first
// rounds them once to bf16 copies in the context scratch (2 bytes x N x H x (2 dqk + dv)
// forward, + dv backward), from which tiles are staged into shared memory with 16-byte
// loads (half the bytes of fp32 tiles, no per-tile conversion), and every product runs
// on nvcuda::wmma bf16 16x16x16 fragments with fp32 accumulation. Scores, the softmax
// (running max m, running sum l, rescale factor), P in fp32, dP, D = rowsum(dO * O), lse
// and the O / dQ / dK / dV accumulators are fp32; P and dS are rounded to bf16 only as
// operands of the next product. lse is the natural-log logsumexp of scale * q.k, as the
// CPU op saves it. The result is deterministic: every output element has one owner
// (no atomics) and every sum has a fixed order for given shapes.
//
// Work lists. cu_seqlens is read on the host (as the gemm path does) and cut into tiles
// of 64 tokens aligned to each sequence start; a tile is {start, count, s0, s1}. Key tile
// t of a sequence thus lines up with query tile t: tiles before the diagonal are full
// and unmasked, the diagonal tile is masked by key <= query, and a last partial tile has
// rows >= count zero-filled on load, never written back, and masked (keys -> -inf in the
// forward, P = 0 in the backward). Tiles are ordered heaviest first (forward and dQ:
// most key tiles; dK/dV: most query tiles) so the long ones do not start last.
//
// Kernels (block = one tile x one head; grid = (tiles, H)):
//  forward   4 warps, 64 query rows (16 per warp), loops over the key tiles 0..diagonal:
//            S = Q K^T -> shared, online softmax on the warp's own rows (no block sync;
//            two lanes per row, one shuffle per reduction),
//            O (registers) = O * alpha + P V.  O is written as O / l, lse = m + log l.
//  dK/dV     8 warps over one 64-key tile, loops over the query tiles diagonal..end:
//            warps 0-3 (16 keys each) form S^T = K Q^T, P^T = exp(scale S^T - lse) and
//            dV += P^T dO; warps 4-7 (the same 16 keys) form dP^T = V dO^T,
//            dS^T = P^T (dP^T - D) and dK += dS^T Q. The two halves do equal work
//            (16 x 64 x (dqk + dv) MACs each) and each holds only its own accumulator.
//  dQ        8 warps over 64 query rows, loops over key tiles 0..diagonal: warps 0-3
//            form S = Q K^T, warps 4-7 dP = dO V^T (16 rows each), both halves dS, and
//            each half accumulates half of dQ's columns: dQ += dS K.
//            dQ and dK are scaled by `scale` on the way out.
//  D         one warp per (token, head): D = <dO, O> (fp32, from the fp32 dO and O),
//            into context scratch.
//
// Tile sizes and shared memory (MLA: dqk 192, dv 128). bf16 tiles have rows padded by
// 8 elements and fp32 tiles by 4 (fewer bank conflicts; wmma needs ld % 8 / % 4 == 0).
//  forward: Q, K [64 x 200] bf16 25,600 B each; V [64 x 136] bf16 17,408; S [64 x 68]
//           fp32 17,408; P [64 x 72] bf16 9,216; m, l, alpha, a 16x16 row-id matrix
//           1,792  ->  97,024 B (94.8 KiB): two blocks (8 warps) per H100 SM.
//  dK/dV:   K, Q 25,600 each; V, dO 17,408 each; P, dP fp32 17,408 each; P, dS bf16
//           9,216 each; lse, D 512  ->  139,776 B (136.5 KiB): one block of 8 warps/SM.
//  dQ:      Q, K 25,600 each; dO, V 17,408 each; S, dP 17,408 each; dS 9,216; lse, D
//           512  ->  130,560 B (127.5 KiB): one block of 8 warps per SM.
// 64-row tiles: 16 rows per warp is wmma's fragment height, 4 warps keep a block's
// shared memory under half an SM for the forward (two blocks per SM hide each other's
// tile loads; the next tile is also prefetched into registers); 64 keys per tile is one
// row split over two lanes of 32 columns in the forward softmax, one column per lane
// pair (lane, lane + 32) in the backward's elementwise steps. Register accumulators are sized for dqk <= 192 and
// dv <= 128 (12 and 8 fragments: up to 96 fp32 registers per thread; with the
// prefetch registers ptxas reports 240 / 230 / 172 registers per thread for the forward,
// dK/dV and dQ kernels at sm_90a, no spills: 2 x 128, 256 and 256 threads fit the SM's
// 64 K registers at the occupancy the shared memory allows); shapes outside
// that, or not multiples of 16, or needing more shared memory than the device allows,
// go to the chunked-GEMM path (attention_gemm.cu, bf16 compute) instead.
//
// Accumulator rows. Rescaling O by a per-row factor needs each accumulator element's
// row; wmma leaves the element mapping unspecified but fixed per fragment type (load,
// mma and store all use it), so the forward loads once a 16 x 16 matrix whose entries
// are their row numbers into an accumulator fragment of the same type: element i of
// every accumulator fragment of this thread then lies in row rowid.x[i].
//
// Verification: tests/cuda/test_attention_wmma_cuda.c on a GPU (NOT yet run: written
// in a session without one); tests/cuda/sim_attention_wmma.cc runs these kernels as
// written on the CPU (a thread per CUDA thread, a wmma with a scrambled fragment
// layout, ASan/UBSan, ThreadSanitizer) against a naive attention.
//
// Selection: cuda_attention_forward_table / _backward_table are what the fp32 and bf16
// tables call. The bf16 table reads CRUCIBLE_CUDA_ATTENTION on every call: gemm
// (default, the path verified on the H100), wmma (these kernels) or flash (the fused
// fp32 kernels of attention.cu); any other value is an error. ops_cuda_bf16_wmma() is
// the bf16 table with these kernels always.
#include "model/cuda/cuda_ops.cuh"
#include "model/cuda/attention_delta.cuh"

#include <cuda_bf16.h>
#include <mma.h>
#include <string.h>

using namespace nvcuda;
typedef __nv_bfloat16 bf16;

enum {
    AW_T = 64,           // tokens per tile (query and key tiles alike)
    AW_MAX_DQK = 192,    // register accumulators: 12 fragments of 16 columns
    AW_MAX_DV = 128,     // 8 fragments
    AW_PADH = 8,         // bf16 row padding (elements)
    AW_PADF = 4,         // fp32 row padding (elements)
    AW_FWD_THREADS = 128,
    AW_DQ_THREADS = 256,
    AW_DKV_THREADS = 256,
};
#define AW_NQK (AW_MAX_DQK / 16)
#define AW_NV (AW_MAX_DV / 16)
#define AW_DQ_FRAGS ((AW_NQK + 1) / 2)  // dQ column fragments per warp (half of dqk)
#define AW_LDF (AW_T + AW_PADF)  // fp32 score tile row stride
#define AW_LDH (AW_T + AW_PADH)  // bf16 probability tile row stride

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragB;
// B = X^T read from row-major X: element (k, n) at X[n * ld + k] is column-major B.
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBt;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

// ---- shared-memory layouts (the same arithmetic on host and device) ------------------

__host__ __device__ static inline unsigned aw_region(unsigned *off, unsigned bytes) {
    unsigned at = *off;
    *off += (bytes + 127u) & ~127u;  // every region 128-byte aligned (wmma needs 32)
    return at;
}

typedef struct AwFwdLayout {
    unsigned q, k, v, s, p, m, l, a, rowid, bytes;
} AwFwdLayout;
__host__ __device__ static inline AwFwdLayout aw_fwd_layout(int dqk, int dv) {
    AwFwdLayout L;
    unsigned o = 0, hq = 2u * AW_T * (dqk + AW_PADH), hv = 2u * AW_T * (dv + AW_PADH);
    L.q = aw_region(&o, hq);
    L.k = aw_region(&o, hq);
    L.v = aw_region(&o, hv);
    L.s = aw_region(&o, 4u * AW_T * AW_LDF);
    L.p = aw_region(&o, 2u * AW_T * AW_LDH);
    L.m = aw_region(&o, 4u * AW_T);
    L.l = aw_region(&o, 4u * AW_T);
    L.a = aw_region(&o, 4u * AW_T);
    L.rowid = aw_region(&o, 4u * 256);
    L.bytes = o;
    return L;
}

// Backward (both kernels): Q, K (bf16, dqk), dO, V (bf16, dv), two fp32 score tiles
// (S or P, and dP), two bf16 tiles (P and dS; the dQ kernel uses only the dS one), lse, D.
typedef struct AwBwdLayout {
    unsigned q, k, o, v, f0, f1, h0, h1, lse, d, bytes;
} AwBwdLayout;
__host__ __device__ static inline AwBwdLayout aw_bwd_layout(int dqk, int dv, int two_bf16) {
    AwBwdLayout L;
    unsigned o = 0, hq = 2u * AW_T * (dqk + AW_PADH), hv = 2u * AW_T * (dv + AW_PADH);
    L.q = aw_region(&o, hq);
    L.k = aw_region(&o, hq);
    L.o = aw_region(&o, hv);
    L.v = aw_region(&o, hv);
    L.f0 = aw_region(&o, 4u * AW_T * AW_LDF);
    L.f1 = aw_region(&o, 4u * AW_T * AW_LDF);
    L.h0 = aw_region(&o, 2u * AW_T * AW_LDH);
    L.h1 = two_bf16 ? aw_region(&o, 2u * AW_T * AW_LDH) : L.h0;
    L.lse = aw_region(&o, 4u * AW_T);
    L.d = aw_region(&o, 4u * AW_T);
    L.bytes = o;
    return L;
}

// ---- device helpers ------------------------------------------------------------------

// Rows [0, n) of a tile of AW_T rows x d columns from the bf16 copy src (row stride ld
// elements) into shared dst (row stride lds); rows n.. are zero. 16-byte vectors: d, ld
// and lds are multiples of 8 and the copies 16-byte aligned. All threads of the block.
__device__ static void aw_load_tile(bf16 *dst, int lds, const bf16 *src, size_t ld, int n, int d) {
    const int d8 = d / 8;
    for (int i = threadIdx.x; i < AW_T * d8; i += blockDim.x) {
        int r = i / d8, c = (i - r * d8) * 8;
        uint4 x = make_uint4(0u, 0u, 0u, 0u);
        if (r < n) x = *(const uint4 *)(src + (size_t)r * ld + c);
        *(uint4 *)(dst + r * lds + c) = x;
    }
}

// dst[i] = bf16(src[i]): the operand copies the kernels read (rounded once, not per tile).
__global__ void aw_to_bf16_kernel(bf16 *dst, const float *src, long long n) {
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (long long)gridDim.x * blockDim.x)
        dst[i] = __float2bfloat16(src[i]);
}

// Prefetch of the next pair of tiles into registers, so that its global loads are in
// flight while the current tile is multiplied: tile A (AW_T x da) then tile B (AW_T x db),
// rows >= n zero, as 16-byte vectors; THREADS threads split them (vector idx of thread
// threadIdx.x is threadIdx.x + i * THREADS). aw_put_pair stores the same vectors into
// shared memory. NPF * THREADS covers AW_T * (AW_MAX_DQK + AW_MAX_DV) / 8 vectors.
#define AW_NPF(threads) ((AW_T * (AW_MAX_DQK + AW_MAX_DV) / 8 + (threads)-1) / (threads))
template <int THREADS, int NPF>
__device__ static inline void aw_fetch_pair(uint4 (&pf)[NPF], const bf16 *a, size_t lda, int da, const bf16 *b,
                                            size_t ldb, int db, int n) {
    const int a8 = da / 8, b8 = db / 8, na = AW_T * a8, nt = na + AW_T * b8;
#pragma unroll
    for (int i = 0; i < NPF; i++) {
        const int idx = threadIdx.x + i * THREADS;
        uint4 x = make_uint4(0u, 0u, 0u, 0u);
        if (idx < na) {
            int r = idx / a8, c = (idx - r * a8) * 8;
            if (r < n) x = *(const uint4 *)(a + (size_t)r * lda + c);
        } else if (idx < nt) {
            int j = idx - na, r = j / b8, c = (j - r * b8) * 8;
            if (r < n) x = *(const uint4 *)(b + (size_t)r * ldb + c);
        }
        pf[i] = x;
    }
}
template <int THREADS, int NPF>
__device__ static inline void aw_put_pair(const uint4 (&pf)[NPF], bf16 *as, int ldas, int da, bf16 *bs, int ldbs,
                                          int db) {
    const int a8 = da / 8, b8 = db / 8, na = AW_T * a8, nt = na + AW_T * b8;
#pragma unroll
    for (int i = 0; i < NPF; i++) {
        const int idx = threadIdx.x + i * THREADS;
        if (idx < na) {
            int r = idx / a8, c = (idx - r * a8) * 8;
            *(uint4 *)(as + r * ldas + c) = pf[i];
        } else if (idx < nt) {
            int j = idx - na, r = j / b8, c = (j - r * b8) * 8;
            *(uint4 *)(bs + r * ldbs + c) = pf[i];
        }
    }
}

// The value lane ^ o holds (all 32 lanes take part).
__device__ static inline float aw_shfl_xor(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }

// out[16 x 16] = A[16 x kdim] * B^T where A rows are at a (stride lda) and B rows (the
// 16 columns of the product) at b (stride ldb); both bf16 row-major in shared memory.
__device__ static inline void aw_mma_abt(FragC &acc, const bf16 *a, int lda, const bf16 *b, int ldb, int kdim) {
    wmma::fill_fragment(acc, 0.0f);
    for (int kk = 0; kk < kdim; kk += 16) {
        FragA fa;
        FragBt fb;
        wmma::load_matrix_sync(fa, a + kk, lda);
        wmma::load_matrix_sync(fb, b + kk, ldb);
        wmma::mma_sync(acc, fa, fb, acc);
    }
}

// Writes the warp's 16-row accumulator strip acc[0..nfrag) (columns j*16..) to global
// rows [0, nrows) at dst (row stride ld) times mul, through the warp's 16 x 16 fp32
// staging tile stage (stride AW_LDF). One warp.
template <int NF>
__device__ static inline void aw_store_strip(float *dst, size_t ld, int nrows, float mul, const FragC (&acc)[NF],
                                             int nfrag, float *stage) {
    const int lane = threadIdx.x & 31;
#pragma unroll
    for (int j = 0; j < NF; j++) {
        if (j >= nfrag) break;
        wmma::store_matrix_sync(stage, acc[j], AW_LDF, wmma::mem_row_major);
        __syncwarp();
        for (int i = lane; i < 256; i += 32) {
            int r = i >> 4, c = i & 15;
            if (r < nrows) dst[(size_t)r * ld + j * 16 + c] = stage[r * AW_LDF + c] * mul;
        }
        __syncwarp();
    }
}

// ---- forward -------------------------------------------------------------------------

__global__ void __launch_bounds__(AW_FWD_THREADS) aw_forward_kernel(float *O, float *lse, const bf16 *Q,
                                                                    const bf16 *K, const bf16 *V,
                                                                    const int4 *tiles, int H, int dqk, int dv,
                                                                    float scale) {
    extern __shared__ __align__(128) unsigned char smem[];
    const AwFwdLayout L = aw_fwd_layout(dqk, dv);
    bf16 *Qs = (bf16 *)(smem + L.q), *Ks = (bf16 *)(smem + L.k), *Vs = (bf16 *)(smem + L.v);
    float *S = (float *)(smem + L.s);
    bf16 *Ps = (bf16 *)(smem + L.p);
    float *mrow = (float *)(smem + L.m), *lrow = (float *)(smem + L.l), *arow = (float *)(smem + L.a);
    float *rowid = (float *)(smem + L.rowid);

    const int4 t = tiles[blockIdx.x];
    const int q0 = t.x, nq = t.y, s0 = t.z, h = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, r0 = warp * 16;
    const int ldqs = dqk + AW_PADH, ldvs = dv + AW_PADH, nv = dv / 16;
    const size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;

    aw_load_tile(Qs, ldqs, Q + (size_t)q0 * ldq + (size_t)h * dqk, ldq, nq, dqk);
    if (threadIdx.x < AW_T) {
        mrow[threadIdx.x] = -INFINITY;
        lrow[threadIdx.x] = 0.0f;
    }
    for (int i = threadIdx.x; i < 256; i += blockDim.x) rowid[i] = (float)(i >> 4);
    __syncthreads();
    FragC rowf;  // rowf.x[i] = row (0..15) of element i of this thread's accumulators
    wmma::load_matrix_sync(rowf, rowid, 16, wmma::mem_row_major);
    FragC o[AW_NV];
#pragma unroll
    for (int j = 0; j < AW_NV; j++) wmma::fill_fragment(o[j], 0.0f);

    const int n_kt = (q0 - s0) / AW_T + 1;  // key tiles 0 .. the diagonal one
    uint4 pf[AW_NPF(AW_FWD_THREADS)];
    aw_fetch_pair<AW_FWD_THREADS>(pf, K + (size_t)s0 * ldq + (size_t)h * dqk, ldq, dqk,
                                  V + (size_t)s0 * ldv + (size_t)h * dv, ldv, dv, n_kt == 1 ? nq : AW_T);
    for (int kt = 0; kt < n_kt; kt++) {
        const int k0 = s0 + kt * AW_T;
        const bool diag = k0 == q0;
        const int nk = diag ? nq : AW_T;  // keys of this tile (rows beyond were fetched as 0)
        __syncthreads();  // every warp is done with the previous K, V tile
        aw_put_pair<AW_FWD_THREADS>(pf, Ks, ldqs, dqk, Vs, ldvs, dv);
        __syncthreads();
        if (kt + 1 < n_kt) {  // the next tile's loads overlap this tile's products
            const int k1 = k0 + AW_T;
            aw_fetch_pair<AW_FWD_THREADS>(pf, K + (size_t)k1 * ldq + (size_t)h * dqk, ldq, dqk,
                                          V + (size_t)k1 * ldv + (size_t)h * dv, ldv, dv, k1 == q0 ? nq : AW_T);
        }

        // S[warp rows] = Q K^T (unscaled), 4 fragments of 16 keys.
        for (int cb = 0; cb < AW_T / 16; cb++) {
            FragC acc;
            aw_mma_abt(acc, Qs + r0 * ldqs, ldqs, Ks + cb * 16 * ldqs, ldqs, dqk);
            wmma::store_matrix_sync(S + r0 * AW_LDF + cb * 16, acc, AW_LDF, wmma::mem_row_major);
        }
        __syncwarp();
        // Online softmax of the warp's 16 rows: lanes l and l + 16 own row r0 + l, 32
        // columns each (half h = lane / 16), visited from column (j + lane) % 32 of the
        // half so that the 32 lanes read 32 different banks (row stride 68 floats);
        // the halves meet in one shuffle. Every row has a live key in every tile it
        // visits (key 0 of the tile), so the new max is finite; the guards keep
        // -inf - -inf out regardless. Keys c <= lim are live.
        {
            const int rr = lane & 15, half = lane >> 4, r = r0 + rr;
            const int lim = diag ? min(r, nk - 1) : AW_T - 1;
            const float *srow = S + r * AW_LDF;
            float mx = -INFINITY;
            for (int j = 0; j < 32; j++) {
                const int c = half * 32 + ((j + lane) & 31);
                if (c <= lim) mx = fmaxf(mx, scale * srow[c]);
            }
            mx = fmaxf(mx, aw_shfl_xor(mx, 16));
            const float mold = mrow[r], lold = lrow[r];
            const float mnew = fmaxf(mold, mx);
            float sum = 0.0f;
            for (int j = 0; j < 32; j++) {
                const int c = half * 32 + ((j + lane) & 31);
                float p = c <= lim && mnew != -INFINITY ? expf(scale * srow[c] - mnew) : 0.0f;
                Ps[r * AW_LDH + c] = __float2bfloat16(p);
                sum += p;
            }
            sum += aw_shfl_xor(sum, 16);
            const float alpha = mnew == -INFINITY ? 1.0f : expf(mold - mnew);  // 0 on the first tile
            __syncwarp();  // both halves have read mrow[r], lrow[r]
            if (half == 0) {
                mrow[r] = mnew;
                lrow[r] = lold * alpha + sum;
                arow[r] = alpha;
            }
        }
        __syncwarp();  // P and alpha of the warp's rows are visible to all its lanes
        // O = O * alpha (per row) + P V.
#pragma unroll
        for (int j = 0; j < AW_NV; j++) {
            if (j >= nv) break;
            for (int i = 0; i < o[j].num_elements; i++) o[j].x[i] *= arow[r0 + (int)rowf.x[i]];
        }
        for (int kk = 0; kk < AW_T / 16; kk++) {
            FragA pa;
            wmma::load_matrix_sync(pa, Ps + r0 * AW_LDH + kk * 16, AW_LDH);
#pragma unroll
            for (int j = 0; j < AW_NV; j++) {
                if (j >= nv) break;
                FragB vb;
                wmma::load_matrix_sync(vb, Vs + kk * 16 * ldvs + j * 16, ldvs);
                wmma::mma_sync(o[j], pa, vb, o[j]);
            }
        }
    }
    // O / l for the warp's live rows (staged through the warp's own S rows), and lse.
    __syncwarp();
    float *stage = S + r0 * AW_LDF;
    const int nrows = min(16, nq - r0);  // may be <= 0: nothing written
    float *orow = O + (size_t)(q0 + r0) * ldv + (size_t)h * dv;
#pragma unroll
    for (int j = 0; j < AW_NV; j++) {
        if (j >= nv) break;
        wmma::store_matrix_sync(stage, o[j], AW_LDF, wmma::mem_row_major);
        __syncwarp();
        for (int i = lane; i < 256; i += 32) {
            int r = i >> 4, c = i & 15;
            if (r < nrows) orow[(size_t)r * ldv + j * 16 + c] = stage[r * AW_LDF + c] / lrow[r0 + r];
        }
        __syncwarp();
    }
    if (lane < nrows) lse[(size_t)(q0 + r0 + lane) * H + h] = mrow[r0 + lane] + logf(lrow[r0 + lane]);
}

// ---- backward ------------------------------------------------------------------------

// Query rows [q0, q0+nq): Q, dO tiles (bf16), lse and D (0 beyond nq). All threads.
__device__ static void aw_load_query_tile(bf16 *Qs, bf16 *dOs, float *lse_s, float *D_s, const bf16 *Q,
                                          const bf16 *dO, const float *lse, const float *Dd, int q0, int nq,
                                          int h, int H, int dqk, int dv) {
    const size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;
    aw_load_tile(Qs, dqk + AW_PADH, Q + (size_t)q0 * ldq + (size_t)h * dqk, ldq, nq, dqk);
    aw_load_tile(dOs, dv + AW_PADH, dO + (size_t)q0 * ldv + (size_t)h * dv, ldv, nq, dv);
    for (int r = threadIdx.x; r < AW_T; r += blockDim.x) {
        lse_s[r] = r < nq ? lse[(size_t)(q0 + r) * H + h] : 0.0f;
        D_s[r] = r < nq ? Dd[(size_t)(q0 + r) * H + h] : 0.0f;
    }
}

// dK, dV of one key tile: tile = {k0, nk, s0, s1}; query tiles k0, k0 + 64, ... < s1.
__global__ void __launch_bounds__(AW_DKV_THREADS) aw_backward_dkv_kernel(
    float *dK, float *dV, const bf16 *dO, const float *lse, const float *Dd, const bf16 *Q, const bf16 *K,
    const bf16 *V, const int4 *tiles, int H, int dqk, int dv, float scale) {
    extern __shared__ __align__(128) unsigned char smem[];
    const AwBwdLayout L = aw_bwd_layout(dqk, dv, 1);
    bf16 *Qs = (bf16 *)(smem + L.q), *Ks = (bf16 *)(smem + L.k), *dOs = (bf16 *)(smem + L.o);
    bf16 *Vs = (bf16 *)(smem + L.v), *Pb = (bf16 *)(smem + L.h0), *dSb = (bf16 *)(smem + L.h1);
    float *Pf = (float *)(smem + L.f0), *dPf = (float *)(smem + L.f1);
    float *lse_s = (float *)(smem + L.lse), *D_s = (float *)(smem + L.d);

    const int4 t = tiles[blockIdx.x];
    const int k0 = t.x, nk = t.y, s1 = t.w, h = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r0 = (warp & 3) * 16;  // the warp's 16 keys of the tile
    const int role = warp >> 2;      // 0: P, dV; 1: dP, dS, dK
    const int ldqs = dqk + AW_PADH, ldvs = dv + AW_PADH, nqk = dqk / 16, nv = dv / 16;
    const size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;

    aw_load_tile(Ks, ldqs, K + (size_t)k0 * ldq + (size_t)h * dqk, ldq, nk, dqk);
    aw_load_tile(Vs, ldvs, V + (size_t)k0 * ldv + (size_t)h * dv, ldv, nk, dv);
    // One accumulator array for both roles: dV (nv fragments) in role 0, dK (nqk) in
    // role 1, so a thread holds only one of them.
    FragC acc[AW_NQK];
#pragma unroll
    for (int j = 0; j < AW_NQK; j++) wmma::fill_fragment(acc[j], 0.0f);

    uint4 pf[AW_NPF(AW_DKV_THREADS)];
    aw_fetch_pair<AW_DKV_THREADS>(pf, Q + (size_t)k0 * ldq + (size_t)h * dqk, ldq, dqk,
                                  dO + (size_t)k0 * ldv + (size_t)h * dv, ldv, dv, min(AW_T, s1 - k0));
    for (int q0 = k0; q0 < s1; q0 += AW_T) {
        const int nq = min(AW_T, s1 - q0);
        const bool diag = q0 == k0;
        __syncthreads();  // the previous query tile, P and dP are no longer read
        aw_put_pair<AW_DKV_THREADS>(pf, Qs, ldqs, dqk, dOs, ldvs, dv);
        for (int r = threadIdx.x; r < AW_T; r += blockDim.x) {
            lse_s[r] = r < nq ? lse[(size_t)(q0 + r) * H + h] : 0.0f;
            D_s[r] = r < nq ? Dd[(size_t)(q0 + r) * H + h] : 0.0f;
        }
        __syncthreads();
        if (q0 + AW_T < s1) {  // the next query tile's loads overlap this tile's products
            const int q1 = q0 + AW_T;
            aw_fetch_pair<AW_DKV_THREADS>(pf, Q + (size_t)q1 * ldq + (size_t)h * dqk, ldq, dqk,
                                          dO + (size_t)q1 * ldv + (size_t)h * dv, ldv, dv, min(AW_T, s1 - q1));
        }
        if (role == 0) {
            // S^T = K Q^T for the warp's keys (16 x 64 queries), then P^T in fp32 and bf16.
            for (int cb = 0; cb < AW_T / 16; cb++) {
                FragC s;
                aw_mma_abt(s, Ks + r0 * ldqs, ldqs, Qs + cb * 16 * ldqs, ldqs, dqk);
                wmma::store_matrix_sync(Pf + r0 * AW_LDF + cb * 16, s, AW_LDF, wmma::mem_row_major);
            }
            __syncwarp();
            for (int rr = 0; rr < 16; rr++) {
                const int kr = r0 + rr;  // key index within the tile
#pragma unroll
                for (int u = 0; u < 2; u++) {
                    const int c = lane + 32 * u;  // query index within its tile
                    bool live = kr < nk && c < nq && (!diag || c >= kr);
                    float p = live ? expf(scale * Pf[kr * AW_LDF + c] - lse_s[c]) : 0.0f;
                    Pf[kr * AW_LDF + c] = p;
                    Pb[kr * AW_LDH + c] = __float2bfloat16(p);
                }
            }
        } else {
            // dP^T = V dO^T for the warp's keys.
            for (int cb = 0; cb < AW_T / 16; cb++) {
                FragC s;
                aw_mma_abt(s, Vs + r0 * ldvs, ldvs, dOs + cb * 16 * ldvs, ldvs, dv);
                wmma::store_matrix_sync(dPf + r0 * AW_LDF + cb * 16, s, AW_LDF, wmma::mem_row_major);
            }
        }
        __syncthreads();  // P^T of every key row is complete
        if (role == 0) {
            // dV[keys] += P^T dO
            for (int kk = 0; kk < AW_T / 16; kk++) {
                FragA pa;
                wmma::load_matrix_sync(pa, Pb + r0 * AW_LDH + kk * 16, AW_LDH);
#pragma unroll
                for (int j = 0; j < AW_NV; j++) {
                    if (j >= nv) break;
                    FragB ob;
                    wmma::load_matrix_sync(ob, dOs + kk * 16 * ldvs + j * 16, ldvs);
                    wmma::mma_sync(acc[j], pa, ob, acc[j]);
                }
            }
        } else {
            // dS^T = P^T (dP^T - D) (unscaled; P is 0 where masked), then dK += dS^T Q.
            for (int rr = 0; rr < 16; rr++) {
                const int kr = r0 + rr;
#pragma unroll
                for (int u = 0; u < 2; u++) {
                    const int c = lane + 32 * u;
                    float ds = Pf[kr * AW_LDF + c] * (dPf[kr * AW_LDF + c] - D_s[c]);
                    dSb[kr * AW_LDH + c] = __float2bfloat16(ds);
                }
            }
            __syncwarp();
            for (int kk = 0; kk < AW_T / 16; kk++) {
                FragA da;
                wmma::load_matrix_sync(da, dSb + r0 * AW_LDH + kk * 16, AW_LDH);
#pragma unroll
                for (int j = 0; j < AW_NQK; j++) {
                    if (j >= nqk) break;
                    FragB qb;
                    wmma::load_matrix_sync(qb, Qs + kk * 16 * ldqs + j * 16, ldqs);
                    wmma::mma_sync(acc[j], da, qb, acc[j]);
                }
            }
        }
    }
    __syncthreads();  // role 1 is done reading Pf before role 0 stages through it
    const int nrows = min(16, nk - r0);
    if (role == 0)
        aw_store_strip(dV + (size_t)(k0 + r0) * ldv + (size_t)h * dv, ldv, nrows, 1.0f, acc, nv,
                       Pf + r0 * AW_LDF);
    else
        aw_store_strip(dK + (size_t)(k0 + r0) * ldq + (size_t)h * dqk, ldq, nrows, scale, acc, nqk,
                       dPf + r0 * AW_LDF);
}

// dQ of one query tile: tile = {q0, nq, s0, s1}; key tiles s0, s0 + 64, ... q0.
// 8 warps: warp w owns query rows 16 (w % 4) ..; warps 0-3 form S = Q K^T, warps 4-7
// dP = dO V^T for those rows; then each half forms dS for 32 of the 64 keys, and the
// first half accumulates dQ's first ceil(dqk/32) column fragments, the second the rest.
__global__ void __launch_bounds__(AW_DQ_THREADS) aw_backward_dq_kernel(
    float *dQ, const bf16 *dO, const float *lse, const float *Dd, const bf16 *Q, const bf16 *K,
    const bf16 *V, const int4 *tiles, int H, int dqk, int dv, float scale) {
    extern __shared__ __align__(128) unsigned char smem[];
    const AwBwdLayout L = aw_bwd_layout(dqk, dv, 0);
    bf16 *Qs = (bf16 *)(smem + L.q), *Ks = (bf16 *)(smem + L.k), *dOs = (bf16 *)(smem + L.o);
    bf16 *Vs = (bf16 *)(smem + L.v), *dSb = (bf16 *)(smem + L.h0);
    float *Sf = (float *)(smem + L.f0), *dPf = (float *)(smem + L.f1);
    float *lse_s = (float *)(smem + L.lse), *D_s = (float *)(smem + L.d);

    const int4 t = tiles[blockIdx.x];
    const int q0 = t.x, nq = t.y, s0 = t.z, h = blockIdx.y;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int r0 = (warp & 3) * 16, role = warp >> 2;
    const int ldqs = dqk + AW_PADH, ldvs = dv + AW_PADH, nqk = dqk / 16;
    const int jhalf = (nqk + 1) / 2, jbase = role ? jhalf : 0, jcount = role ? nqk - jhalf : jhalf;
    const size_t ldq = (size_t)H * dqk, ldv = (size_t)H * dv;

    aw_load_query_tile(Qs, dOs, lse_s, D_s, Q, dO, lse, Dd, q0, nq, h, H, dqk, dv);
    FragC acc[AW_DQ_FRAGS];
#pragma unroll
    for (int j = 0; j < AW_DQ_FRAGS; j++) wmma::fill_fragment(acc[j], 0.0f);

    const int n_kt = (q0 - s0) / AW_T + 1;
    uint4 pf[AW_NPF(AW_DQ_THREADS)];
    aw_fetch_pair<AW_DQ_THREADS>(pf, K + (size_t)s0 * ldq + (size_t)h * dqk, ldq, dqk,
                                 V + (size_t)s0 * ldv + (size_t)h * dv, ldv, dv, n_kt == 1 ? nq : AW_T);
    for (int kt = 0; kt < n_kt; kt++) {
        const int k0 = s0 + kt * AW_T;
        const bool diag = k0 == q0;
        const int nk = diag ? nq : AW_T;
        __syncthreads();  // the previous K, V and dS are no longer read (and Q, dO are loaded)
        aw_put_pair<AW_DQ_THREADS>(pf, Ks, ldqs, dqk, Vs, ldvs, dv);
        __syncthreads();
        if (kt + 1 < n_kt) {
            const int k1 = k0 + AW_T;
            aw_fetch_pair<AW_DQ_THREADS>(pf, K + (size_t)k1 * ldq + (size_t)h * dqk, ldq, dqk,
                                         V + (size_t)k1 * ldv + (size_t)h * dv, ldv, dv, k1 == q0 ? nq : AW_T);
        }
        for (int cb = 0; cb < AW_T / 16; cb++) {
            FragC s;
            if (role == 0) {
                aw_mma_abt(s, Qs + r0 * ldqs, ldqs, Ks + cb * 16 * ldqs, ldqs, dqk);
                wmma::store_matrix_sync(Sf + r0 * AW_LDF + cb * 16, s, AW_LDF, wmma::mem_row_major);
            } else {
                aw_mma_abt(s, dOs + r0 * ldvs, ldvs, Vs + cb * 16 * ldvs, ldvs, dv);
                wmma::store_matrix_sync(dPf + r0 * AW_LDF + cb * 16, s, AW_LDF, wmma::mem_row_major);
            }
        }
        __syncthreads();  // S and dP of every row are complete
        for (int rr = 0; rr < 16; rr++) {
            const int r = r0 + rr, c = role * 32 + lane;
            bool live = r < nq && c < nk && (!diag || c <= r);
            float p = live ? expf(scale * Sf[r * AW_LDF + c] - lse_s[r]) : 0.0f;
            dSb[r * AW_LDH + c] = __float2bfloat16(p * (dPf[r * AW_LDF + c] - D_s[r]));
        }
        __syncthreads();  // dS of every row is complete
        // dQ[warp rows, this half's columns] += dS K
        for (int kk = 0; kk < AW_T / 16; kk++) {
            FragA da;
            wmma::load_matrix_sync(da, dSb + r0 * AW_LDH + kk * 16, AW_LDH);
#pragma unroll
            for (int j = 0; j < AW_DQ_FRAGS; j++) {
                if (j >= jcount) break;
                FragB kb;
                wmma::load_matrix_sync(kb, Ks + kk * 16 * ldqs + (jbase + j) * 16, ldqs);
                wmma::mma_sync(acc[j], da, kb, acc[j]);
            }
        }
    }
    __syncthreads();  // S and dP are no longer read: they stage the output
    aw_store_strip(dQ + (size_t)(q0 + r0) * ldq + (size_t)h * dqk + (size_t)jbase * 16, ldq, min(16, nq - r0), scale,
                   acc, jcount, (role ? dPf : Sf) + r0 * AW_LDF);
}

// ---- host side -----------------------------------------------------------------------

// 1 when these kernels take the shapes on this device (else the gemm path does).
static int aw_supported(int dqk, int dv) {
    if (dqk <= 0 || dv <= 0 || dqk % 16 || dv % 16 || dqk > AW_MAX_DQK || dv > AW_MAX_DV) return 0;
    int dev = 0, max_optin = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&max_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    unsigned need = aw_fwd_layout(dqk, dv).bytes;
    unsigned b = aw_bwd_layout(dqk, dv, 1).bytes;
    if (b > need) need = b;
    return need <= (unsigned)max_optin;
}

extern "C" int ops_cuda_attention_wmma_supported(int dqk, int dv) {
    return crucible_cuda_device_count() > 0 && aw_supported(dqk, dv);
}

typedef struct AwTiles {
    int4 *host;  // [n] {start, count, s0, s1}
    int n;
} AwTiles;

static int aw_cmp_forward(const void *a, const void *b) {  // most key tiles first
    const int4 *x = (const int4 *)a, *y = (const int4 *)b;
    int wx = x->x - x->z, wy = y->x - y->z;
    if (wx != wy) return wx > wy ? -1 : 1;
    return x->x < y->x ? -1 : x->x > y->x;
}
static int aw_cmp_keys(const void *a, const void *b) {  // most query tiles first
    const int4 *x = (const int4 *)a, *y = (const int4 *)b;
    int wx = x->w - x->x, wy = y->w - y->x;
    if (wx != wy) return wx > wy ? -1 : 1;
    return x->x < y->x ? -1 : x->x > y->x;
}

// The 64-token tiles of every sequence, from the device cu_seqlens. A malformed
// cu_seqlens (decreasing, outside [0, N]) is an error, not an out-of-bounds read.
static AwTiles aw_tiles(const int32_t *cu_dev, int n_seqs, int N) {
    int32_t *cu = (int32_t *)malloc(sizeof(int32_t) * (size_t)(n_seqs + 1));
    if (!cu) cuda_fail("malloc", "out of memory", __FILE__, __LINE__);
    cudaCheck(cudaMemcpy(cu, cu_dev, sizeof(int32_t) * (size_t)(n_seqs + 1), cudaMemcpyDeviceToHost));
    long long n = 0;
    for (int s = 0; s < n_seqs; s++) {
        if (cu[s] < 0 || cu[s + 1] < cu[s] || cu[s + 1] > N)
            cuda_fail("attention (wmma)", "cu_seqlens must be non-decreasing within [0, N]", __FILE__, __LINE__);
        n += (cu[s + 1] - cu[s] + AW_T - 1) / AW_T;
    }
    AwTiles T;
    T.n = (int)n;
    T.host = (int4 *)malloc(sizeof(int4) * (size_t)(n ? n : 1));
    if (!T.host) cuda_fail("malloc", "out of memory", __FILE__, __LINE__);
    int i = 0;
    for (int s = 0; s < n_seqs; s++)
        for (int a = cu[s]; a < cu[s + 1]; a += AW_T)
            T.host[i++] = make_int4(a, cu[s + 1] - a < AW_T ? cu[s + 1] - a : AW_T, cu[s], cu[s + 1]);
    free(cu);
    return T;
}

// Copies tile list to device memory at dst (n int4) in the given order.
static void aw_upload_sorted(int4 *dst, AwTiles *T, int (*cmp)(const void *, const void *)) {
    qsort(T->host, (size_t)T->n, sizeof(int4), cmp);
    cudaCheck(cudaMemcpy(dst, T->host, sizeof(int4) * (size_t)T->n, cudaMemcpyHostToDevice));
}

// Launch through cudaLaunchKernel (args: pointers to the kernel's arguments, in order),
// after allowing the dynamic shared memory: above 48 KiB it must be opted into per
// kernel. (The host simulator tests/cuda/sim_attention_wmma.cc runs these kernels on the
// CPU by providing its own cudaLaunchKernel / cudaFuncSetAttribute.)
template <typename Kernel>
static void aw_launch(Kernel k, int grid_x, int grid_y, int threads, unsigned smem, void **args) {
    cudaCheck(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    cudaCheck(cudaLaunchKernel(k, dim3((unsigned)grid_x, (unsigned)grid_y), dim3((unsigned)threads), args,
                               (size_t)smem, cuda_stream()));
}

// Byte offset of a part of `bytes` in a scratch laid out part after part, 256-aligned.
static size_t aw_part(size_t *off, size_t bytes) {
    size_t at = *off;
    *off += (bytes + 255) & ~(size_t)255;
    return at;
}

// dst = bf16(src), n elements (device memory).
static void aw_to_bf16(bf16 *dst, const float *src, long long n) {
    long long g = (n + 255) / 256;
    int grid = (int)(g < 1024 ? g : 1024);  // grid-stride beyond
    void *args[] = {&dst, &src, &n};
    aw_launch(aw_to_bf16_kernel, grid, 1, 256, 0, args);
}

void cuda_attention_forward_wmma(float *O, float *lse, const float *Q, const float *K, const float *V,
                                 const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv, float scale) {
    if (N <= 0 || H <= 0 || n_seqs <= 0) return;
    if (!aw_supported(dqk, dv)) {
        cuda_attention_forward_gemm(CUBLAS_COMPUTE_32F_FAST_16BF, O, lse, Q, K, V, cu_seqlens, n_seqs, N, H, dqk,
                                    dv, scale);
        return;
    }
    AwTiles T = aw_tiles(cu_seqlens, n_seqs, N);
    if (T.n > 0) {
        // scratch: bf16 copies of Q, K, V, then the tile list
        long long nq = (long long)N * H * dqk, nv = (long long)N * H * dv;
        size_t off = 0, oq = aw_part(&off, 2 * (size_t)nq), ok = aw_part(&off, 2 * (size_t)nq);
        size_t ov = aw_part(&off, 2 * (size_t)nv), ot = aw_part(&off, sizeof(int4) * (size_t)T.n);
        unsigned char *scr = (unsigned char *)cuda_big_scratch(off);
        bf16 *Qb = (bf16 *)(scr + oq), *Kb = (bf16 *)(scr + ok), *Vb = (bf16 *)(scr + ov);
        int4 *dt = (int4 *)(scr + ot);
        aw_upload_sorted(dt, &T, aw_cmp_forward);
        aw_to_bf16(Qb, Q, nq);
        aw_to_bf16(Kb, K, nq);
        aw_to_bf16(Vb, V, nv);
        unsigned smem = aw_fwd_layout(dqk, dv).bytes;
        void *args[] = {&O, &lse, &Qb, &Kb, &Vb, &dt, &H, &dqk, &dv, &scale};
        aw_launch(aw_forward_kernel, T.n, H, AW_FWD_THREADS, smem, args);
    }
    free(T.host);
}

void cuda_attention_backward_wmma(float *dQ, float *dK, float *dV, const float *dO, const float *O,
                                  const float *lse, const float *Q, const float *K, const float *V,
                                  const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv,
                                  float scale) {
    if (N <= 0 || H <= 0 || n_seqs <= 0) return;
    if (!aw_supported(dqk, dv)) {
        cuda_attention_backward_gemm(CUBLAS_COMPUTE_32F_FAST_16BF, dQ, dK, dV, dO, O, lse, Q, K, V, cu_seqlens,
                                     n_seqs, N, H, dqk, dv, scale);
        return;
    }
    AwTiles T = aw_tiles(cu_seqlens, n_seqs, N);
    if (T.n > 0) {
        // scratch: bf16 copies of Q, K, V, dO; D [N*H] floats; the two tile orders
        long long nq = (long long)N * H * dqk, nv = (long long)N * H * dv, NH = (long long)N * H;
        size_t off = 0, oq = aw_part(&off, 2 * (size_t)nq), ok = aw_part(&off, 2 * (size_t)nq);
        size_t ov = aw_part(&off, 2 * (size_t)nv), oo = aw_part(&off, 2 * (size_t)nv);
        size_t od = aw_part(&off, sizeof(float) * (size_t)NH);
        size_t otk = aw_part(&off, sizeof(int4) * (size_t)T.n), otq = aw_part(&off, sizeof(int4) * (size_t)T.n);
        unsigned char *scr = (unsigned char *)cuda_big_scratch(off);
        bf16 *Qb = (bf16 *)(scr + oq), *Kb = (bf16 *)(scr + ok), *Vb = (bf16 *)(scr + ov), *dOb = (bf16 *)(scr + oo);
        float *Dd = (float *)(scr + od);
        int4 *t_keys = (int4 *)(scr + otk), *t_queries = (int4 *)(scr + otq);
        aw_upload_sorted(t_keys, &T, aw_cmp_keys);
        aw_upload_sorted(t_queries, &T, aw_cmp_forward);
        aw_to_bf16(Qb, Q, nq);
        aw_to_bf16(Kb, K, nq);
        aw_to_bf16(Vb, V, nv);
        aw_to_bf16(dOb, dO, nv);
        void *dargs[] = {&Dd, &dO, &O, &NH, &dv};
        aw_launch(attention_delta_kernel, (int)((NH + 7) / 8), 1, 256, 0, dargs);
        unsigned smem_kv = aw_bwd_layout(dqk, dv, 1).bytes, smem_q = aw_bwd_layout(dqk, dv, 0).bytes;
        void *kargs[] = {&dK, &dV, &dOb, &lse, &Dd, &Qb, &Kb, &Vb, &t_keys, &H, &dqk, &dv, &scale};
        aw_launch(aw_backward_dkv_kernel, T.n, H, AW_DKV_THREADS, smem_kv, kargs);
        void *qargs[] = {&dQ, &dOb, &lse, &Dd, &Qb, &Kb, &Vb, &t_queries, &H, &dqk, &dv, &scale};
        aw_launch(aw_backward_dq_kernel, T.n, H, AW_DQ_THREADS, smem_q, qargs);
    }
    free(T.host);
}

// ---- the tables' attention -----------------------------------------------------------

typedef enum { AW_MODE_GEMM, AW_MODE_WMMA, AW_MODE_FLASH } AwMode;

// The bf16 table's choice, read on every call; the fp32 table always takes the gemm path.
static AwMode aw_mode(cublasComputeType_t ct) {
    if (ct != CUBLAS_COMPUTE_32F_FAST_16BF) return AW_MODE_GEMM;
    static const char *const v[3] = {"gemm", "wmma", "flash"};
    static const AwMode m[3] = {AW_MODE_GEMM, AW_MODE_WMMA, AW_MODE_FLASH};
    return m[cuda_env_pick("CRUCIBLE_CUDA_ATTENTION", v, 3)];
}

void cuda_attention_forward_table(cublasComputeType_t ct, float *O, float *lse, const float *Q, const float *K,
                                  const float *V, const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk,
                                  int dv, float scale) {
    switch (aw_mode(ct)) {
    case AW_MODE_WMMA:
        cuda_attention_forward_wmma(O, lse, Q, K, V, cu_seqlens, n_seqs, N, H, dqk, dv, scale);
        break;
    case AW_MODE_FLASH:
        cuda_attention_forward_flash(O, lse, Q, K, V, cu_seqlens, n_seqs, N, H, dqk, dv, scale);
        break;
    default:
        cuda_attention_forward_gemm(ct, O, lse, Q, K, V, cu_seqlens, n_seqs, N, H, dqk, dv, scale);
    }
}

void cuda_attention_backward_table(cublasComputeType_t ct, float *dQ, float *dK, float *dV, const float *dO,
                                   const float *O, const float *lse, const float *Q, const float *K, const float *V,
                                   const int32_t *cu_seqlens, int n_seqs, int N, int H, int dqk, int dv,
                                   float scale) {
    switch (aw_mode(ct)) {
    case AW_MODE_WMMA:
        cuda_attention_backward_wmma(dQ, dK, dV, dO, O, lse, Q, K, V, cu_seqlens, n_seqs, N, H, dqk, dv, scale);
        break;
    case AW_MODE_FLASH:
        cuda_attention_backward_flash(dQ, dK, dV, dO, O, lse, Q, K, V, cu_seqlens, n_seqs, N, H, dqk, dv, scale);
        break;
    default:
        cuda_attention_backward_gemm(ct, dQ, dK, dV, dO, O, lse, Q, K, V, cu_seqlens, n_seqs, N, H, dqk, dv, scale);
    }
}
