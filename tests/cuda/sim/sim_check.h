// tests/cuda/sim/sim_check.h — what the simulator tests (sim_moe_small.cc,
// sim_moe_indexed.cc, ...) share: a seeded uniform source, the comparison of a kernel's
// output with a double-precision reference, counted into g_checks / g_failed, and the
// routed experts' double-precision reference, and the closing report (sim_finish). Include
// once per simulator program, after defining SIM_RNG_SEED.
#ifndef CRUCIBLE_TESTS_CUDA_SIM_CHECK_H
#define CRUCIBLE_TESTS_CUDA_SIM_CHECK_H

#include <cmath>
#include <cstring>
#include <cstdint>
#include <cstdio>
#include <vector>

#include "model/cuda/bf16_round.cuh"

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

// The routed-experts contract (model/cpu/moe_small.c) in double: for slot s = n*K + k of
// expert e = idx[s], href[s] = silu(Wg_e x_n) * (Wu_e x_n) [I], and yref[n] = sum over k in
// order of w[s] Wd_e href[s] [D]. Weights [E][I][D] (gate, up) and [E][D][I] (down).
static void experts_ref(const std::vector<int32_t> &idx, const std::vector<float> &w, const float *x,
                        const float *wg, const float *wu, const float *wd, int N, int K, int D, int I,
                        std::vector<double> &href, std::vector<double> &yref) {
    size_t S = (size_t)N * K;
    href.assign(S * I, 0.0);
    yref.assign((size_t)N * D, 0.0);
    for (size_t s = 0; s < S; s++) {
        size_t e = (size_t)idx[s];
        const float *xn = x + (s / K) * D;
        for (int i = 0; i < I; i++) {
            double g = 0, u = 0;
            for (int d = 0; d < D; d++) {
                g += (double)wg[(e * I + i) * D + d] * xn[d];
                u += (double)wu[(e * I + i) * D + d] * xn[d];
            }
            href[s * I + i] = g / (1 + exp(-g)) * u;
        }
    }
    for (size_t s = 0; s < S; s++) {  // k in order within each row n, as the contract sums
        size_t e = (size_t)idx[s], n = s / K;
        for (int d = 0; d < D; d++) {
            double a = 0;
            for (int i = 0; i < I; i++) a += (double)wd[(e * D + d) * I + i] * href[s * I + i];
            yref[n * D + d] += w[s] * a;
        }
    }
}

// The decode kernels' bf16 weights (CRUCIBLE_CUDA_DECODE_BF16, model/cuda/weight_load.cuh):
// w[0..n) rounded to bf16 in place (so the fp32 kernel on w is the bf16 kernel's twin), and
// the bit patterns returned for sim_decode_shadow_add.
static std::vector<uint16_t> bf16_round_in_place(float *w, size_t n) {
    std::vector<uint16_t> bits(n);
    for (size_t i = 0; i < n; i++) {
        bits[i] = bf16_bits_rne(w[i]);
        uint32_t u = (uint32_t)bits[i] << 16;
        memcpy(&w[i], &u, sizeof u);
    }
    return bits;
}

// Registers the bf16 copies bits[i] of the weights w[i] (sim_decode_shadow_add) and
// NaN-fills the fp32 weights: a kernel that reads them instead of the copies shows.
static void use_bf16_copies(std::vector<float> *const w[3], std::vector<uint16_t> *bits) {
    for (int i = 0; i < 3; i++) {
        sim_decode_shadow_add(w[i]->data(), w[i]->size(), bits[i].data());
        for (float &f : *w[i]) f = NAN;
    }
}

static void same_bits(const char *what, const std::vector<float> &got, const std::vector<float> &want);

// The bf16 phase of the routed-experts simulator cases: with the copies of w[] in use
// (use_bf16_copies), run(y16, h16) must give h and y of the fp32 run on the rounded
// weights bit for bit, read 3 copies and make `launches` launches.
template <class Run>
static void experts_bf16_phase(std::vector<float> *const w[3], std::vector<uint16_t> *bits, const std::vector<float> &h,
                               const std::vector<float> &y, long launches, Run run) {
    use_bf16_copies(w, bits);
    std::vector<float> y16(y.size(), NAN), h16(h.size(), NAN);
    long hits = sim_shadow.hits, l0 = sim.launches;
    run(y16.data(), h16.data());
    sim_decode_shadow_clear();
    same_bits("h", h16, h);
    same_bits("y", y16, y);
    bool ok = sim_shadow.hits - hits == 3 && sim.launches - l0 == launches;
    g_checks++, g_failed += !ok;
    if (!ok) printf("  FAIL: %ld copies read (3 expected), %ld launches\n", sim_shadow.hits - hits, sim.launches - l0);
}

// got and want equal bit for bit (NaN patterns included).
static void same_bits(const char *what, const std::vector<float> &got, const std::vector<float> &want) {
    size_t n = got.size() < want.size() ? got.size() : want.size(), bad = got.size() != want.size(), first = 0;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&got[i], &want[i], sizeof(float)) != 0 && !bad++) first = i;
    printf("  %-4s bf16 copy vs fp32 on rounded weights: %s", what, bad ? "FAIL" : "bit-identical");
    if (bad) printf(" (%zu differ, first at %zu)", bad, first);
    printf("\n");
    g_checks++;
    if (bad) g_failed++;
}

// The program's last lines: the failed checks, or "all ok"; its exit status.
static int sim_finish(void) {
    if (g_failed) {
        printf("%d of %d check(s) failed\n", g_failed, g_checks);
        return 1;
    }
    printf("%d checks, %ld blocks simulated: all ok\n", g_checks, sim.blocks);
    return 0;
}

#endif
