// model/cuda/weight_load.cuh — reading a weight element (or four) as fp32 from either
// storage: fp32 (the parameters themselves) or bf16 (the bit patterns of a declared range's
// copy, model/cuda/param_shadow.cuh: cuda_decode_shadow). The decode kernels (gemv_small,
// moe_small, moe_indexed) are templated on the weight type W and read through these, so the
// bf16 instance runs the same loop, in the same order, as the fp32 one on the rounded
// values: its results equal the fp32 kernel's on weights rounded to bf16, bit for bit (what
// the simulator and GPU tests check). Private to model/cuda/.
// Defines: wload1, wload4, WeightBits.
#ifndef CRUCIBLE_MODEL_CUDA_WEIGHT_LOAD_CUH
#define CRUCIBLE_MODEL_CUDA_WEIGHT_LOAD_CUH

#include <stdint.h>

typedef uint16_t WeightBits;  // one bf16 weight as stored in a parameter copy

// bf16 bits -> fp32 is exact: the bits become the upper half of the float.
__device__ __forceinline__ float bf16_lo(unsigned u) { return __uint_as_float(u << 16); }
__device__ __forceinline__ float bf16_hi(unsigned u) { return __uint_as_float(u & 0xffff0000u); }

// Element j of row p (read once, through the read-only path).
__device__ __forceinline__ float wload1(const float *p, int j) { return __ldg(p + j); }
__device__ __forceinline__ float wload1(const WeightBits *p, int j) { return bf16_lo((unsigned)__ldg(p + j)); }

// Elements 4j .. 4j+3 of row p: one 16-byte load (fp32, p 16-byte aligned) or one 8-byte
// load (bf16, p 8-byte aligned; little-endian: element 4j is the low half of .x).
__device__ __forceinline__ float4 wload4(const float *p, int j) { return __ldg(reinterpret_cast<const float4 *>(p) + j); }
__device__ __forceinline__ float4 wload4(const WeightBits *p, int j) {
    uint2 v = __ldg(reinterpret_cast<const uint2 *>(p) + j);
    return make_float4(bf16_lo(v.x), bf16_hi(v.x), bf16_lo(v.y), bf16_hi(v.y));
}

// Whether rows of W at p (and at every row stride ld elements from it) take wload4.
__host__ __device__ inline int wload4_ok(const float *p, long ld) { return ((uintptr_t)p & 15u) == 0 && ld % 4 == 0; }
__host__ __device__ inline int wload4_ok(const WeightBits *p, long ld) { return ((uintptr_t)p & 7u) == 0 && ld % 4 == 0; }

#endif
