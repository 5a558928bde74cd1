// tests/cuda/sim_gemv_small.cc — model/cuda/gemv_small.cu's kernel (cuda_gemv_small: C =
// alpha A B^T + beta C for 1..8 rows of A) run on the CPU simulator
// (tests/cuda/sim/cuda_sim.h) as written, against a double-precision reference of the
// CPU gemm's contract (row-major, strided, beta = 0 overwrites a NaN C, the padding
// between rows of C untouched). Every M 1..8 (the four template widths and the row guard
// inside them), float4 and scalar paths (K, lda, ldb multiples of 4 or not, a misaligned
// B), N not a multiple of the warps per block, and what it declines (M 9, transposes, K 0,
// alpha 0); and the bf16 weight copies (CRUCIBLE_CUDA_DECODE_BF16): bit-identical to the
// fp32 kernel on the rounded weights, float4 and scalar loads, a B not wholly inside.
// Prints "all ok" and exits 0 on success. Built and run by tests/cuda/test_gemv_small_host.c.
#include "tests/cuda/sim/cuda_sim.h"

#include SIM_CU

#define SIM_RNG_SEED 0xD1B54A32D192ED03ull
#include "tests/cuda/sim/sim_check.h"

static void run_case(int M, int N, int K, int pad_a, int pad_b, int shift_b, float alpha, float beta) {
    int lda = K + pad_a, ldb = K + pad_b, ldc = N + 3;
    printf("case M=%d N=%d K=%d lda=%d ldb=%d%s beta=%g\n", M, N, K, lda, ldb, shift_b ? " (B misaligned)" : "",
           beta);
    std::vector<float> A((size_t)M * lda), Bbuf((size_t)N * ldb + shift_b), C((size_t)M * ldc);
    for (float &f : A) f = (float)(urand() * 2 - 1);
    for (float &f : Bbuf) f = (float)(urand() * 2 - 1);
    for (float &f : C) f = beta == 0.0f ? NAN : (float)(urand() * 2 - 1);
    const float *B = Bbuf.data() + shift_b;
    std::vector<double> ref(C.size());
    for (int m = 0; m < M; m++)
        for (int j = 0; j < ldc; j++) {
            size_t i = (size_t)m * ldc + j;
            if (j >= N) {  // padding: must stay as it was (NaN compares as "stays NaN" below)
                ref[i] = C[i];
                continue;
            }
            double s = 0;
            for (int k = 0; k < K; k++) s += (double)A[(size_t)m * lda + k] * B[(size_t)j * ldb + k];
            ref[i] = alpha * s + (beta == 0.0f ? 0.0 : (double)beta * C[i]);
        }
    long launches = sim.launches;
    int ran = cuda_gemv_small(0, 1, M, N, K, alpha, A.data(), lda, B, ldb, beta, C.data(), ldc);
    std::vector<float> got, pad_got;
    std::vector<double> want;
    bool pad_ok = true;
    for (int m = 0; m < M; m++)
        for (int j = 0; j < ldc; j++) {
            size_t i = (size_t)m * ldc + j;
            if (j < N) got.push_back(C[i]), want.push_back(ref[i]);
            else pad_ok &= std::isnan(ref[i]) ? std::isnan(C[i]) : (double)C[i] == ref[i];
        }
    compare("C", got, want);
    g_checks++;
    if (!ran || sim.launches - launches != 1 || !pad_ok) {
        printf("  FAIL: ran %d, %ld launches (expected 1), padding %s\n", ran, sim.launches - launches,
               pad_ok ? "kept" : "WRITTEN");
        g_failed++;
    }
}

// CRUCIBLE_CUDA_DECODE_BF16: B registered with a bf16 copy. The fp32 kernel runs first on
// B rounded to bf16, then B's fp32 storage is NaN-filled and the kernel must take the copy:
// C bit-identical, one lookup answered, one launch.
static void run_case_bf16(int M, int N, int K, int pad_b, int shift_b, float beta) {
    int lda = K, ldb = K + pad_b, ldc = N + 1;
    printf("case bf16 copy: M=%d N=%d K=%d ldb=%d shift %d beta=%g\n", M, N, K, ldb, shift_b, beta);
    std::vector<float> A((size_t)M * lda), Bbuf((size_t)N * ldb + shift_b), C0((size_t)M * ldc);
    for (float &f : A) f = (float)(urand() * 2 - 1);
    for (float &f : Bbuf) f = (float)(urand() * 2 - 1);
    for (float &f : C0) f = beta == 0.0f ? NAN : (float)(urand() * 2 - 1);
    std::vector<uint16_t> bits = bf16_round_in_place(Bbuf.data(), Bbuf.size());
    const float *B = Bbuf.data() + shift_b;
    std::vector<float> want = C0, got = C0;
    cuda_gemv_small(0, 1, M, N, K, 0.75f, A.data(), lda, B, ldb, beta, want.data(), ldc);
    sim_decode_shadow_add(Bbuf.data(), Bbuf.size(), bits.data());
    for (float &f : Bbuf) f = NAN;  // the copy must be what is read
    long launches = sim.launches, hits = sim_shadow.hits;
    int ran = cuda_gemv_small(0, 1, M, N, K, 0.75f, A.data(), lda, B, ldb, beta, got.data(), ldc);
    sim_decode_shadow_clear();
    same_bits("C", got, want);
    bool ok = ran && sim.launches - launches == 1 && sim_shadow.hits - hits == 1;
    g_checks++, g_failed += !ok;
    if (!ok) printf("  FAIL: ran %d, %ld launches, %ld copies read\n", ran, sim.launches - launches,
                    sim_shadow.hits - hits);
}

int main() {
    for (int M = 1; M <= 8; M++) run_case(M, 9, 64, 0, 0, 0, 0.7f, 0.0f);  // float4, every width
    run_case(3, 5, 37, 0, 0, 0, 1.0f, 1.0f);     // K odd: scalar
    run_case(1, 13, 64, 4, 8, 0, 1.0f, 0.5f);    // strided, still float4
    run_case(6, 7, 64, 1, 0, 0, 1.0f, 1.0f);     // lda not a multiple of 4: scalar
    run_case(2, 4, 64, 0, 0, 1, 1.0f, 0.0f);     // B not 16-byte aligned: scalar
    run_case(8, 33, 300, 0, 0, 0, 0.5f, 1.0f);   // K over several float4 rounds of the warp
    run_case(1, 1, 1, 0, 0, 0, 1.0f, 0.0f);      // the smallest
    run_case_bf16(1, 9, 64, 0, 0, 0.0f);   // 8-byte bf16 loads
    run_case_bf16(5, 13, 64, 4, 4, 1.0f);  // strided, offset: still 8-byte loads
    run_case_bf16(8, 7, 37, 0, 0, 0.5f);   // K odd: scalar bf16 loads
    run_case_bf16(3, 6, 64, 0, 1, 0.0f);   // B offset by one element: scalar in both
    run_case_bf16(2, 5, 300, 0, 2, 1.0f);  // offset 2: bf16 copy 4-byte aligned, fp32 8: scalar
    {  // a B past the registered range's end is not served from it
        std::vector<float> B(4 * 8, 0.5f), A(8, 1.0f), C(4, 0.0f);
        std::vector<uint16_t> bits = bf16_round_in_place(B.data(), B.size());
        sim_decode_shadow_add(B.data(), 3 * 8, bits.data());
        long hits = sim_shadow.hits;
        cuda_gemv_small(0, 1, 1, 4, 8, 1.0f, A.data(), 8, B.data(), 8, 0.0f, C.data(), 4);
        sim_decode_shadow_clear();
        bool ok = sim_shadow.hits == hits && C[3] == 4.0f;
        printf("  B past the copy's range read in fp32 %s\n", ok ? "ok" : "FAIL");
        g_checks++, g_failed += !ok;
    }
    // declined: left to cuBLAS, nothing launched, C untouched
    long l = sim.launches;
    std::vector<float> A(9 * 8, 1.0f), B(8 * 8, 1.0f), C(9 * 8, 2.0f);
    int any = cuda_gemv_small(0, 1, 9, 8, 8, 1.0f, A.data(), 8, B.data(), 8, 0.0f, C.data(), 8) +
              cuda_gemv_small(1, 1, 2, 8, 8, 1.0f, A.data(), 8, B.data(), 8, 0.0f, C.data(), 8) +
              cuda_gemv_small(0, 0, 2, 8, 8, 1.0f, A.data(), 8, B.data(), 8, 0.0f, C.data(), 8) +
              cuda_gemv_small(0, 1, 2, 8, 0, 1.0f, A.data(), 8, B.data(), 8, 0.0f, C.data(), 8) +
              cuda_gemv_small(0, 1, 2, 8, 8, 0.0f, A.data(), 8, B.data(), 8, 1.0f, C.data(), 8);
    bool kept = true;
    for (float f : C) kept &= f == 2.0f;
    bool ok = any == 0 && sim.launches == l && kept;
    printf("  M 9, transposes, K 0, alpha 0 declined %s\n", ok ? "ok" : "FAIL");
    g_checks++, g_failed += !ok;
    return sim_finish();
}
