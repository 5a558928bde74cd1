// model/cuda/param_shadow.cuh — bf16 shadows of declared parameter ranges for the bf16
// table's GEMMs (private to model/cuda/; Ops.declare_params in model/ops.h is the contract).
// Defines: cuda_declare_params, cuda_params_written, cuda_params_freed, cuda_gemm_bf16_shadow,
// cuda_bf16_weights_enabled, cuda_decode_shadow, cuda_decode_shadow_experts.
//
//  - A registry of up to PARAM_SHADOW_SLOTS declared ranges (policy, reference, reward
//    model, ...); a declaration beyond that is ignored (its GEMMs keep FAST_16BF). Each
//    range has a bf16 copy (allocated on first GEMM use, 2 bytes per parameter) and a
//    dirty flag. Declared ranges must not overlap (a programming error: cuda_fail).
//  - Every op of the tables that writes device memory a caller could point at parameters
//    (upload, copy, copy2d, zero, add, scale, adamw_update, a GEMM's C) calls
//    cuda_params_written first: each range overlapping the written bytes turns dirty.
//  - cuda_gemm_bf16 asks cuda_gemm_bf16_shadow first; it returns 0 (the caller runs the
//    FAST_16BF GEMM on the fp32 operands) unless CRUCIBLE_CUDA_BF16_WEIGHTS=1, an operand
//    lies wholly inside a declared range and the GEMM is large enough (param_shadow.cu
//    says why; =all: any size). Otherwise it refreshes a dirty shadow (one conversion over the range),
//    converts the other operand into a bf16 scratch this file owns (unless it is declared
//    too) and runs cublasGemmEx on bf16 A/B, fp32 C, CUBLAS_COMPUTE_32F, returning 1.
//  - cuda_decode_shadow (CRUCIBLE_CUDA_DECODE_BF16=1): the decode kernels (gemv_small,
//    moe_small, moe_indexed) read a declared weight from its bf16 copy instead (half the
//    bytes of a bandwidth-bound decode step), refreshed first when stale; not while a step
//    is being recorded and the copy is missing or stale (a recorded refresh would replay
//    every step): then they read the fp32 weight. When the copy finds no room on the
//    device, that range is read in fp32 from then on (a warning says so once).
//    A write that makes a fresh copy stale moves the context's epoch: a recorded step that
//    read it is then refused (model/cuda/graph.cu), not replayed on old weights.
//  - All in stream order on the legacy default stream, like the rest of the backend;
//    the scratch and shadows are freed by cudaFree (synchronising) when replaced.
#ifndef CRUCIBLE_MODEL_CUDA_PARAM_SHADOW_CUH
#define CRUCIBLE_MODEL_CUDA_PARAM_SHADOW_CUH

#include <stddef.h>
#include <stdint.h>

enum { PARAM_SHADOW_SLOTS = 8 };

void cuda_declare_params(const float *p, size_t n);
void cuda_params_written(const void *dst, size_t bytes);
// A GEMM's C [M rows of N floats, stride ldc] as written bytes.
void cuda_params_written_matrix(const float *C, int M, int N, int ldc);
void cuda_params_freed(const void *p);
// CRUCIBLE_CUDA_BF16_WEIGHTS: 0 when unset, empty or 0; 1 for 1 (large GEMMs); 2 for all
// (every GEMM with a declared operand, whatever its size); another value: cuda_fail.
int cuda_bf16_weights_enabled(void);
// The bf16 copy of X[0..extent) (floats) for a decode kernel, or NULL (read X): see above.
const uint16_t *cuda_decode_shadow(const float *X, size_t extent);
// The copies of a routed-experts call's stacked weights Wg, Wu [E, I, D] and Wd [E, D, I]:
// 1 with all three set, or 0 (read all three in fp32). The op is not told E: the first
// expert's extent I * D is asked for; a declared range is one whole allocation, which
// holds the whole stacked tensor.
static inline int cuda_decode_shadow_experts(const float *Wg, const float *Wu, const float *Wd, int I, int D,
                                             const uint16_t **g16, const uint16_t **u16, const uint16_t **d16) {
    size_t one = (size_t)I * (size_t)D;
    *g16 = cuda_decode_shadow(Wg, one);
    *u16 = *g16 ? cuda_decode_shadow(Wu, one) : NULL;
    *d16 = *u16 ? cuda_decode_shadow(Wd, one) : NULL;
    return *d16 != NULL;
}
int cuda_gemm_bf16_shadow(int transA, int transB, int M, int N, int K, float alpha, const float *A, int lda,
                          const float *B, int ldb, float beta, float *C, int ldc);

#endif
