// tests/cuda/sim_moe_small.cc — model/cuda/moe_small.cu's kernels (cuda_moe_experts_small)
// run on the CPU simulator (tests/cuda/sim/cuda_sim.h) as written, against a naive
// double-precision routed-experts reference (the contract of model/cpu/moe_small.c:
// h[s] = silu(Wg_e x) * (Wu_e x), y[n] = sum_k w[n,k] Wd_e h[n*K+k], e = idx[n*K+k]).
// Shapes: N 1 and 5, K 2..6, E 8; D and I odd and multiples of 4 so both the float4 and
// the scalar paths of each kernel run (and 16-byte-misaligned weights, which must take the
// scalar path, and a misaligned x, staged or not); D above the 48 KiB staging limit
// (x read from global memory).
// Outputs are NaN-filled first; h and y within 1e-5 (relative, norm-wise) and every
// element within 1e-4 of the reference's scale. Prints "all ok" and exits 0 on success.
// Built and run by tests/cuda/test_moe_small_host.c.
#include "tests/cuda/sim/cuda_sim.h"

#include SIM_CU

#define SIM_RNG_SEED 0x9E3779B97F4A7C15ull
#include "tests/cuda/sim/sim_check.h"

// One case; `shift` offsets the weight pointers and `xshift` x by that many floats (1: not
// 16-byte aligned).
// bf16: the weights are rounded to bf16 first, and after the fp32 run the kernels run again
// on registered bf16 copies (CRUCIBLE_CUDA_DECODE_BF16) with the fp32 weights NaN-filled:
// h and y must equal the fp32 run's bit for bit.
static void run_case(int N, int K, int D, int I, int shift, int xshift = 0, bool bf16 = false) {
    const int E = 8;
    printf("case N=%d K=%d D=%d I=%d%s%s%s\n", N, K, D, I, shift ? " (weights misaligned)" : "",
           xshift ? " (x misaligned)" : "", bf16 ? " (then bf16 copies)" : "");
    std::vector<float> Wg((size_t)E * I * D + shift), Wu(Wg.size()), Wd((size_t)E * D * I + shift);
    std::vector<uint16_t> bits[3];
    int m = 0;
    for (auto *v : {&Wg, &Wu, &Wd}) {
        for (float &f : *v) f = (float)(urand() * 2 - 1) / sqrtf((float)D);
        if (bf16) bits[m++] = bf16_round_in_place(v->data(), v->size());
    }
    long launches = sim.launches;
    std::vector<float> xbuf((size_t)N * D + xshift), w((size_t)N * K);
    float *xp = xbuf.data() + xshift;
    std::vector<float> x((size_t)N * D);
    std::vector<int32_t> idx((size_t)N * K);
    for (float &f : x) f = (float)(urand() * 4 - 2);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            int e;
            bool dup;
            do {  // distinct experts per row, as the router gives
                e = (int)(urand() * E);
                dup = false;
                for (int j = 0; j < k; j++) dup |= idx[(size_t)n * K + j] == e;
            } while (dup);
            idx[(size_t)n * K + k] = e;
            w[(size_t)n * K + k] = (float)(urand() + 0.05);
        }
    const float *wg = Wg.data() + shift, *wu = Wu.data() + shift, *wd = Wd.data() + shift;
    size_t S = (size_t)N * K;
    std::vector<double> href, yref;
    experts_ref(idx, w, x.data(), wg, wu, wd, N, K, D, I, href, yref);
    std::vector<float> y((size_t)N * D, NAN), h(S * I, NAN);
    memcpy(xp, x.data(), sizeof(float) * x.size());
    cuda_moe_experts_small(y.data(), h.data(), xp, idx.data(), w.data(), wg, wu, wd, N, D, I, K);
    compare("h", h, href);
    compare("y", y, yref);
    if (sim.launches - launches != 2) {
        printf("  FAIL: %ld launches, expected 2\n", sim.launches - launches);
        g_failed++;
    }
    if (!bf16) return;
    std::vector<float> *const ws[3] = {&Wg, &Wu, &Wd};
    experts_bf16_phase(ws, bits, h, y, 2, [&](float *y16, float *h16) {
        cuda_moe_experts_small(y16, h16, xp, idx.data(), w.data(), wg, wu, wd, N, D, I, K);
    });
}

int main(int argc, char **argv) {
    bool big = argc > 1 && !strcmp(argv[1], "big");
    if (big) {
        run_case(1, 2, 12289 + 3, 4, 0);  // x (49 KiB) above the staging limit: read from global memory
        run_case(1, 2, 12292, 4, 0, 1);   // ... and not 16-byte aligned: the scalar up kernel
    } else {
        run_case(1, 2, 64, 20, 0);   // float4 up and down
        run_case(5, 6, 37, 13, 0);   // scalar up and down
        run_case(5, 3, 40, 21, 0);   // float4 up, scalar down
        run_case(1, 4, 33, 16, 0);   // scalar up, float4 down
        run_case(5, 5, 48, 12, 1);   // multiples of 4, weights misaligned: scalar paths
        run_case(1, 6, 8, 36, 0);    // I > one up chunk (16 rows), D below one warp's lanes
        run_case(5, 2, 64, 8, 0, 1); // x misaligned but staged: the float4 up kernel on the copy
        run_case(1, 2, 64, 20, 0, 0, true);  // bf16 copies: 8-byte loads up and down
        run_case(5, 6, 37, 13, 0, 0, true);  // bf16 copies: scalar up and down
        run_case(5, 3, 40, 21, 2, 0, true);  // bf16 copies 4-byte aligned: scalar up and down
        run_case(1, 4, 33, 16, 0, 0, true);  // scalar up, 8-byte loads down
        // the empty sums: y zeroed, nothing launched
        long l = sim.launches;
        std::vector<float> y(2 * 5, NAN), h(4, NAN), x(10, 1.0f), wt(4, 1.0f);
        std::vector<int32_t> idx(4, 0);
        cuda_moe_experts_small(y.data(), h.data(), x.data(), idx.data(), wt.data(), x.data(), x.data(), x.data(), 2, 5,
                               0, 2);
        bool zero = sim.launches == l;
        for (float f : y) zero &= f == 0.0f;
        printf("  I=0 zeroes y without a launch %s\n", zero ? "ok" : "FAIL");
        g_checks++, g_failed += !zero;
    }
    return sim_finish();
}
