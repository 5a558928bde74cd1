// model/cuda/sample.cu — Ops.sample_rows: one token per row of logits on the device,
// with the rules, order and tie breaks of rollout/sampler.c's sampler_sample (the
// specification): temperature (0 = greedy argmax, lowest id on ties) -> top-k -> top-p
// (on the distribution left by top-k) -> min-p, then a draw that walks the kept tokens
// in ascending id order. Only tokens and log-probs are written; nothing reaches the host.
//
// Kernels, in launch order (all on the legacy default stream):
//  1. sample_stats_kernel, one block per row: max logit and argmax, the tempered and the
//     untempered sums of exp (double); a greedy row is finished here.
//  2. Only with top-k or top-p, rows in chunks of at most SORT_ELEMS logits: each token's
//     key (probability bits, then ~id: see sample_key) and a segmented radix sort of each
//     row by key, descending = probability descending, then id ascending, as the CPU's
//     qsort. The keys are unique, so the result does not depend on the sort being stable.
//     sample_cut_kernel, one block per row: how many of the sorted tokens top-k and top-p
//     keep, stored as the smallest kept key ("kept" = key >= cut).
//  3. sample_draw_kernel, one block per row: the kept weights (min-p applied) summed in
//     ascending id order, then the first id whose running sum passes u * total.
//
// Probabilities are never stored: every kernel recomputes exp((logit - max) / T) with
// sample_expf (model/sample_exp.h), bit-identical to the CPU's AVX-512 exp, so the GPU
// sorts, ties and cuts exactly the numbers the CPU does. Sums are double as on the CPU;
// only their order of addition differs (block scans), which can move a draw or a top-p
// cut only when it falls within rounding of a boundary.
#include "model/cuda/cuda_ops.cuh"

#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_segmented_radix_sort.cuh>
#include <limits.h>
#include <math.h>

#include "model/sample_exp.h"

enum {
    SAMPLE_THREADS = 256,
    SCAN_ITEMS = 4,                                // consecutive ids per thread in a scan tile
    SCAN_TILE = SAMPLE_THREADS * SCAN_ITEMS,
    SORT_ELEMS = 1 << 23,                          // logits sorted at once (2 x 64 MiB of keys)
};

typedef unsigned long long u64;

// Per-row results of sample_stats_kernel (and the top-k/top-p cut), in context scratch.
struct RowStat {
    float m;       // max logit
    int32_t amax;  // its lowest id
    double sum_t;  // sum_i sample_expf((x_i - m) / T)   (tempered; the CPU's `sum`)
    double sum1;   // sum_i sample_expf(x_i - m)         (untempered, for logp_model)
    u64 cut;       // smallest kept key after top-k / top-p; 0 = all kept
};

// Sort key of token i with tempered weight e (e > 0): weight bits above, ~i below. For
// non-negative floats the bit patterns order as the values, so key order = (e, -i).
__device__ __forceinline__ u64 sample_key(float e, int i) {
    return ((u64)__float_as_uint(e) << 32) | (u64)(0xFFFFFFFFu - (unsigned)i);
}
__device__ __forceinline__ float key_weight(u64 k) { return __uint_as_float((unsigned)(k >> 32)); }

struct MinInt {
    __device__ int operator()(int a, int b) const { return a < b ? a : b; }
};
struct MaxInt {
    __device__ int operator()(int a, int b) const { return a > b ? a : b; }
};
struct ArgMax {
    float v;
    int id;
};
// Larger value wins; equal values: lower id (the CPU's strict `>` scan from id 0).
struct ArgMaxOp {
    __device__ ArgMax operator()(ArgMax a, ArgMax b) const {
        return (a.v > b.v || (a.v == b.v && a.id < b.id)) ? a : b;
    }
};

// ---- 1. row statistics ------------------------------------------------------------

__global__ void sample_stats_kernel(RowStat *st, int32_t *tokens, float *logp_sampled, float *logp_model,
                                    const float *logits, int V, float inv_t, int greedy) {
    typedef cub::BlockReduce<double, SAMPLE_THREADS> RedD;
    typedef cub::BlockReduce<ArgMax, SAMPLE_THREADS> RedA;
    __shared__ union {
        typename RedD::TempStorage d;
        typename RedA::TempStorage a;
    } tmp;
    __shared__ ArgMax best_sh;
    int row = blockIdx.x;
    const float *x = logits + (size_t)row * V;

    ArgMax b = {-INFINITY, INT_MAX};
    for (int i = threadIdx.x; i < V; i += SAMPLE_THREADS) b = ArgMaxOp()(b, ArgMax{x[i], i});
    b = RedA(tmp.a).Reduce(b, ArgMaxOp());
    if (threadIdx.x == 0) best_sh = b;
    __syncthreads();
    b = best_sh;
    float m = b.v;

    double s1 = 0, st_ = 0;
    for (int i = threadIdx.x; i < V; i += SAMPLE_THREADS) {
        s1 += (double)sample_expf(x[i] - m);
        if (!greedy) st_ += (double)sample_expf((x[i] - m) * inv_t);
    }
    s1 = RedD(tmp.d).Sum(s1);  // valid in thread 0
    __syncthreads();           // tmp reused
    st_ = RedD(tmp.d).Sum(st_);
    if (threadIdx.x == 0) {
        st[row] = RowStat{m, b.id, st_, s1, 0ull};
        if (greedy) {
            tokens[row] = b.id;
            logp_sampled[row] = 0.0f;
            logp_model[row] = (float)((double)x[b.id] - m - log(s1));
        }
    }
}

// ---- block-wide walks in ascending position order ---------------------------------

struct ScanSmem {
    typename cub::BlockScan<double, SAMPLE_THREADS>::TempStorage scan;
    typename cub::BlockReduce<int, SAMPLE_THREADS>::TempStorage red;
    double last;
    int first;
};

// Walks positions 0..len-1 in order, SCAN_TILE at a time, keeping the running sum of w(j)
// (double). With search: returns the first position j with w(j) > 0 whose running sum
// including it passes target (sum > target when strict, sum >= target otherwise), or -1.
// Without search: returns -1 and sets *total to the whole sum. The same code computes the
// running sums in both modes, so a search sees exactly the sums a total pass added up.
// Every thread of the block calls it with the same arguments and gets the same result.
template <class W>
__device__ int scan_first(const W &w, int len, int search, double target, int strict, double *total,
                          ScanSmem &sm) {
    double carry = 0.0;
    for (int base = 0; base < len; base += SCAN_TILE) {
        int j0 = base + threadIdx.x * SCAN_ITEMS;
        double v[SCAN_ITEMS], incl[SCAN_ITEMS];
        for (int k = 0; k < SCAN_ITEMS; k++) v[k] = j0 + k < len ? w(j0 + k) : 0.0;
        cub::BlockScan<double, SAMPLE_THREADS>(sm.scan).InclusiveSum(v, incl);
        if (threadIdx.x == SAMPLE_THREADS - 1) sm.last = carry + incl[SCAN_ITEMS - 1];
        if (search) {
            int cand = INT_MAX;
            for (int k = SCAN_ITEMS - 1; k >= 0; k--) {
                double cum = carry + incl[k];
                if (j0 + k < len && v[k] > 0.0 && (strict ? cum > target : cum >= target)) cand = j0 + k;
            }
            int first = cub::BlockReduce<int, SAMPLE_THREADS>(sm.red).Reduce(cand, MinInt());
            if (threadIdx.x == 0) sm.first = first;
        }
        __syncthreads();
        carry = sm.last;
        int first = search ? sm.first : INT_MAX;
        __syncthreads();  // sm is reused by the next tile
        if (first != INT_MAX) return first;
    }
    if (total) *total = carry;
    return -1;
}

// The last position j < len with w(j) > 0, or -1 (same result in every thread).
template <class W>
__device__ int last_positive(const W &w, int len, ScanSmem &sm) {
    int best = -1;
    for (int j = threadIdx.x; j < len; j += SAMPLE_THREADS)
        if (w(j) > 0.0) best = j;
    best = cub::BlockReduce<int, SAMPLE_THREADS>(sm.red).Reduce(best, MaxInt());
    if (threadIdx.x == 0) sm.first = best;
    __syncthreads();
    best = sm.first;
    __syncthreads();
    return best;
}

// ---- 2. top-k / top-p on rows sorted by key ---------------------------------------

__global__ void sample_keys_kernel(u64 *keys, const float *logits, const RowStat *st, int r0, int rows, int V,
                                   float inv_t) {
    size_t total = (size_t)rows * V;
    for (size_t k = blockIdx.x * (size_t)blockDim.x + threadIdx.x; k < total; k += (size_t)gridDim.x * blockDim.x) {
        int r = (int)(k / V), i = (int)(k % V), row = r0 + r;
        float e = sample_expf((logits[(size_t)row * V + i] - st[row].m) * inv_t);
        keys[k] = sample_key(e, i);
    }
}

__global__ void sample_offsets_kernel(int *off, int rows, int V) {
    for (int r = blockIdx.x * blockDim.x + threadIdx.x; r <= rows; r += gridDim.x * blockDim.x) off[r] = r * V;
}

// Probability of the token at sorted position j: the CPU's p = e / sum.
struct SortedProb {
    const u64 *s;
    double sum;
    __device__ double operator()(int j) const { return (double)key_weight(s[j]) / sum; }
};

// Row r0 + blockIdx.x, sorted keys s[0..V): keeps positions [0, c) where c = n_k (top-k,
// n_k = V when off), cut further by top-p: position q is dropped when q > 0 and the mass
// before it >= top_p * mass(first n_k) — i.e. c = 1 + the first q whose running mass
// (including q) >= that limit.
__global__ void sample_cut_kernel(RowStat *st, const u64 *sorted, int r0, int V, int n_k, int use_p, float top_p) {
    __shared__ ScanSmem sm;
    int row = r0 + blockIdx.x;
    const u64 *s = sorted + (size_t)blockIdx.x * V;
    int c = n_k;
    if (use_p) {
        SortedProb w = {s, st[row].sum_t};
        double mass = 0;
        scan_first(w, n_k, 0, 0.0, 0, &mass, sm);
        int q = scan_first(w, n_k, 1, (double)top_p * mass, 0, (double *)NULL, sm);
        if (q >= 0) c = q + 1;
    }
    if (threadIdx.x == 0) st[row].cut = s[c - 1];
}

// ---- 3. the draw ------------------------------------------------------------------

// Weight of token i in the final distribution, 0 when it is not kept: the tempered
// exp e (unnormalised, as the CPU's untruncated path) or p = e / sum (as its truncated
// path) — the two paths of sampler_sample add different numbers, so this keeps both.
struct KeptWeight {
    const float *x;
    float m, inv_t;
    double sum;
    u64 cut;      // top-k / top-p: kept when key >= cut
    double thr;   // min-p: kept when p >= thr (0 when off)
    int normalise;
    __device__ double operator()(int i) const {
        float e = sample_expf((x[i] - m) * inv_t);
        if (sample_key(e, i) < cut) return 0.0;
        double p = (double)e / sum;
        if (p < thr) return 0.0;
        return normalise ? p : (double)e;
    }
};

__global__ void sample_draw_kernel(int32_t *tokens, float *logp_sampled, float *logp_model, const float *logits,
                                   const RowStat *st, const double *uniforms, int V, float inv_t, int normalise,
                                   float min_p) {
    __shared__ ScanSmem sm;
    int row = blockIdx.x;
    const float *x = logits + (size_t)row * V;
    RowStat r = st[row];
    // min-p's reference is the largest kept probability: the argmax's, which every rule
    // keeps (top-k and top-p keep sorted position 0; it passes its own min-p threshold).
    double thr = 0.0;
    if (min_p > 0.0f) thr = (double)min_p * ((double)sample_expf((x[r.amax] - r.m) * inv_t) / r.sum_t);
    KeptWeight w = {x, r.m, inv_t, r.sum_t, r.cut, thr, normalise};

    double total = 0;
    scan_first(w, V, 0, 0.0, 0, &total, sm);
    int tok = scan_first(w, V, 1, uniforms[row] * total, 1, (double *)NULL, sm);
    // u * total < total, but the block scan may add the last kept token's running sum in
    // another order than the total: then the CPU's answer, the last kept token.
    if (tok < 0) tok = last_positive(w, V, sm);
    if (tok < 0) tok = r.amax;  // unreachable: the argmax is kept with weight > 0
    if (threadIdx.x == 0) {
        tokens[row] = tok;
        logp_sampled[row] = (float)log(w(tok) / total);
        logp_model[row] = (float)((double)x[tok] - r.m - log(r.sum1));
    }
}

// ---- the op -----------------------------------------------------------------------

static size_t align256(size_t b) { return (b + 255) & ~(size_t)255; }

// CUB's temporary storage for sorting `rows` segments of V keys (a host-side query).
static size_t sort_temp_bytes(int rows, int V) {
    size_t bytes = 0;
    cub::DoubleBuffer<u64> q((u64 *)NULL, (u64 *)NULL);
    cudaCheck(cub::DeviceSegmentedRadixSort::SortKeysDescending(NULL, bytes, q, rows * V, rows, (int *)NULL,
                                                                (int *)NULL));
    return bytes;
}

// cfg is host memory; every other pointer is device memory.
void cuda_sample_rows(int32_t *tokens, float *logp_sampled, float *logp_model, const float *logits, int n, int V,
                      const OpsSampler *cfg, const double *uniforms) {
    if (n <= 0 || V <= 0) return;
    int greedy = cfg->temperature <= 0.0f;
    float inv_t = greedy ? 1.0f : 1.0f / cfg->temperature;
    int use_k = cfg->top_k > 0 && cfg->top_k < V;
    int use_p = cfg->top_p > 0.0f && cfg->top_p < 1.0f;
    int use_min_p = cfg->min_p > 0.0f;
    int sort = !greedy && (use_k || use_p);

    // Scratch: RowStat[n], then (sorting only) R+1 segment offsets, two key buffers of
    // R*V keys (the radix sort's double buffer) and CUB's temporary storage.
    int R = 0;
    size_t temp_bytes = 0, stat_bytes = align256((size_t)n * sizeof(RowStat)), off_bytes = 0, key_bytes = 0;
    if (sort) {
        R = V >= SORT_ELEMS ? 1 : SORT_ELEMS / V;
        if (R > n) R = n;
        temp_bytes = sort_temp_bytes(R, V);
        if (n % R) {  // the last, shorter chunk
            size_t last = sort_temp_bytes(n % R, V);
            temp_bytes = last > temp_bytes ? last : temp_bytes;
        }
        off_bytes = align256((size_t)(R + 1) * sizeof(int));
        key_bytes = align256((size_t)R * V * sizeof(u64));
    }
    char *base = (char *)cuda_big_scratch(stat_bytes + off_bytes + 2 * key_bytes + align256(temp_bytes));
    RowStat *st = (RowStat *)base;

    sample_stats_kernel<<<n, SAMPLE_THREADS, 0, cuda_stream()>>>(st, tokens, logp_sampled, logp_model, logits, V, inv_t,
                                                                 greedy);
    launchCheck();
    if (greedy) return;

    if (sort) {
        int *off = (int *)(base + stat_bytes);
        u64 *keys0 = (u64 *)(base + stat_bytes + off_bytes), *keys1 = (u64 *)((char *)keys0 + key_bytes);
        void *temp = (char *)keys1 + key_bytes;
        sample_offsets_kernel<<<grid_for((size_t)R + 1), CUDA_THREADS, 0, cuda_stream()>>>(off, R, V);
        launchCheck();
        int n_k = use_k ? cfg->top_k : V;
        for (int r0 = 0; r0 < n; r0 += R) {
            int rows = n - r0 < R ? n - r0 : R;
            sample_keys_kernel<<<grid_for((size_t)rows * V), CUDA_THREADS, 0, cuda_stream()>>>(keys0, logits, st, r0,
                                                                                               rows, V, inv_t);
            launchCheck();
            cub::DoubleBuffer<u64> keys(keys0, keys1);
            size_t tb = temp_bytes;
            cudaCheck(cub::DeviceSegmentedRadixSort::SortKeysDescending(temp, tb, keys, rows * V, rows, off,
                                                                        off + 1, 0, (int)sizeof(u64) * 8,
                                                                        cuda_stream()));
            sample_cut_kernel<<<rows, SAMPLE_THREADS, 0, cuda_stream()>>>(st, keys.Current(), r0, V, n_k, use_p,
                                                                          cfg->top_p);
            launchCheck();
        }
    }
    int normalise = use_k || use_p || use_min_p;  // the CPU's truncated path
    sample_draw_kernel<<<n, SAMPLE_THREADS, 0, cuda_stream()>>>(tokens, logp_sampled, logp_model, logits, st, uniforms,
                                                                V, inv_t, normalise, use_min_p ? cfg->min_p : 0.0f);
    launchCheck();
}
