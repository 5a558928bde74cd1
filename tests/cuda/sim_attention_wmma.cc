// tests/cuda/sim_attention_wmma.cc — runs the kernels of model/cuda/attention_wmma.cu on
// the CPU, as written, so their indexing, masking, tile lists, synchronisation and
// numerics are exercised without a GPU. The threads, barriers, warp reductions, shared
// memory and launches are the shared simulator's (tests/cuda/sim/cuda_sim.h: one OS
// thread per CUDA thread, blocks one after another over a NaN-refilled, ASan-poisoned
// shared-memory arena, launch limits incl. cudaFuncSetAttribute's opt-in); the .cu file
// comes in as SIM_CU, rewritten by tests/cuda/sim_host.c. This file adds:
//  - nvcuda::wmma: a fragment holds 8 elements per lane whose (row, column) mapping is a
//    scrambled permutation, different for matrix_a, matrix_b and accumulator
//    fragments, so code that assumed any particular mapping would fail; mma_sync
//    exchanges the warp's fragments and multiplies in fp32 (bf16 products are exact);
//    loads and stores check wmma's rules: 256-bit aligned pointers, ld a multiple of
//    16 bytes, inside the launch's dynamic shared memory when in shared memory;
//  - stand-ins for the gemm and flash attention paths (counted, to check the selection).
// Checked against a naive double-precision attention written here (forward: O, lse;
// backward: dQ, dK, dV), outputs NaN-poisoned first, on packed sequences of lengths
// 1, 17, 64, 65, 130 (H 2, q/k 32, v 16; H 1, q/k 192, v 128; and H 1, q/k 16, v 48
// on lengths 70, 3), plus a repeat that must
// be bit-identical, a shape (q/k 24) that must take the gemm fallback, and the
// CRUCIBLE_CUDA_ATTENTION selection (gemm / wmma / flash / unset / a bad value). Prints
// "all ok" and exits 0 on success. Built and run by tests/cuda/test_attention_wmma_host.c.
#include "tests/cuda/sim/cuda_sim.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <cuda_bf16.h>

static void sim_die(const char *what) { sim_fail("%s", what); }

// ---- wmma ----------------------------------------------------------------------------

// A warp's exchange area for mma_sync.
struct SimWmmaScratch {
    float A[256], B[256], C[256];
};
static SimWmmaScratch sim_wmma[SIM_MAX_THREADS / 32];
static int sim_lane() { return sim_t.lane; }

static bool sim_in_smem(const void *p) {
    return (const unsigned char *)p >= sim_smem && (const unsigned char *)p < sim_smem + sizeof sim_smem;
}
// A 16 x 16 access at p with row stride ld elements of size es, by layout (rows contiguous
// when row_major): every element inside the launch's dynamic shared memory when in it.
static void sim_check_access(const void *p, unsigned ld, size_t es) {
    if ((uintptr_t)p % 32) sim_die("wmma pointer not 256-bit aligned");
    if ((ld * es) % 16) sim_die("wmma ld not a multiple of 16 bytes");
    if (sim_in_smem(p)) {
        size_t end = (size_t)((const unsigned char *)p - sim_smem) + (15 * (size_t)ld + 16) * es;
        if (end > sim.smem_bytes) sim_die("wmma access beyond the launch's dynamic shared memory");
    }
}

namespace nvcuda {
namespace wmma {
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

template <typename Use> struct sim_perm;
template <> struct sim_perm<matrix_a> { static int pos(int idx) { return (idx * 37 + 11) & 255; } };
template <> struct sim_perm<matrix_b> { static int pos(int idx) { return (idx * 73 + 5) & 255; } };
template <> struct sim_perm<accumulator> { static int pos(int idx) { return (idx * 101 + 3) & 255; } };

template <typename Use, int M, int N, int K, typename T, typename Layout = void>
struct fragment {
    enum { num_elements = 8 };
    T x[8];
    // (row, column) of this lane's element i
    static int row(int i) { return sim_perm<Use>::pos(sim_lane() * 8 + i) >> 4; }
    static int col(int i) { return sim_perm<Use>::pos(sim_lane() * 8 + i) & 15; }
};

template <typename Use, typename T, typename L>
static void load_matrix_sync(fragment<Use, 16, 16, 16, T, L> &f, const T *p, unsigned ld) {
    sim_check_access(p, ld, sizeof(T));
    for (int i = 0; i < 8; i++) {
        int r = f.row(i), c = f.col(i);
        f.x[i] = std::is_same<L, row_major>::value ? p[(size_t)r * ld + c] : p[(size_t)c * ld + r];
    }
}
static void load_matrix_sync(fragment<accumulator, 16, 16, 16, float> &f, const float *p, unsigned ld,
                             layout_t l) {
    sim_check_access(p, ld, sizeof(float));
    for (int i = 0; i < 8; i++) {
        int r = f.row(i), c = f.col(i);
        f.x[i] = l == mem_row_major ? p[(size_t)r * ld + c] : p[(size_t)c * ld + r];
    }
}
static void store_matrix_sync(float *p, const fragment<accumulator, 16, 16, 16, float> &f, unsigned ld,
                              layout_t l) {
    sim_check_access(p, ld, sizeof(float));
    for (int i = 0; i < 8; i++) {
        int r = f.row(i), c = f.col(i);
        (l == mem_row_major ? p[(size_t)r * ld + c] : p[(size_t)c * ld + r]) = f.x[i];
    }
}
template <typename Use, typename T, typename L>
static void fill_fragment(fragment<Use, 16, 16, 16, T, L> &f, float v) {
    for (int i = 0; i < 8; i++) f.x[i] = (T)v;
}
template <typename LA, typename LB>
static void mma_sync(fragment<accumulator, 16, 16, 16, float> &d,
                     const fragment<matrix_a, 16, 16, 16, __nv_bfloat16, LA> &a,
                     const fragment<matrix_b, 16, 16, 16, __nv_bfloat16, LB> &b,
                     const fragment<accumulator, 16, 16, 16, float> &c) {
    SimWmmaScratch &w = sim_wmma[sim_t.warp];
    SimBarrier &bar = sim.warps[sim_t.warp].bar;
    bar.wait(__LINE__);  // the previous mma's reads are done
    for (int i = 0; i < 8; i++) {
        w.A[a.row(i) * 16 + a.col(i)] = __bfloat162float(a.x[i]);
        w.B[b.row(i) * 16 + b.col(i)] = __bfloat162float(b.x[i]);
        w.C[c.row(i) * 16 + c.col(i)] = c.x[i];
    }
    bar.wait(__LINE__);
    float out[8];
    for (int i = 0; i < 8; i++) {
        int r = d.row(i), col = d.col(i);
        float s = w.C[r * 16 + col];
        for (int k = 0; k < 16; k++) s += w.A[r * 16 + k] * w.B[k * 16 + col];
        out[i] = s;
    }
    for (int i = 0; i < 8; i++) d.x[i] = out[i];
}
}  // namespace wmma
}  // namespace nvcuda

// ---- the other attention paths (counted) ----------------------------------------------

static int g_fallbacks;
void cuda_attention_forward_gemm(cublasComputeType_t, float *, float *, const float *, const float *,
                                        const float *, const int32_t *, int, int, int, int, int, float) {
    g_fallbacks++;
}
void cuda_attention_backward_gemm(cublasComputeType_t, float *, float *, float *, const float *,
                                         const float *, const float *, const float *, const float *,
                                         const float *, const int32_t *, int, int, int, int, int, float) {
    g_fallbacks++;
}
static int g_flash_calls;
void cuda_attention_forward_flash(float *, float *, const float *, const float *, const float *,
                                         const int32_t *, int, int, int, int, int, float) {
    g_flash_calls++;
}
void cuda_attention_backward_flash(float *, float *, float *, const float *, const float *, const float *,
                                          const float *, const float *, const float *, const int32_t *, int, int,
                                          int, int, int, float) {
    g_flash_calls++;
}

int crucible_cuda_device_count(void) { return 1; }

#include SIM_CU

// ---- the reference and the checks ----------------------------------------------------

static uint64_t g_rng = 88172645463325252ull;
static double sim_normal() {
    double s = 0;
    for (int i = 0; i < 12; i++) {  // Irwin-Hall: good enough for test data
        g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
        s += (double)(g_rng >> 11) / 9007199254740992.0;
    }
    return s - 6.0;
}

// Naive causal varlen attention in double: O, lse and the gradients given dO.
static void reference(const std::vector<int32_t> &cu, int H, int dqk, int dv, float scale, const float *Q,
                      const float *K, const float *V, const float *dO, std::vector<double> &O,
                      std::vector<double> &lse, std::vector<double> &dQ, std::vector<double> &dK,
                      std::vector<double> &dV) {
    int N = cu.back();
    O.assign((size_t)N * H * dv, 0), lse.assign((size_t)N * H, 0);
    dQ.assign((size_t)N * H * dqk, 0), dK.assign((size_t)N * H * dqk, 0), dV.assign((size_t)N * H * dv, 0);
    for (size_t s = 0; s + 1 < cu.size(); s++)
        for (int h = 0; h < H; h++)
            for (int n = cu[s]; n < cu[s + 1]; n++) {
                int j0 = cu[s], L = n - j0 + 1;
                std::vector<double> p(L), dp(L);
                const float *q = Q + ((size_t)n * H + h) * dqk;
                double m = -INFINITY;
                for (int j = 0; j < L; j++) {
                    const float *k = K + ((size_t)(j0 + j) * H + h) * dqk;
                    double x = 0;
                    for (int d = 0; d < dqk; d++) x += (double)q[d] * k[d];
                    p[j] = scale * x;
                    m = p[j] > m ? p[j] : m;
                }
                double z = 0;
                for (int j = 0; j < L; j++) z += exp(p[j] - m);
                double l = m + log(z);
                lse[(size_t)n * H + h] = l;
                for (int j = 0; j < L; j++) p[j] = exp(p[j] - l);
                double *o = &O[((size_t)n * H + h) * dv];
                for (int j = 0; j < L; j++)
                    for (int d = 0; d < dv; d++) o[d] += p[j] * V[((size_t)(j0 + j) * H + h) * dv + d];
                const float *g = dO + ((size_t)n * H + h) * dv;
                double D = 0;
                for (int d = 0; d < dv; d++) D += (double)g[d] * o[d];
                for (int j = 0; j < L; j++) {
                    const float *v = V + ((size_t)(j0 + j) * H + h) * dv;
                    double x = 0;
                    for (int d = 0; d < dv; d++) x += (double)g[d] * v[d];
                    double ds = p[j] * (x - D) * scale;
                    const float *k = K + ((size_t)(j0 + j) * H + h) * dqk;
                    for (int d = 0; d < dqk; d++) {
                        dQ[((size_t)n * H + h) * dqk + d] += ds * k[d];
                        dK[((size_t)(j0 + j) * H + h) * dqk + d] += ds * q[d];
                    }
                    for (int d = 0; d < dv; d++) dV[((size_t)(j0 + j) * H + h) * dv + d] += p[j] * g[d];
                }
            }
}

static double rel_err(const std::vector<float> &x, const std::vector<double> &ref) {
    double num = 0, den = 0;
    for (size_t i = 0; i < x.size(); i++) {
        double d = (double)x[i] - ref[i];
        if (!std::isfinite(x[i])) return INFINITY;
        num += d * d, den += ref[i] * ref[i];
    }
    return sqrt(num) / (den > 1e-30 ? sqrt(den) : 1e-15);
}

static int g_failed;
static void expect(bool ok, const char *fmt, double v, const char *what) {
    printf("  %-40s %s %.3g\n", what, ok ? "ok  " : "FAIL", v);
    if (!ok) g_failed++;
    (void)fmt;
}

struct Outs {
    std::vector<float> O, lse, dQ, dK, dV;
};
static Outs run_wmma(const std::vector<int32_t> &cu, int H, int dqk, int dv, float scale, const std::vector<float> &Q,
                     const std::vector<float> &K, const std::vector<float> &V, const std::vector<float> &dO) {
    int N = cu.back();
    Outs o;
    o.O.assign((size_t)N * H * dv, NAN), o.lse.assign((size_t)N * H, NAN);
    o.dQ.assign((size_t)N * H * dqk, NAN), o.dK.assign((size_t)N * H * dqk, NAN), o.dV.assign((size_t)N * H * dv, NAN);
    int ns = (int)cu.size() - 1;
    cuda_attention_forward_wmma(o.O.data(), o.lse.data(), Q.data(), K.data(), V.data(), cu.data(), ns, N, H, dqk, dv,
                                scale);
    cuda_attention_backward_wmma(o.dQ.data(), o.dK.data(), o.dV.data(), dO.data(), o.O.data(), o.lse.data(), Q.data(),
                                 K.data(), V.data(), cu.data(), ns, N, H, dqk, dv, scale);
    return o;
}

static void check_case(const std::vector<int> &lens, int H, int dqk, int dv, bool repeat) {
    std::vector<int32_t> cu(1, 0);
    for (int l : lens) cu.push_back(cu.back() + l);
    int N = cu.back();
    float scale = 1.3f / sqrtf((float)dqk);
    std::vector<float> Q((size_t)N * H * dqk), K(Q.size()), V((size_t)N * H * dv), dO(V.size());
    for (auto *x : {&Q, &K, &V, &dO})
        for (float &v : *x) v = (float)sim_normal();
    printf("case N=%d H=%d dqk=%d dv=%d (%zu sequences)\n", N, H, dqk, dv, lens.size());
    std::vector<double> rO, rl, rdQ, rdK, rdV;
    reference(cu, H, dqk, dv, scale, Q.data(), K.data(), V.data(), dO.data(), rO, rl, rdQ, rdK, rdV);
    int fb = g_fallbacks;
    Outs a = run_wmma(cu, H, dqk, dv, scale, Q, K, V, dO);
    if (g_fallbacks != fb) {
        printf("  FAIL: took the gemm fallback\n");
        g_failed++;
        return;
    }
    double e;
    e = rel_err(a.O, rO), expect(e < 1e-2, "", e, "O");
    e = rel_err(a.lse, rl), expect(e < 1e-3, "", e, "lse");
    e = rel_err(a.dQ, rdQ), expect(e < 1e-2, "", e, "dQ");
    e = rel_err(a.dK, rdK), expect(e < 1e-2, "", e, "dK");
    e = rel_err(a.dV, rdV), expect(e < 1e-2, "", e, "dV");
    if (repeat) {
        Outs b = run_wmma(cu, H, dqk, dv, scale, Q, K, V, dO);
        bool same = !memcmp(a.O.data(), b.O.data(), 4 * a.O.size()) &&
                    !memcmp(a.lse.data(), b.lse.data(), 4 * a.lse.size()) &&
                    !memcmp(a.dQ.data(), b.dQ.data(), 4 * a.dQ.size()) &&
                    !memcmp(a.dK.data(), b.dK.data(), 4 * a.dK.size()) &&
                    !memcmp(a.dV.data(), b.dV.data(), 4 * a.dV.size());
        expect(same, "", same, "repeat bit-identical");
    }
}

// CRUCIBLE_CUDA_ATTENTION: which path the tables' attention takes (counted by the mocks
// above and by the wmma tile launches), and a bad value ends the process with a message.
static void check_selection() {
    std::vector<int32_t> cu = {0, 3};
    std::vector<float> x(3 * 16, 0.5f), o(3 * 16), l(3);
    struct Want { const char *env; cublasComputeType_t ct; int gemm, flash, wmma; } want[] = {
        {NULL, CUBLAS_COMPUTE_32F_FAST_16BF, 1, 0, 0},   {"gemm", CUBLAS_COMPUTE_32F_FAST_16BF, 1, 0, 0},
        {"wmma", CUBLAS_COMPUTE_32F_FAST_16BF, 0, 0, 1}, {"flash", CUBLAS_COMPUTE_32F_FAST_16BF, 0, 1, 0},
        {"wmma", CUBLAS_COMPUTE_32F, 1, 0, 0},           {"flash", CUBLAS_COMPUTE_32F, 1, 0, 0},
    };
    for (const Want &w : want) {
        if (w.env) setenv("CRUCIBLE_CUDA_ATTENTION", w.env, 1); else unsetenv("CRUCIBLE_CUDA_ATTENTION");
        int g0 = g_fallbacks, f0 = g_flash_calls;
        std::fill(o.begin(), o.end(), NAN);
        cuda_attention_forward_table(w.ct, o.data(), l.data(), x.data(), x.data(), x.data(), cu.data(), 1, 3, 1, 16,
                                     16, 0.25f);
        int wm = std::isfinite(o[0]) && fabsf(o[0] - 0.5f) < 1e-3f;  // uniform attention over 0.5s
        bool ok = g_fallbacks - g0 == w.gemm && g_flash_calls - f0 == w.flash && wm == w.wmma;
        char what[96];
        snprintf(what, sizeof what, "CRUCIBLE_CUDA_ATTENTION=%s (%s)", w.env ? w.env : "(unset)",
                 w.ct == CUBLAS_COMPUTE_32F ? "fp32" : "bf16");
        expect(ok, "", ok, what);
    }
    // a bad value: the process ends non-zero with a message naming the variable
    int fd[2];
    if (pipe(fd) != 0) sim_die("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 2);
        close(fd[0]);
        setenv("CRUCIBLE_CUDA_ATTENTION", "wmma2", 1);
        cuda_attention_forward_table(CUBLAS_COMPUTE_32F_FAST_16BF, o.data(), l.data(), x.data(), x.data(), x.data(),
                                     cu.data(), 1, 3, 1, 16, 16, 0.25f);
        _exit(0);
    }
    close(fd[1]);
    char buf[512] = {0};
    ssize_t n = read(fd[0], buf, sizeof buf - 1);
    (void)n;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) != 0 && strstr(buf, "CRUCIBLE_CUDA_ATTENTION") &&
              strstr(buf, "must be gemm, wmma or flash");
    expect(ok, "", ok, "CRUCIBLE_CUDA_ATTENTION=wmma2 rejected");
    unsetenv("CRUCIBLE_CUDA_ATTENTION");
}

int main(int argc, char **argv) {
    bool mla = argc > 1 && !strcmp(argv[1], "mla");
    if (mla) {
        check_case({65, 1, 130, 17, 64}, 1, 192, 128, false);
    } else {
        check_case({17, 1, 64, 130, 65}, 2, 32, 16, true);
        check_case({70, 3}, 1, 16, 48, false);  // one q/k fragment: the dQ kernel's second half idle
        // shapes the kernels do not take go to the gemm path
        int fb = g_fallbacks;
        std::vector<int32_t> cu = {0, 5};
        std::vector<float> x(5 * 24, 1.0f), o(5 * 16), l(5);
        cuda_attention_forward_wmma(o.data(), l.data(), x.data(), x.data(), x.data(), cu.data(), 1, 5, 1, 24, 16,
                                    0.2f);
        bool took = g_fallbacks == fb + 1;
        expect(took, "", took, "q/k 24 takes the gemm fallback");
        check_selection();
    }
    if (g_failed) {
        printf("%d check(s) failed\n", g_failed);
        return 1;
    }
    printf("all ok\n");
    return 0;
}
