/* model/cuda/ops_cuda.h — the CUDA backend of model/ops.h (C-compatible header).
 * Defines: ops_cuda, ops_cuda_bf16, ops_cuda_flash, ops_cuda_bf16_wmma, ops_cuda_adamw_update,
 *          ops_cuda_sumsq, crucible_cuda_device_count.
 *
 * CONTRACT
 *  - Same semantics as ops_cpu() for every entry of Ops (the model/cpu/ sources are the
 *    specification); every float / int32 pointer argument is device memory, except
 *    the arguments model/ops.h marks "host" (count_nonfinite's *count, offsets_host).
 *  - Storage is fp32 everywhere (the Ops contract is float*). Two tables differ only in
 *    how GEMMs compute:
 *      ops_cuda()      fp32 GEMMs (cuBLAS, CUBLAS_COMPUTE_32F: no TF32), the parity mode;
 *      ops_cuda_bf16() GEMMs on bf16 tensor cores with fp32 accumulation
 *                      (CUBLAS_COMPUTE_32F_FAST_16BF: cuBLAS rounds the fp32 operands
 *                      to bf16 inside the GEMM); everything else as ops_cuda().
 *    Attention in both: scores for chunks of query rows through batched cuBLAS GEMMs
 *    (model/cuda/attention_gemm.cu; a context-owned scratch of H x C x max_seqlen floats,
 *    C <= 1024 query rows). ops_cuda_flash() is ops_cuda() with the fused fp32 flash
 *    kernels instead (model/cuda/attention.cu: no scratch, much slower).
 *    The bf16 table reads CRUCIBLE_CUDA_ATTENTION on every attention call: gemm (the
 *    default), wmma (tensor-core flash kernels, model/cuda/attention_wmma.cu: bf16
 *    tiles in shared memory, fp32 softmax and accumulation, no score scratch; NOT yet
 *    run on a GPU) or flash (the fused fp32 kernels); another value is an error.
 *    ops_cuda_bf16_wmma() is ops_cuda_bf16() with the wmma kernels always.
 *    GEMMs C = alpha A B^T + beta C with 1..8 rows in A (decode steps' linear layers) run
 *    on the backend's own kernel in both tables (model/cuda/gemv_small.cu: one warp per
 *    output column, weights read once, fp32 accumulation, no cuBLAS call: cublasGemmEx cost
 *    ~0.5 ms of host time per call at those shapes on the H100); CRUCIBLE_CUDA_GEMV=0, read
 *    per call, sends them to cuBLAS as before.
 *    moe_experts_small (model/cuda/moe_small.cu: no GEMM, no host synchronisation) is the
 *    same fp32 kernels in all four tables. CRUCIBLE_CUDA_MOE_SMALL, read on every call,
 *    selects them: slots (each slot reads its expert's weights), indexed
 *    (model/cuda/moe_indexed.cu: the slots grouped by expert on the device, each selected
 *    expert's weights read once per call, still no host synchronisation) or auto (unset
 *    or empty: the default; slots up to 64 slots, where they are faster, indexed above);
 *    another value is an error. All three verified on the H100 (2026-11-23).
 *    moe_experts_small_slots answers 4096 under auto and indexed (model.c then takes the
 *    op up to 4096 slots, e.g. batch 682 at top-6, instead of the dispatched path's
 *    per-expert GEMMs and host sync; CRUCIBLE_MOE_SMALL_SLOTS still overrides), 0 under
 *    slots (model.c's default, 64). The indexed kernels use the context's big scratch:
 *    (2 N K + 2) int32 + N K D floats.
 *  - CRUCIBLE_CUDA_DECODE_BF16=1 (read per call; opt-in, NOT yet run on a GPU): the
 *    few-row kernels — the GEMV above (GEMMs of 1..8 rows: a decode step's linear layers
 *    and LM head) and moe_experts_small (slots and indexed: decode's routed experts, and
 *    prefill's while under the slot threshold) — read a weight inside a declared parameter
 *    range from a bf16 copy of the range (2 bytes per parameter, made on first use and
 *    refreshed after each write, as CRUCIBLE_CUDA_BF16_WEIGHTS's; model/cuda/param_shadow.cu)
 *    instead of its fp32 values: half the bytes of a bandwidth-bound decode step, the
 *    same loops and fp32 accumulation on the rounded weights (bit-identical to the fp32
 *    kernels on weights that bf16 holds exactly: simulator and GPU tests). Both tables.
 *    The switch is per process, not per caller: any forward of <= 8 rows (scoring a short
 *    sequence, a training step of <= 8 tokens, whose backward reads fp32) reads the copies
 *    too; set it for sampling. The copy costs 2 bytes per parameter of device memory and is
 *    made on first use only with max(1 GiB, 1/32 of the device) left beside it; otherwise
 *    the range is read in fp32 and a warning says so once. Larger GEMMs keep their route.
 *  - moe_route_forward: one thread per token; CRUCIBLE_CUDA_ROUTE=warp (read per call)
 *    one warp per token, the same bits (opt-in, NOT yet run on a GPU; simulator-checked
 *    bit for bit against model/moe_select.h).
 *  - mla_decode_attention splits the context into blocks of 256 positions;
 *    CRUCIBLE_CUDA_MLA_SPLIT=32/64/128 (read per call) makes them shorter and more
 *    numerous (opt-in, NOT yet timed on a GPU; simulator-checked).
 *  - Recorded steps (Ops.step_*, model/cuda/graph.cu): under CRUCIBLE_CUDA_GRAPHS=1 (read
 *    per call; off with CRUCIBLE_CUDA_BF16_WEIGHTS) the rollout's decode steps are captured
 *    as CUDA graphs (every op issues its work to cuda_stream(): the legacy stream, or the
 *    capture stream while recording) and replayed with one launch; a step is refused once
 *    any allocation, free or scratch growth happened since it was recorded, or once one of
 *    the switches that pick decode kernels (GEMV, MOE_SMALL, ROUTE, MLA_SPLIT,
 *    DECODE_BF16, CRUCIBLE_MOE_SMALL_SLOTS) changed, or a bf16 copy it may read turned stale; an allocation while recording is made at once and
 *    its zero-fill (or a free) deferred to the end of the recording, which is dropped. Opt-in, NOT
 *    yet run on a GPU (its host logic is checked on the CPU by a recording fake backend,
 *    tests/rollout/test_forward_ops_steps.c; the GPU test cuda_rollout_graphs_match_direct
 *    SKIPs here).
 *  - All work runs in order on the legacy default stream; upload/download/
 *    count_nonfinite synchronise with the host, and so do attention (it reads
 *    cu_seqlens on the host), a growth of the context scratch and each grouped
 *    experts' GEMM list (its pointer arrays go up with a synchronous cudaMemcpy).
 *  - The routed experts' GEMMs (model/cuda/moe_grouped.cu) run by default on 4 side
 *    streams forked from and joined back into the default stream within the op (the
 *    fastest way on the H100, bench/RESULTS.md); CRUCIBLE_CUDA_EXPERTS=loop (one after
 *    another), grouped (one cuBLAS grouped GEMM per pass) or auto (grouped where cuBLAS
 *    supports the compute type — fp32 —, else streams) select another, per call;
 *    CRUCIBLE_CUDA_EXPERT_STREAMS=1..8 sets the number of side streams.
 *  - One process-wide context (cuBLAS handle, scratch buffers) created on first use and
 *    kept until exit: the backend is not thread-safe; call it from one host thread.
 *    Every cuBLAS handle of the backend (the context's, the side streams') has a workspace
 *    of its own, 32 MiB (CRUCIBLE_CUDA_CUBLAS_WORKSPACE_MIB=0..1024, read when the handle is
 *    made; 0: cuBLAS's own pool, as before 2026-11-23): cuBLAS then allocates nothing per
 *    call or per recorded step (set after the third lease: NOT yet run on a GPU).
 *  - Scratch beyond the caller's: attention keeps H x C x max_seqlen score floats per
 *    buffer (two in the backward); the LM head uses 4096 x 8192 logit chunks (128 MiB)
 *    of its own and leaves the caller's ops_lmhead_scratch_floats() buffer unused (the
 *    bf16 table adds bf16 copies of a chunk's operands and dlogits, 64 MiB + 24 KiB x D,
 *    its LM-head GEMMs then reading bf16 rounded once per chunk; CRUCIBLE_CUDA_LMHEAD=
 *    fast16bf keeps fp32 operands through FAST_16BF instead, 2x slower on the H100);
 *    the wmma attention (CRUCIBLE_CUDA_ATTENTION=wmma, ops_cuda_bf16_wmma) keeps bf16
 *    copies of its operands: 2 x N x H x (2 dqk + dv) bytes forward, + 2 N H dv and
 *    4 N H (D = rowsum(dO O)) backward;
 *    sample_rows (model/cuda/sample.cu) 32 bytes per row and, with top-k or top-p, the
 *    sort keys of up to 2^23 logits at a time (2 x 64 MiB) plus CUB's temporary storage.
 *    sample_rows reads its OpsSampler from host memory and copies nothing to the host.
 *  - declare_params (all four tables) registers parameter ranges; the bf16 tables with
 *    CRUCIBLE_CUDA_BF16_WEIGHTS=1 then run large GEMMs that read a declared range on a
 *    bf16 copy of it (2 bytes per parameter, refreshed once after each write to the
 *    range) and a bf16 copy of the other operand (a scratch of its size), with bf16
 *    operands, fp32 accumulation and output (model/cuda/param_shadow.cu; =all: GEMMs of
 *    any size, for tests and timing the size rule). Unset or 0 (the
 *    default) keeps FAST_16BF on the fp32 operands. Both verified on the H100
 *    (2026-11-23); the copies double a large GEMM's rate but their refresh after each
 *    AdamW costs a 2-layer Lite training step what the GEMMs save (bench/RESULTS.md).
 *  - Determinism: no floating-point atomics; every reduction has a fixed order for given
 *    shapes, so a run repeats bit for bit on the same GPU and cuBLAS version.
 *  - ops_cuda() / ops_cuda_bf16() return NULL when no CUDA device is usable (no driver,
 *    no GPU). A failing CUDA or cuBLAS call after that is a programming or hardware
 *    error: it is reported with file and line and the process exits. */
#ifndef CRUCIBLE_MODEL_CUDA_OPS_CUDA_H
#define CRUCIBLE_MODEL_CUDA_OPS_CUDA_H

#include <stddef.h>

#include "model/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number of CUDA devices this process sees (0 without driver or GPU). */
int crucible_cuda_device_count(void);

const Ops *ops_cuda(void);
const Ops *ops_cuda_bf16(void);
const Ops *ops_cuda_flash(void);
const Ops *ops_cuda_bf16_wmma(void);
/* 1 when the wmma attention kernels take head dims dqk / dv on this device (multiples of
 * 16, dqk <= 192, dv <= 128, shared memory within the device's limit); otherwise the
 * wmma selections run the gemm path instead. 0 without a usable device. */
int ops_cuda_attention_wmma_supported(int dqk, int dv);

/* Fused AdamW on device buffers, the same per-element update as adamw_update()
 * (model/adamw.h): bias corrections computed in double on the host, applied in fp32. */
void ops_cuda_adamw_update(float beta1, float beta2, float eps, float weight_decay, long t, float lr,
                           int decay, float *p, const float *g, float *m, float *v, size_t n);
/* Sum of squares of x[0..n) in double, fixed reduction order (global grad norm^2). */
double ops_cuda_sumsq(const float *x, size_t n);

/* Parameter shadows (declare_params, CRUCIBLE_CUDA_BF16_WEIGHTS=1; model/cuda/param_shadow.cu):
 * bf16 refreshes of declared ranges and GEMMs that read a shadow, since the process began. */
void ops_cuda_param_shadow_counts(long *refreshes, long *gemms);
/* Weights handed to the decode kernels (GEMV, routed experts: one per call and weight) as
 * bf16 parameter copies under CRUCIBLE_CUDA_DECODE_BF16=1, since the process began. */
long ops_cuda_decode_bf16_reads(void);

#ifdef __cplusplus
}
#endif

#endif
