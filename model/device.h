/* model/device.h — the compute backend named by a `--device` value.
 * Defines: DeviceKind, device_parse, device_ops, device_open, device_default,
 *          device_check_rollout, DEVICE_FLAG_HELP.
 *
 * Values (case-sensitive):
 *   cpu        ops_cpu(): fp32, OpenBLAS, OpenMP — the reference path.
 *   cuda       ops_cuda_bf16(): GEMMs on bf16 tensor cores with fp32 accumulation, fp32
 *              storage, master weights and AdamW moments (model/cuda/ops_cuda.h).
 *   cuda-fp32  ops_cuda(): fp32 GEMMs, the parity mode.
 *   auto       cuda when this build has CUDA (nvcc found at build time) and the process
 *              sees a CUDA device, else cpu.
 * CONTRACT
 *  - device_parse never touches CUDA. device_ops / device_open may initialise the CUDA
 *    runtime and create its context: a program that spawns processes (the sandbox
 *    pool) must do that BEFORE calling them (fork/spawn after CUDA init is unsafe).
 *  - Errors name the flag: an unknown value, or cuda asked of a build without CUDA
 *    (NO_CUDA=1 / no nvcc) or of a machine where no CUDA device is visible. */
#ifndef CRUCIBLE_MODEL_DEVICE_H
#define CRUCIBLE_MODEL_DEVICE_H

#include "core/error.h"

struct Ops;

typedef enum DeviceKind { DEVICE_AUTO, DEVICE_CPU, DEVICE_CUDA, DEVICE_CUDA_FP32 } DeviceKind;

/* One line for a command's --help table. */
#define DEVICE_FLAG_HELP \
    "compute backend: auto | cpu | cuda (bf16 GEMMs) | cuda-fp32 (default $CRUCIBLE_DEVICE, else auto: cuda when a GPU is visible)"

/* "cpu" | "cuda" | "cuda-fp32" | "auto" -> *kind. NULL means "cpu" (library default). */
int device_parse(const char *value, DeviceKind *kind, CrError *e);
/* The backend table for kind (auto resolved now); NULL + e when it cannot be had. */
const struct Ops *device_ops(DeviceKind kind, CrError *e);
/* device_parse then device_ops. */
const struct Ops *device_open(const char *value, CrError *e);
/* The CLI's default --device value: $CRUCIBLE_DEVICE when set and non-empty, else
 * "auto". (The test runner sets CRUCIBLE_DEVICE=cpu so that the CPU suite stays on the
 * CPU on a machine with a GPU; GPU tests ask for cuda explicitly.) */
const char *device_default(void);
/* 0 when the rollout engine can generate on ops: the CPU backend, or one that fills the
 * entries rollout/forward_ops.c needs (mla_cache_scatter, mla_decode_attention,
 * gemm_batched, copy2d). Else -1 and an error naming --device (a GPU table without them
 * would otherwise have the host engine read device memory). */
int device_check_rollout(const struct Ops *ops, CrError *e);
/* The backend a generating trainer uses: `given` when not NULL, else device_ops(kind);
 * then device_check_rollout. NULL + e on failure. Call it after spawning any worker
 * processes (it may initialise CUDA). */
const struct Ops *device_ops_for_rollout(DeviceKind kind, const struct Ops *given, CrError *e);

#endif
