/* tests/cuda/buffers.h — the host and backend buffers the GPU tests fill: random host
 * inputs, backend copies of host data, NaN-poisoned backend outputs. Backend-generic
 * (any Ops table). Defines: test_hrand, test_dput, test_dnan. */
#ifndef CRUCIBLE_TESTS_CUDA_BUFFERS_H
#define CRUCIBLE_TESTS_CUDA_BUFFERS_H

#include <stddef.h>

#include "core/rng.h"
#include "model/ops.h"

/* n floats (at least one allocated) drawn from N(0, scale^2) with r; the caller free()s. */
float *test_hrand(CrRng *r, size_t n, float scale);
/* A buffer of o holding x[0..bytes); bytes 0 gives a 4-byte buffer with nothing copied
 * (a valid pointer for empty inputs). The caller frees it with o->free. */
void *test_dput(const Ops *o, const void *x, size_t bytes);
/* A buffer of o of n floats, all NaN: an output poisoned before the op writes it. */
float *test_dnan(const Ops *o, size_t n);

#endif
