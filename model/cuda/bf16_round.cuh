// model/cuda/bf16_round.cuh — fp32 -> bf16 rounding to nearest even, one function for the
// device kernels and their host-side checks (private to model/cuda/).
// Defines: bf16_bits_rne, bf16_convert_elem, cuda_to_bf16_2d (model/cuda/bf16_convert.cu).
// bf16 values are handled as their uint16_t bit patterns (cuBLAS reads them as CUDA_R_16BF).
#ifndef CRUCIBLE_MODEL_CUDA_BF16_ROUND_CUH
#define CRUCIBLE_MODEL_CUDA_BF16_ROUND_CUH

#include <stddef.h>
#include <stdint.h>
#include <string.h>

// The upper 16 bits of f rounded to nearest, ties to even (what __float2bfloat16_rn does):
// adding 0x7fff plus the lowest kept bit carries into the kept half exactly when the
// dropped half is above one half ulp, or equal to it with the kept half odd. Inf stays Inf
// (its dropped half is 0), finite values past the largest bf16 round to Inf as RNE says;
// NaN keeps its sign and top payload bits with the quiet bit set, so it stays a NaN even
// when its payload sits only in the dropped half (the carry would turn it into Inf or
// into the next exponent).
__host__ __device__ inline uint16_t bf16_bits_rne(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x0040u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

// Element i of the compact [rows, cols] copy of src read with row stride ld.
__host__ __device__ inline void bf16_convert_elem(uint16_t *dst, const float *src, size_t i, size_t cols, size_t ld) {
    dst[i] = bf16_bits_rne(src[(i / cols) * ld + i % cols]);
}

// dst [rows, cols] (compact) = bf16(src [rows, cols] with row stride ld >= cols), in stream
// order on the default stream (model/cuda/bf16_convert.cu).
void cuda_to_bf16_2d(uint16_t *dst, const float *src, size_t rows, size_t cols, size_t ld);

#endif
