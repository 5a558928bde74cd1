// model/cuda/mla_decode.cu — the paged latent MLA cache on the GPU (spec §9.2–9.3): latent
// rows written through block tables (mla_cache_scatter) and absorbed-MLA attention of
// query rows over them (mla_decode_attention). model/cpu/mla_cache.c is the specification.
//
// Decode attention is split over the context (flash-decoding): positions are cut into
// fixed splits of `split` positions from position 0 (MLA_SPLIT = 256 by default;
// CRUCIBLE_CUDA_MLA_SPLIT=32/64/128 for more, shorter blocks — at batch 1 a 1500-token
// context gives 12 blocks of 256 on 132 SMs; opt-in, NOT yet timed on a GPU), and one block per (split, head group, row)
// writes, for each head of the group, the split's max score m, sum of exp(score - m) l and
// unnormalised sum of exp(score - m) c_j[0:r]; a second kernel combines a row's splits in
// ascending order. Split boundaries depend only on the position, so a row's result does
// not depend on the other rows. No atomics: every sum has a fixed order.
#include "model/cuda/cuda_ops.cuh"

// MLA_SPLIT positions per split (the default and the largest); up to MLA_HG heads per
// block (fewer when a wide latent row would not fit the shared memory).
enum { MLA_SPLIT = 256, MLA_THREADS = 256, MLA_HG = 8 };

// Positions per split: CRUCIBLE_CUDA_MLA_SPLIT (32, 64, 128 or 256; read per call), else
// MLA_SPLIT.
static int mla_split(void) {
    static const char *const v[4] = {"256", "128", "64", "32"};
    return MLA_SPLIT >> cuda_env_pick("CRUCIBLE_CUDA_MLA_SPLIT", v, 4);
}

// The cached row of layer `layer` at position p of the sequence whose block ids are bt[].
__device__ __forceinline__ const float *latent_row(const float *cache, const int32_t *bt, int n_layers, int layer,
                                                   int block_tokens, int rw, int p) {
    size_t b = (size_t)bt[p / block_tokens];
    return cache + ((b * n_layers + layer) * block_tokens + p % block_tokens) * (size_t)rw;
}

// ---- scatter ------------------------------------------------------------------------

__global__ void mla_cache_scatter_kernel(float *cache, const int32_t *block_table, int max_blocks, int n_layers,
                                         int layer, int block_tokens, int rw, const float *src, const int32_t *pos,
                                         int n) {
    size_t total = (size_t)n * rw;
    for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total; e += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(e / rw), d = (int)(e % rw);
        const float *row = latent_row(cache, block_table + (size_t)i * max_blocks, n_layers, layer, block_tokens, rw,
                                      pos[i]);
        ((float *)row)[d] = src[e];
    }
}

void cuda_mla_cache_scatter(float *cache, const int32_t *block_table, int max_blocks, int n_layers, int layer,
                            int block_tokens, int rw, const float *src, const int32_t *pos, int n) {
    if (n <= 0 || rw <= 0) return;
    mla_cache_scatter_kernel<<<grid_for((size_t)n * rw), CUDA_THREADS, 0, cuda_stream()>>>(
        cache, block_table, max_blocks, n_layers, layer, block_tokens, rw, src, pos, n);
    launchCheck();
}

// ---- decode attention -----------------------------------------------------------------

// Partials of split s of (row i, head h) at part = (i*H + h)*n_split + s: acc[part][0:r],
// ml[part] = (m, l). One block serves hg consecutive heads of one row (h0 .. h0+nh-1):
// every latent row it reads feeds all of them (the heads share the single latent KV
// head). A split past the row's context writes the neutral (-inf, 0, zeros).
__global__ void mla_decode_split_kernel(float *acc, float *ml, const float *qa, const float *cache,
                                        const int32_t *block_table, int max_blocks, int n_layers, int layer,
                                        int block_tokens, const int32_t *pos, int H, int r, int dr, float scale,
                                        int n_split, int hg, int split) {
    extern __shared__ float smem[];  // q [hg][rw] | p [hg][split]
    __shared__ float red[32];
    int s = blockIdx.x, h0 = blockIdx.y * hg, i = blockIdx.z, rw = r + dr;
    int nh = min(hg, H - h0), tid = threadIdx.x;
    float *q = smem, *p = smem + (size_t)hg * rw;
    size_t part0 = ((size_t)i * H + h0) * n_split + s;  // head h0 + h: part0 + h * n_split
    int ctx = pos[i] + 1, j0 = s * split, len = min(split, ctx - j0);
    if (len <= 0) {  // the same for every thread of the block: no barrier is skipped halfway
        for (int h = 0; h < nh; h++) {
            size_t part = part0 + (size_t)h * n_split;
            for (int d = tid; d < r; d += blockDim.x) acc[part * r + d] = 0.0f;
            if (tid == 0) {
                ml[2 * part] = -INFINITY;
                ml[2 * part + 1] = 0.0f;
            }
        }
        return;
    }
    const int32_t *bt = block_table + (size_t)i * max_blocks;
    const float *qsrc = qa + ((size_t)i * H + h0) * rw;  // the group's heads are contiguous
    for (int e = tid; e < nh * rw; e += blockDim.x) q[e] = qsrc[e];
    __syncthreads();
    // scores: one warp per position, lanes over the row's dims (each row element read once
    // for all heads), one fixed shuffle tree per head
    int lane = tid & 31, warp = tid >> 5, n_warps = blockDim.x >> 5;
    for (int jj = warp; jj < len; jj += n_warps) {
        const float *c = latent_row(cache, bt, n_layers, layer, block_tokens, rw, j0 + jj);
        float dot[MLA_HG];
#pragma unroll
        for (int h = 0; h < MLA_HG; h++) dot[h] = 0.0f;
        for (int d = lane; d < rw; d += 32) {
            float cv = c[d];
#pragma unroll
            for (int h = 0; h < MLA_HG; h++)
                if (h < nh) dot[h] += q[h * rw + d] * cv;
        }
#pragma unroll
        for (int h = 0; h < MLA_HG; h++)
            if (h < nh) {  // nh is uniform over the block: every lane joins the shuffles
                float v = warp_sum(dot[h]);
                if (lane == 0) p[h * split + jj] = scale * v;
            }
    }
    __syncthreads();
    // softmax numerators per head; block reductions (all threads take part in each)
    for (int h = 0; h < nh; h++) {
        float *ph = p + h * split;
        float mx = -INFINITY;
        for (int jj = tid; jj < len; jj += blockDim.x) mx = fmaxf(mx, ph[jj]);
        mx = block_max(mx, red);
        float sum = 0.0f;
        for (int jj = tid; jj < len; jj += blockDim.x) sum += (ph[jj] = expf(ph[jj] - mx));
        sum = block_sum(sum, red);  // its barriers also publish the ph[] writes above
        if (tid == 0) {
            size_t part = part0 + (size_t)h * n_split;
            ml[2 * part] = mx;
            ml[2 * part + 1] = sum;
        }
    }
    // values: threads over the first r dims, positions in ascending order, all heads at once
    for (int d = tid; d < r; d += blockDim.x) {
        float v[MLA_HG];
#pragma unroll
        for (int h = 0; h < MLA_HG; h++) v[h] = 0.0f;
        for (int jj = 0; jj < len; jj++) {
            float cv = latent_row(cache, bt, n_layers, layer, block_tokens, rw, j0 + jj)[d];
#pragma unroll
            for (int h = 0; h < MLA_HG; h++)
                if (h < nh) v[h] += p[h * split + jj] * cv;
        }
#pragma unroll
        for (int h = 0; h < MLA_HG; h++)
            if (h < nh) acc[(part0 + (size_t)h * n_split) * r + d] = v[h];
    }
}

// out[i,h,:] = sum_s e^(m_s - M) acc_s / sum_s e^(m_s - M) l_s over the row's splits
// s = 0 .. ceil(ctx / split) - 1 in order (M = max_s m_s; split 0 is never empty).
__global__ void mla_decode_combine_kernel(float *out, const float *acc, const float *ml, const int32_t *pos, int H,
                                          int r, int n_split, int split) {
    int ih = blockIdx.x, i = ih / H;
    int ns = min(n_split, (pos[i] + split) / split);
    const float *mls = ml + (size_t)ih * n_split * 2;
    float M = -INFINITY, L = 0.0f;
    for (int s = 0; s < ns; s++) M = fmaxf(M, mls[2 * s]);
    for (int s = 0; s < ns; s++) L += expf(mls[2 * s] - M) * mls[2 * s + 1];
    for (int d = threadIdx.x; d < r; d += blockDim.x) {
        float v = 0.0f;
        for (int s = 0; s < ns; s++) v += expf(mls[2 * s] - M) * acc[((size_t)ih * n_split + s) * r + d];
        out[(size_t)ih * r + d] = v / L;
    }
}

void cuda_mla_decode_attention(float *out, const float *qa, const float *cache, const int32_t *block_table,
                               int max_blocks, int n_layers, int layer, int block_tokens, const int32_t *pos, int n,
                               int H, int r, int dr, float scale) {
    if (n <= 0 || H <= 0 || r <= 0) return;
    if (n > 65535 || H > 65535)
        cuda_fail("mla_decode_attention", "more than 65535 rows or heads in one call", __FILE__, __LINE__);
    // pos is device memory: size the split grid by the longest context a block table can
    // hold, so no copy to the host is needed; splits past a row's context stay neutral.
    long max_ctx = (long)max_blocks * block_tokens;
    int split = mla_split();
    int n_split = (int)((max_ctx + split - 1) / split);
    if (n_split < 1) n_split = 1;
    size_t parts = (size_t)n * H * n_split;
    float *acc = (float *)cuda_big_scratch(parts * ((size_t)r + 2) * sizeof(float));
    float *ml = acc + parts * r;
    int hg = H < MLA_HG ? H : MLA_HG;
    // Without an opt-in a block has 48 KiB of shared memory, static (the kernel's red[32])
    // and dynamic together.
    const size_t shm_max = 48 * 1024 - 32 * sizeof(float);
    size_t shm = sizeof(float) * (size_t)hg * ((size_t)r + dr + split);
    while (hg > 1 && shm > shm_max) {
        hg /= 2;
        shm = sizeof(float) * (size_t)hg * ((size_t)r + dr + split);
    }
    if (shm > shm_max) cuda_fail("mla_decode_attention", "latent row too wide for shared memory", __FILE__, __LINE__);
    dim3 grid((unsigned)n_split, (unsigned)((H + hg - 1) / hg), (unsigned)n);
    mla_decode_split_kernel<<<grid, MLA_THREADS, shm, cuda_stream()>>>(
        acc, ml, qa, cache, block_table, max_blocks, n_layers, layer, block_tokens, pos, H, r, dr, scale, n_split, hg,
        split);
    launchCheck();
    mla_decode_combine_kernel<<<(unsigned)(n * H), MLA_THREADS, 0, cuda_stream()>>>(out, acc, ml, pos, H, r, n_split,
                                                                                    split);
    launchCheck();
}
