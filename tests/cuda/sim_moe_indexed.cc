// tests/cuda/sim_moe_indexed.cc — model/cuda/moe_indexed.cu's kernels
// (cuda_moe_experts_indexed: slots grouped by expert on the device) run on the CPU
// simulator (tests/cuda/sim/cuda_sim.h) as written, against a naive double-precision
// routed-experts reference (the contract of model/cpu/moe_small.c: h[s] = silu(Wg_e x) *
// (Wu_e x), y[n] = sum_k w[n,k] Wd_e h[n*K+k], e = idx[n*K+k]).
// Routings: E 64, K 6, N 1, 7, 64, 200 (distinct experts per row as the router gives
// them, drawn from a subset so that some experts are unused and others repeat), one
// expert chosen by every row (a group of N slots: many chunks of IDX_SLOTS), and a row
// choosing the same expert twice. The weights of unused experts are NaN (a read of a
// wrong expert shows). D and I multiples of 4 and odd (the float4 and scalar paths),
// misaligned weights (scalar), and with "big" D and I above one staged tile (IDX_LT);
// "tiles" (built with IDX_LT 64, IDX_RUN 16): groups over several runs of slots, inputs over
// several tiles.
// Outputs are NaN-filled first (and the scratch is, by the simulator); h and y within 1e-5
// (relative, norm-wise) and every element within 1e-4 of the reference's scale; a second
// call repeats the first bit for bit (N 64); exactly 5 launches a call. The test runs
// it with IDX_GROUP_BLOCKS 8 (fewer simulated blocks; each loops over more groups). Prints "all ok" and
// exits 0. Built and run by tests/cuda/test_moe_indexed_host.c.
#include "tests/cuda/sim/cuda_sim.h"

#include SIM_CU

#define SIM_RNG_SEED 0xD1B54A32D192ED03ull
#include "tests/cuda/sim/sim_check.h"

enum Routing { SPREAD, ALL_ROWS, TWICE };

// One case: experts drawn from the first `pool` of E (the rest unused); ALL_ROWS: expert
// E/2 in every row (at k = n % K); TWICE: row 0 takes expert 1 at k 0 and 1. `shift`
// offsets the weight pointers by that many floats (1: not 16-byte aligned).
// bf16: the weights rounded to bf16 first; after the fp32 run(s), one more on registered
// bf16 copies (CRUCIBLE_CUDA_DECODE_BF16) with the fp32 weights NaN-filled: h and y must
// equal the fp32 run's bit for bit.
static void run_case(int N, int K, int E, int pool, int D, int I, Routing routing, int shift, int repeat = 0,
                     bool bf16 = false) {
    long launches = sim.launches;
    size_t S = (size_t)N * K;
    std::vector<int32_t> idx(S);
    std::vector<float> w(S);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            int e;
            bool dup;
            do {
                e = (int)(urand() * pool);
                dup = false;
                for (int j = 0; j < k; j++) dup |= idx[(size_t)n * K + j] == e;
                if (routing == ALL_ROWS) dup |= e == E / 2;
            } while (dup);
            idx[(size_t)n * K + k] = e;
            w[(size_t)n * K + k] = (float)(urand() + 0.05);
        }
    if (routing == ALL_ROWS)
        for (int n = 0; n < N; n++) idx[(size_t)n * K + n % K] = E / 2;
    if (routing == TWICE) idx[0] = idx[1] = 1;
    std::vector<char> used(E, 0);
    int distinct = 0;
    for (int32_t e : idx) distinct += !used[e], used[e] = 1;
    printf("case N=%d K=%d E=%d D=%d I=%d: %d distinct experts%s%s%s%s\n", N, K, E, D, I, distinct,
           routing == ALL_ROWS ? ", one in every row" : "", routing == TWICE ? ", one twice in a row" : "",
           shift ? ", weights misaligned" : "", bf16 ? ", then bf16 copies" : "");
    std::vector<float> Wg((size_t)E * I * D + shift), Wu(Wg.size()), Wd((size_t)E * D * I + shift);
    for (auto *v : {&Wg, &Wu, &Wd})
        for (float &f : *v) f = (float)(urand() * 2 - 1) / sqrtf((float)D);
    for (int e = 0; e < E; e++)
        if (!used[e])
            for (size_t j = 0; j < (size_t)I * D; j++) {
                Wg[shift + (size_t)e * I * D + j] = NAN, Wu[shift + (size_t)e * I * D + j] = NAN;
                Wd[shift + (size_t)e * D * I + j] = NAN;
            }
    std::vector<uint16_t> bits[3];
    if (bf16) {
        int m = 0;
        for (auto *v : {&Wg, &Wu, &Wd}) bits[m++] = bf16_round_in_place(v->data(), v->size());
    }
    std::vector<float> x((size_t)N * D);
    for (float &f : x) f = (float)(urand() * 4 - 2);
    const float *wg = Wg.data() + shift, *wu = Wu.data() + shift, *wd = Wd.data() + shift;
    std::vector<double> href, yref;
    experts_ref(idx, w, x.data(), wg, wu, wd, N, K, D, I, href, yref);
    std::vector<float> y[2], h[2];
    for (int rep = 0; rep < 1 + repeat; rep++) {
        y[rep].assign((size_t)N * D, NAN), h[rep].assign(S * I, NAN);
        cuda_moe_experts_indexed(y[rep].data(), h[rep].data(), x.data(), idx.data(), w.data(), wg, wu, wd, N, D, I,
                                 K);
    }
    compare("h", h[0], href);
    compare("y", y[0], yref);
    if (repeat) {
        bool same = !memcmp(y[0].data(), y[1].data(), sizeof(float) * y[0].size()) &&
                    !memcmp(h[0].data(), h[1].data(), sizeof(float) * h[0].size());
        printf("  a second call repeats the first bit for bit %s\n", same ? "ok" : "FAIL");
        g_checks++, g_failed += !same;
    }
    if (sim.launches - launches != 5 * (1 + repeat)) {
        printf("  FAIL: %ld launches, expected 5 a call\n", sim.launches - launches);
        g_failed++;
    }
    if (!bf16) return;
    std::vector<float> *const ws[3] = {&Wg, &Wu, &Wd};
    experts_bf16_phase(ws, bits, h[0], y[0], 5, [&](float *y16, float *h16) {
        cuda_moe_experts_indexed(y16, h16, x.data(), idx.data(), w.data(), wg, wu, wd, N, D, I, K);
    });
}

int main(int argc, char **argv) {
    bool big = argc > 1 && !strcmp(argv[1], "big"), tiles = argc > 1 && !strcmp(argv[1], "tiles");
    if (tiles) {  // built with IDX_LT 64 and IDX_RUN 16
        if (IDX_LT != 64 || IDX_RUN != 16) {
            printf("FAIL: the tiles run needs IDX_LT 64 and IDX_RUN 16 (got %d, %d)\n", (int)IDX_LT, (int)IDX_RUN);
            return 1;
        }
        run_case(64, 1, 64, 64, 136, 12, ALL_ROWS, 0);     // one group of 64 slots: 4 runs; x over 3 tiles
        run_case(70, 1, 64, 64, 12, 136, ALL_ROWS, 0);     // 5 runs (the last of 6); h over 3 tiles
        run_case(24, 2, 64, 2, 72, 20, SPREAD, 0, 1);      // 2 experts of 24 slots: runs of 16 + 8, float4
        run_case(24, 2, 64, 2, 71, 21, SPREAD, 0);         // ... scalar
    } else if (big) {
        run_case(2, 2, 4, 4, 600, 520, SPREAD, 0);  // two staged tiles each way, float4 (ragged last tile)
        run_case(2, 2, 4, 4, 603, 517, SPREAD, 0);  // ... scalar
        run_case(2, 2, 4, 4, 600, 520, SPREAD, 0, 0, true);  // bf16 copies over two staged tiles
    } else {
        run_case(1, 6, 64, 64, 36, 20, SPREAD, 0);     // decode, batch 1: float4 up and down
        run_case(7, 6, 64, 40, 37, 13, SPREAD, 0);     // scalar up and down, 24 experts unused
        run_case(64, 6, 64, 48, 24, 13, SPREAD, 0, 1); // float4 up, scalar down; groups over 8 slots
        run_case(200, 6, 64, 64, 9, 8, SPREAD, 0);     // scalar up, float4 down; 1200 slots
        run_case(64, 6, 64, 20, 12, 8, ALL_ROWS, 0);   // one expert in all 64 rows: 8 chunks of slots
        run_case(7, 6, 64, 64, 48, 24, TWICE, 0);      // a row with the same expert twice
        run_case(9, 6, 64, 64, 48, 12, SPREAD, 1);     // multiples of 4, weights misaligned: scalar
        run_case(3, 1, 64, 64, 20, 40, SPREAD, 0);     // K 1, I over two row tiles
        run_case(7, 6, 64, 40, 36, 20, SPREAD, 0, 0, true);  // bf16 copies: 8-byte loads up and down
        run_case(7, 6, 64, 40, 37, 13, SPREAD, 0, 0, true);  // bf16 copies: scalar up and down
        run_case(9, 6, 64, 64, 48, 12, SPREAD, 2, 0, true);  // bf16 copies 4-byte aligned: scalar
        // the empty sums: y zeroed, nothing launched
        long l = sim.launches;
        std::vector<float> y(2 * 5, NAN), h(4, NAN), x(10, 1.0f), wt(4, 1.0f);
        std::vector<int32_t> idx(4, 0);
        cuda_moe_experts_indexed(y.data(), h.data(), x.data(), idx.data(), wt.data(), x.data(), x.data(), x.data(), 2,
                                 5, 0, 2);
        bool zero = sim.launches == l;
        for (float f : y) zero &= f == 0.0f;
        for (float &f : y) f = NAN;
        cuda_moe_experts_indexed(y.data(), h.data(), x.data(), idx.data(), wt.data(), x.data(), x.data(), x.data(), 2,
                                 5, 4, 0);
        zero &= sim.launches == l;
        for (float f : y) zero &= f == 0.0f;
        printf("  I=0 and K=0 zero y without a launch %s\n", zero ? "ok" : "FAIL");
        g_checks++, g_failed += !zero;
    }
    return sim_finish();
}
