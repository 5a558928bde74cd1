// tests/cuda/sim/sim_check.h — what the expert simulator tests (sim_moe_small.cc,
// sim_moe_indexed.cc) share: a seeded uniform source and the comparison of a kernel's
// output with a double-precision reference, counted into g_checks / g_failed. Include
// once per simulator program, after defining SIM_RNG_SEED.
#ifndef CRUCIBLE_TESTS_CUDA_SIM_CHECK_H
#define CRUCIBLE_TESTS_CUDA_SIM_CHECK_H

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <vector>

#ifndef SIM_RNG_SEED
#error "define SIM_RNG_SEED before including sim_check.h"
#endif

static uint64_t g_rng = SIM_RNG_SEED;
static double urand() {  // [0, 1), xorshift64
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static int g_failed, g_checks;

// Relative norm-wise error (< 1e-5) and the worst element error relative to the
// reference's largest magnitude (< 1e-4); every output finite.
static void compare(const char *what, const std::vector<float> &got, const std::vector<double> &ref) {
    double num = 0, den = 0, worst = 0, scale = 1e-30;
    bool finite = true;
    for (size_t i = 0; i < ref.size(); i++) scale = fmax(scale, fabs(ref[i]));
    for (size_t i = 0; i < ref.size(); i++) {
        if (!std::isfinite(got[i])) finite = false;
        double d = (double)got[i] - ref[i];
        num += d * d, den += ref[i] * ref[i];
        worst = fmax(worst, fabs(d) / scale);
    }
    double rel = sqrt(num) / (den > 0 ? sqrt(den) : 1e-30);
    bool ok = finite && rel < 1e-5 && worst < 1e-4;
    printf("  %-4s rel %.2e worst %.2e %s\n", what, rel, worst, ok ? "ok" : "FAIL");
    g_checks++;
    if (!ok) g_failed++;
}

#endif
