/* model/sample_exp.h — the exponential of the token sampler, as one scalar function for
 * host and device code (model/cuda/sample.cu, tests).
 * Defines: sample_expf, SAMPLE_EXP_MIN_ARG.
 *
 * rollout/sampler.c (the specification of sampling) computes exp((logit - max) / T) with
 * Cephes' expf on 16 AVX-512 lanes: clamp the argument at -87.33654, range reduction by
 * ln 2 split in two constants, degree-6 polynomial, scale by 2^n. This is the same
 * sequence of float operations one lane at a time (every multiply-add an explicit fmaf,
 * the rounding to the nearest integer rintf, the scaling ldexpf), so on a CPU with
 * AVX-512 and on a GPU the sampler sees bit-identical probabilities: same ties, same
 * sort order, same kept set. Consequences of the clamp, kept on purpose: no token's
 * weight is ever 0 (a -inf logit weighs about 1.2e-38), and exp(0) is exactly 1. */
#ifndef CRUCIBLE_MODEL_SAMPLE_EXP_H
#define CRUCIBLE_MODEL_SAMPLE_EXP_H

#include <math.h>

#include "model/hd.h"

#define SAMPLE_EXP_MIN_ARG (-87.33654f)

static inline CR_HD float sample_expf(float x) {
    x = fmaxf(x, SAMPLE_EXP_MIN_ARG);  /* NaN -> the clamp, as _mm512_max_ps(NaN, c) */
    float n = rintf(x * 1.44269504088896341f);  /* round half to even, as roundscale */
    float r = fmaf(-n, 0.693359375f, x);
    r = fmaf(-n, -2.12194440e-4f, r);
    float p = 1.9875691500e-4f;
    p = fmaf(p, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    float pr = p * r, r1 = r + 1.0f;
    float y = fmaf(pr, r, r1);
    return ldexpf(y, (int)n);
}

#endif
