// model/cuda/param_shadow.cu — bf16 shadows of the declared parameter ranges and the GEMM
// route that reads them (model/cuda/param_shadow.cuh is the contract).
//
// Why: cuBLAS ran bf16-STORED operands at 727 TFLOP/s against 407 for fp32-stored operands
// with COMPUTE_32F_FAST_16BF at 8192^3 on the H100, and 0.117 against 0.159 ms at
// 4096x3072x2048 (bench/RESULTS.md): FAST_16BF reads 4-byte operands and rounds them inside
// the GEMM. The weights change once per optimizer step but are read by many GEMMs (forward,
// the backward's dX, every micro-batch, the rollouts), so rounding them once per step into a
// bf16 copy costs one pass over the parameters (4 B read + 2 B written each) per step.
// The other operand (an activation) has no such reuse: it is converted per GEMM.
//
// Measured on the H100 (2026-11-23, bench/RESULTS.md): 646-661 against 399-406 TFLOP/s at
// 8192^3, but a whole 2-layer Lite training step gains nothing (64.6 vs 66.1 ms): the
// refresh after each AdamW pass costs what the GEMMs save, so it stays opt-in; writing
// the copy inside the AdamW kernel would remove the re-read. The model behind the rule:
// with the weight's free dimension F_w (N when B is the weight, M when A is), the activation's F_a and the
// shared K: the measured saving is ~8e-16 s per flop (42 us over 2*4096*3072*2048 flops,
// 1.1e-15 at 8192^3), so 2 F_a F_w K * 8e-16 s; converting the activation costs F_a K
// elements * 6 B at ~2.5 TB/s = F_a K * 2.4e-12 s plus a launch (~4 us). The bandwidth
// term alone breaks even at F_w ~ 1100-1500, the launch at M N K ~ 2.5e9. Hence the rule:
// M N K >= 2^30 and F_w >= 1024, near break-even at the edge and a clear gain for the
// DeepSeek-V2-Lite training shapes (q/kv_b/o projections, shared experts, LM head chunks:
// M N K >= 2^33 with F_w >= 2048); the routed experts' gate/up GEMMs (F_w = 1408, rows per
// expert ~384) sit near the edge. Decode GEMMs (a few rows) stay on FAST_16BF.
// CRUCIBLE_CUDA_BF16_WEIGHTS=all drops the rule (every GEMM with a declared operand reads
// its shadow): the tests' tiny models, and timing the rule against no rule.
//
// GEMMs with no declared operand (the weight gradients dW = dY^T X, attention's chunks)
// keep FAST_16BF: both operands would need a conversion used once (6 B per element each,
// (F_a + F_w) K elements), which by the same estimate only pays for the largest shapes,
// and those are few per step; the verified path stays.
#include "model/cuda/bf16_round.cuh"
#include "model/cuda/cuda_ops.cuh"
#include "model/cuda/param_shadow.cuh"

#include <string.h>

typedef struct Shadow {
    const float *base;  // NULL: free slot
    size_t n;           // floats
    uint16_t *bf;       // [n] bf16 copy, NULL until the first GEMM reads it
    int dirty;
    int no_room;        // the decode copy could not be allocated: decode reads fp32
} Shadow;

// The registry: module state of the process-wide backend (one host thread, as the
// context); shadows live as long as their ranges.
static struct {
    Shadow s[PARAM_SHADOW_SLOTS];
    uint16_t *act;  // bf16 copy of the non-declared operand of the last shadow GEMM
    size_t act_elems;
    long refreshes, gemms;  // counters for tests and benchmarks
    long decode_reads;      // weights handed to decode kernels as bf16 copies (per call and weight)
} g_ps;

enum { SHADOW_MIN_LOG2_MNK = 30, SHADOW_MIN_WEIGHT_DIM = 1024 };

static int ranges_overlap(const char *a, size_t an, const char *b, size_t bn) { return a < b + bn && b < a + an; }

// Releases a copy: the epoch moves (a recorded step may read it); while a step is being
// recorded the cudaFree (synchronising, not allowed in a capture) waits for its end.
static void release_copy(uint16_t *bf) {
    CudaCtx *c = cuda_ctx();
    if (cuda_recording(c)) cuda_defer(c, bf, 0, 1);
    else cudaCheck(cudaFree(bf));
    c->epoch++;
}

// A fresh copy turning stale moves the epoch: a recorded step may have read it (decode).
static void mark_dirty(Shadow *s) {
    if (s->bf && !s->dirty) cuda_ctx()->epoch++;
    s->dirty = 1;
}

void cuda_declare_params(const float *p, size_t n) {
    if (!p || !n) return;
    Shadow *free_slot = NULL;
    for (int i = 0; i < PARAM_SHADOW_SLOTS; i++) {
        Shadow *s = &g_ps.s[i];
        if (!s->base) {
            if (!free_slot) free_slot = s;
            continue;
        }
        if (s->base == p) {  // declared again: maybe another size; the copy is rebuilt
            mark_dirty(s);
            if (s->n != n) {  // a copy may fit now (or no longer): tried again on first use
                if (s->bf) release_copy(s->bf);
                s->bf = NULL;
                s->no_room = 0;
            }
            s->n = n;
            return;
        }
        if (ranges_overlap((const char *)s->base, sizeof(float) * s->n, (const char *)p, sizeof(float) * n))
            cuda_fail("declare_params", "range overlaps a declared parameter range", __FILE__, __LINE__);
    }
    if (!free_slot) return;  // registry full: this range's GEMMs keep FAST_16BF
    free_slot->base = p;
    free_slot->n = n;
    free_slot->bf = NULL;
    free_slot->dirty = 1;
    free_slot->no_room = 0;
}

void cuda_params_written(const void *dst, size_t bytes) {
    if (!dst || !bytes) return;
    for (int i = 0; i < PARAM_SHADOW_SLOTS; i++) {
        Shadow *s = &g_ps.s[i];
        if (s->base && ranges_overlap((const char *)s->base, sizeof(float) * s->n, (const char *)dst, bytes))
            mark_dirty(s);
    }
}

void cuda_params_written_matrix(const float *C, int M, int N, int ldc) {
    if (M <= 0 || N <= 0) return;
    cuda_params_written(C, sizeof(float) * ((size_t)(M - 1) * (size_t)ldc + (size_t)N));
}

void cuda_params_freed(const void *p) {
    if (!p) return;
    for (int i = 0; i < PARAM_SHADOW_SLOTS; i++) {
        Shadow *s = &g_ps.s[i];
        if (s->base != p) continue;
        if (s->bf) release_copy(s->bf);
        memset(s, 0, sizeof *s);
    }
}

int cuda_bf16_weights_enabled(void) {
    static const char *const v[3] = {"0", "1", "all"};
    return cuda_env_pick("CRUCIBLE_CUDA_BF16_WEIGHTS", v, 3);
}

// The declared range holding the whole stored operand (rows x cols, row stride ld), or NULL.
static Shadow *range_of(const float *X, size_t extent) {
    for (int i = 0; i < PARAM_SHADOW_SLOTS; i++) {
        Shadow *s = &g_ps.s[i];
        if (s->base && X >= s->base && X < s->base + s->n && (size_t)(X - s->base) + extent <= s->n) return s;
    }
    return NULL;
}
static Shadow *shadow_of(const float *X, int rows, int cols, int ld) {
    return range_of(X, (size_t)(rows - 1) * (size_t)ld + (size_t)cols);
}

// 1 when a GEMM of this shape with the weight's free dimension fw pays for the conversion
// of its other operand (the rule above); fw < 0: both operands declared, no conversion.
static int shadow_pays(int M, int N, int K, int fw) {
    double mnk = (double)M * (double)N * (double)K;
    if (mnk < (double)(1ull << SHADOW_MIN_LOG2_MNK)) return 0;
    return fw < 0 || fw >= SHADOW_MIN_WEIGHT_DIM;
}

static const uint16_t *shadow_bits(Shadow *s, const float *X) {
    if (!s->bf) {
        cudaCheck(cudaMalloc((void **)&s->bf, sizeof(uint16_t) * s->n));
        s->dirty = 1;
    }
    if (s->dirty) {
        cuda_to_bf16_2d(s->bf, s->base, 1, s->n, s->n);
        s->dirty = 0;
        g_ps.refreshes++;
    }
    return s->bf + (X - s->base);
}

// Compact bf16 copy of the stored operand (rows x cols, stride ld) in the scratch.
static const uint16_t *activation_bits(const float *X, int rows, int cols, int ld) {
    size_t n = (size_t)rows * (size_t)cols;
    if (n > g_ps.act_elems) {
        if (g_ps.act) cudaCheck(cudaFree(g_ps.act));  // synchronises: no GEMM still reads it
        g_ps.act = NULL;
        g_ps.act_elems = 0;
        cudaCheck(cudaMalloc((void **)&g_ps.act, sizeof(uint16_t) * n));
        g_ps.act_elems = n;
    }
    cuda_to_bf16_2d(g_ps.act, X, (size_t)rows, (size_t)cols, (size_t)ld);
    return g_ps.act;
}

static int decode_bf16_enabled(void) {
    static const char *const v[2] = {"0", "1"};
    return cuda_env_pick("CRUCIBLE_CUDA_DECODE_BF16", v, 2);
}

const uint16_t *cuda_decode_shadow(const float *X, size_t extent) {
    if (!X || !extent || !decode_bf16_enabled()) return NULL;
    Shadow *s = range_of(X, extent);
    if (!s || s->no_room) return NULL;
    if (cuda_recording(cuda_ctx()) && (!s->bf || s->dirty)) return NULL;  // no refresh inside a recording
    if (!s->bf) {
        // Made lazily, after the caller's own buffers: it must leave headroom for what they
        // allocate later (a step's logits, scratch growth), max(1 GiB, 1/32 of the device).
        size_t need = sizeof(uint16_t) * s->n, free_b = 0, total_b = 0;
        cudaError_t err = cudaMemGetInfo(&free_b, &total_b);
        size_t headroom = total_b / 32 > ((size_t)1 << 30) ? total_b / 32 : ((size_t)1 << 30);
        if (err == cudaSuccess) err = free_b >= need + headroom ? cudaMalloc((void **)&s->bf, need) : cudaErrorMemoryAllocation;
        if (err != cudaSuccess) {  // e.g. fp32 weights that fill the device: keep reading them
            (void)cudaGetLastError();  // clear it: the next launchCheck must not see it
            s->bf = NULL;
            s->no_room = 1;
            fprintf(stderr,
                    "crucible: CRUCIBLE_CUDA_DECODE_BF16: no room for a bf16 copy of %zu parameters (%.2f GB + %.2f GB "
                    "headroom, %.2f GB free: %s); decode reads them in fp32\n",
                    s->n, need / 1e9, headroom / 1e9, free_b / 1e9, cudaGetErrorString(err));
            return NULL;
        }
        s->dirty = 1;
    }
    g_ps.decode_reads++;
    return shadow_bits(s, X);
}

int cuda_gemm_bf16_shadow(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc) {
    int mode = M > 0 && N > 0 && K > 0 ? cuda_bf16_weights_enabled() : 0;
    if (!mode) return 0;
    // Stored shapes (row-major): A is M x K, or K x M when transposed; B is K x N or N x K.
    int ar = transA ? K : M, ac = transA ? M : K, br = transB ? N : K, bc = transB ? K : N;
    Shadow *sa = shadow_of(A, ar, ac, lda), *sb = shadow_of(B, br, bc, ldb);
    if (!sa && !sb) return 0;
    if (mode == 1 && !shadow_pays(M, N, K, sa && sb ? -1 : sb ? N : M)) return 0;
    const uint16_t *a16, *b16;
    int lda16 = lda, ldb16 = ldb;
    if (sa) {
        a16 = shadow_bits(sa, A);
    } else {
        a16 = activation_bits(A, ar, ac, lda);
        lda16 = ac;
    }
    if (sb) {
        b16 = shadow_bits(sb, B);
    } else {
        b16 = activation_bits(B, br, bc, ldb);
        ldb16 = bc;
    }
    // Row-major C = op(A) op(B) as column-major C^T = op(B)^T op(A)^T (cuda_gemm_ex's mapping).
    cublasCheck(cublasGemmEx(cuda_ctx()->blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N,
                             N, M, K, &alpha, b16, CUDA_R_16BF, ldb16, a16, CUDA_R_16BF, lda16, &beta, C, CUDA_R_32F,
                             ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    cuda_params_written_matrix(C, M, N, ldc);  // after the refresh: C in a range makes it stale
    g_ps.gemms++;
    return 1;
}

extern "C" void ops_cuda_param_shadow_counts(long *refreshes, long *gemms) {
    if (refreshes) *refreshes = g_ps.refreshes;
    if (gemms) *gemms = g_ps.gemms;
}
extern "C" long ops_cuda_decode_bf16_reads(void) { return g_ps.decode_reads; }
