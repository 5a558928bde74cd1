/* rollout/linear.h — y = x W^T for the decode path's few-row GEMMs.
 * Defines: rollout_linear.
 *
 * Why not always BLAS: with a handful of rows, a general SGEMM spends its time packing
 * the weight matrix (a full extra read and write of it per call) and, on CPUs newer than
 * the BLAS build knows, falls back to old SSE kernels. Here each output is a dot product
 * of an x row with a W row (both contiguous), W rows are streamed once for all M rows,
 * and the kernel is compiled for AVX-512 / AVX2 / baseline with the best picked at load
 * time. Threads split the OUTPUT columns only, so every value is summed in the same order
 * whatever M or the thread count: a row's result does not depend on the batch it is in.
 * Large M (prefill) goes to cblas_sgemm. */
#ifndef CRUCIBLE_ROLLOUT_LINEAR_H
#define CRUCIBLE_ROLLOUT_LINEAR_H

/* y[M, N] (row stride ldy) = x[M, K] (row stride ldx) W[N, K]^T, plus the old y when
 * accumulate != 0. */
void rollout_linear(float *y, int ldy, const float *x, int ldx, const float *W, int M, int N, int K,
                    int accumulate);

/* y[M, N] = x[M, K] B[K, N] (B row-major with row stride ldb), plus the old y when
 * accumulate != 0: the absorbed-query product q_nope W_UK and the attention-weighted sum
 * of latent rows. Every y element is summed over k in ascending order (batch-invariant;
 * calls that accumulate over consecutive k ranges give the bits of one call). */
void rollout_linear_nn(float *y, int ldy, const float *x, int ldx, const float *B, int ldb, int M,
                       int N, int K, int accumulate);

/* Rows at or below this count use the streaming kernel (so decode steps of up to this
 * many live samples are bitwise batch-invariant). */
enum { ROLLOUT_LINEAR_SMALL_M = 512 };

#endif
