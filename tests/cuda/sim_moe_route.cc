// tests/cuda/sim_moe_route.cc — model/cuda/moe_route.cu's router kernels run on the CPU
// simulator (tests/cuda/sim/cuda_sim.h) as written: the one-warp-per-token kernel
// (CRUCIBLE_CUDA_ROUTE=warp) and the one-thread-per-token kernel, each against
// model/moe_select.h run directly on the host (the CPU router's code): probabilities,
// expert ids and weights bit for bit. Greedy and group-limited routers (Lite's E 64 K 6,
// V2's E 160 in 8 groups, E 256 in 64 groups, K up to 8, renormalised or scaled), N 1..37
// (several warps and blocks), logits with ties (a coarse grid), -inf, and NaN rows (the
// sequential scan's semantics). Prints "all ok" and exits 0 on success. Built and run by
// tests/cuda/test_moe_route_host.c.
#include "tests/cuda/sim/cuda_sim.h"

#include SIM_CU

// The context's small scratch (the aux-loss kernels' partial sums; not run here).
CudaCtx *cuda_ctx(void) {
    static CudaCtx c;
    if (!c.scratch) c.scratch = calloc(1, CUDA_SCRATCH_BYTES);
    return &c;
}

#define SIM_RNG_SEED 0x8CB92BA72F3D8DD7ull
#include "tests/cuda/sim/sim_check.h"

static void run_case(OpsMoeRoute r, int N, bool warp) {
    int E = r.E, K = r.K;
    printf("case %s E=%d K=%d grp=%d (%d of %d) norm=%d N=%d\n", warp ? "warp" : "thread", E, K, r.group_limited,
           r.topk_group, r.n_group, r.norm_topk_prob, N);
    std::vector<float> l((size_t)N * E);
    for (float &f : l) {
        double u = urand();
        f = u < 0.3 ? (float)((int)(urand() * 5) - 2) : u < 0.32 ? -INFINITY : (float)(urand() * 8 - 4);
    }
    for (int n = 0; n < N; n++)
        if (urand() < 0.1) l[(size_t)n * E + (size_t)(urand() * E)] = NAN;
    std::vector<float> p((size_t)N * E, 7.0f), w((size_t)N * K, 7.0f), pr((size_t)N * E), wr((size_t)N * K);
    std::vector<int32_t> idx((size_t)N * K, -9), ir((size_t)N * K);
    std::vector<float> masked(E);
    std::vector<unsigned char> taken(E), gt(64);
    std::vector<float> gs(64);
    for (int n = 0; n < N; n++) {
        moe_router_softmax(&pr[(size_t)n * E], &l[(size_t)n * E], E);
        moe_select_experts(&ir[(size_t)n * K], &wr[(size_t)n * K], &pr[(size_t)n * E], &r, masked.data(),
                           taken.data(), gs.data(), gt.data());
    }
    if (warp) setenv("CRUCIBLE_CUDA_ROUTE", "warp", 1);
    cuda_moe_route_forward(p.data(), idx.data(), w.data(), l.data(), N, &r);
    unsetenv("CRUCIBLE_CUDA_ROUTE");
    bool same = !memcmp(p.data(), pr.data(), sizeof(float) * p.size()) &&
                !memcmp(idx.data(), ir.data(), sizeof(int32_t) * idx.size()) &&
                !memcmp(w.data(), wr.data(), sizeof(float) * w.size());
    printf("  probs, ids, weights bit-identical to moe_select.h %s\n", same ? "ok" : "FAIL");
    g_checks++;
    if (!same) g_failed++;
}

int main() {
    OpsMoeRoute greedy = {64, 6, 0, 1, 1, 0, 1.0f}, grouped = {160, 6, 1, 8, 3, 0, 16.0f},
                renorm = {16, 4, 1, 4, 2, 1, 2.5f}, wide = {256, 8, 1, 64, 4, 1, 1.0f}, one = {8, 1, 0, 1, 1, 1, 1.5f};
    for (bool warp : {true, false})
        for (OpsMoeRoute r : {greedy, grouped, renorm, wide, one}) {
            run_case(r, 1, warp);
            run_case(r, 5, warp);
            if (warp) run_case(r, 37, warp);
        }
    return sim_finish();
}
