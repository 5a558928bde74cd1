/* tests/cuda/buffers.c — see buffers.h */
#include "tests/cuda/buffers.h"

#include <math.h>
#include <stdlib.h>

#include "core/alloc.h"

float *test_hrand(CrRng *r, size_t n, float scale) {
    float *x = cr_malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = (float)(cr_rng_normal(r) * scale);
    return x;
}

void *test_dput(const Ops *o, const void *x, size_t bytes) {
    void *d = o->alloc(bytes ? bytes : 4);
    if (bytes) o->upload(d, x, bytes);
    return d;
}

float *test_dnan(const Ops *o, size_t n) {
    float *x = cr_malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    float *d = test_dput(o, x, sizeof(float) * n);
    free(x);
    return d;
}
