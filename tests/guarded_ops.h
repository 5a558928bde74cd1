/* tests/guarded_ops.h — a CPU backend whose memory the host cannot touch.
 * Defines: guarded_ops, guarded_ops_live_allocations.
 *
 * Why: the GPU path (trainers, rollout, checkpoints) must reach backend memory only
 * through the Ops table; a stray host dereference of a device pointer is a crash on the
 * GPU that no CPU test would see. This table runs the CPU ops, but every buffer it
 * allocates is mapped PROT_NONE except while one of its own ops runs: host code that
 * reads or writes backend memory directly dies with SIGSEGV (the test fails), exactly
 * where it would be wrong on a GPU. Results equal ops_cpu()'s (same kernels).
 * sample_rows is NULL (host sampling, like the CPU table). Test support only: one test
 * per process (the runner forks), not thread-safe. */
#ifndef CRUCIBLE_TESTS_GUARDED_OPS_H
#define CRUCIBLE_TESTS_GUARDED_OPS_H

#include "model/ops.h"

const Ops *guarded_ops(void);
/* Buffers allocated and not yet freed (a leak check). */
int guarded_ops_live_allocations(void);

#endif
