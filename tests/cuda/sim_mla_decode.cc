// tests/cuda/sim_mla_decode.cc — model/cuda/mla_decode.cu's kernels run on the CPU
// simulator (tests/cuda/sim/cuda_sim.h) as written: mla_cache_scatter_kernel through
// cuda_mla_cache_scatter, and mla_decode_split_kernel + mla_decode_combine_kernel through
// cuda_mla_decode_attention, against naive references of the contract of
// model/cpu/mla_cache.c (the cache row of position p of a sequence lives in block
// bt[p / block_tokens] at p % block_tokens; attention is softmax(scale q.c_j) over
// j <= pos, output sum_j p_j c_j[0:r], computed here in double).
// Random block tables (blocks shuffled over a pool; entries past a row's context hold an
// id far outside the pool, so reading one is an AddressSanitizer error), a cache of two
// layers filled by the scatter kernel (checked bit for bit, the other layer untouched),
// contexts 1, 37, 256, 257 and 300 (two splits of 256 from 257 on), H 3, 11 (a full head group of 8 and a
// partial one) and 16, r/dr 16/8 and 13/5 (blocks of one position), Lite's 512/64 at context 37, and a row too wide for
// 8 heads in 48 KiB (r 2048: head groups halve). Outputs NaN-filled first; attention within 2e-5 (norm-wise relative)
// and every element within 1e-4 of the reference's scale. Prints "all ok" and exits 0 on success. Built and run by
// tests/cuda/test_mla_decode_host.c.
#include "tests/cuda/sim/cuda_sim.h"

#include <algorithm>

#include SIM_CU

static uint64_t g_rng = 0x2545F4914F6CDD1Dull;
static uint64_t next_u64() {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}
static double urand() { return (double)(next_u64() >> 11) / 9007199254740992.0; }

static int g_failed, g_checks;
static void expect(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void expect(bool ok, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    printf("  ");
    vprintf(fmt, ap);
    va_end(ap);
    printf(" %s\n", ok ? "ok" : "FAIL");
    g_checks++;
    if (!ok) g_failed++;
}

enum { BAD_BLOCK = 1 << 24 };  // far past the pool

// pad_blocks: more table entries per row than the contexts need (forward_ops' padded
// tables under recorded steps): splits wholly past every context, which must stay neutral.
static void run_case(const std::vector<int> &ctxs, int H, int r, int dr, int block_tokens, int pad_blocks = 1) {
    const int n_layers = 2, layer = 1, rw = r + dr, n = (int)ctxs.size();
    int max_ctx = *std::max_element(ctxs.begin(), ctxs.end());
    int max_blocks = (max_ctx + block_tokens - 1) / block_tokens + pad_blocks;  // spare entries
    int pool = n * max_blocks + 3;
    printf("case contexts");
    for (int c : ctxs) printf(" %d", c);
    printf(", H=%d r=%d dr=%d block_tokens=%d\n", H, r, dr, block_tokens);
    // block tables: distinct blocks from a shuffled pool
    std::vector<int32_t> ids(pool), bt((size_t)n * max_blocks, BAD_BLOCK), pos(n);
    for (int b = 0; b < pool; b++) ids[b] = b;
    for (int b = pool - 1; b > 0; b--) std::swap(ids[b], ids[next_u64() % (uint64_t)(b + 1)]);
    int used = 0;
    for (int i = 0; i < n; i++) {
        pos[i] = ctxs[i] - 1;
        for (int j = 0; j < (ctxs[i] + block_tokens - 1) / block_tokens; j++)
            bt[(size_t)i * max_blocks + j] = ids[used++];
    }
    // scatter every position of every row, one scatter row each, in a shuffled order
    struct Ent { int i, p; };
    std::vector<Ent> ents;
    for (int i = 0; i < n; i++)
        for (int p = 0; p < ctxs[i]; p++) ents.push_back({i, p});
    for (size_t e = ents.size() - 1; e > 0; e--) std::swap(ents[e], ents[next_u64() % (e + 1)]);
    size_t ns = ents.size();
    std::vector<float> src(ns * rw);
    std::vector<int32_t> sbt(ns * max_blocks), spos(ns);
    for (float &f : src) f = (float)(urand() * 2 - 1);
    for (size_t e = 0; e < ns; e++) {
        memcpy(&sbt[e * max_blocks], &bt[(size_t)ents[e].i * max_blocks], sizeof(int32_t) * max_blocks);
        spos[e] = ents[e].p;
    }
    size_t cache_n = (size_t)pool * n_layers * block_tokens * rw;
    std::vector<float> cache(cache_n, NAN), want(cache_n, NAN);
    for (size_t e = 0; e < ns; e++) {
        int i = ents[e].i, p = ents[e].p;
        size_t b = (size_t)bt[(size_t)i * max_blocks + p / block_tokens];
        memcpy(&want[((b * n_layers + layer) * block_tokens + p % block_tokens) * rw], &src[e * rw],
               sizeof(float) * rw);
    }
    cuda_mla_cache_scatter(cache.data(), sbt.data(), max_blocks, n_layers, layer, block_tokens, rw, src.data(),
                           spos.data(), (int)ns);
    bool same = !memcmp(cache.data(), want.data(), sizeof(float) * cache_n);
    expect(same, "scatter of %zu rows: cache bit-identical, layer 0 untouched", ns);

    // attention
    std::vector<float> qa((size_t)n * H * rw), out((size_t)n * H * r, NAN);
    for (float &f : qa) f = (float)(urand() * 2 - 1);
    float scale = 1.7f / sqrtf((float)rw);
    std::vector<double> ref(out.size(), 0.0);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < H; h++) {
            const float *q = &qa[((size_t)i * H + h) * rw];
            std::vector<double> s(ctxs[i]);
            double mx = -INFINITY, sum = 0;
            for (int j = 0; j < ctxs[i]; j++) {
                size_t b = (size_t)bt[(size_t)i * max_blocks + j / block_tokens];
                const float *c = &want[((b * n_layers + layer) * block_tokens + j % block_tokens) * rw];
                double d = 0;
                for (int k = 0; k < rw; k++) d += (double)q[k] * c[k];
                s[j] = scale * d;
                mx = fmax(mx, s[j]);
            }
            for (int j = 0; j < ctxs[i]; j++) sum += (s[j] = exp(s[j] - mx));
            for (int j = 0; j < ctxs[i]; j++) {
                size_t b = (size_t)bt[(size_t)i * max_blocks + j / block_tokens];
                const float *c = &want[((b * n_layers + layer) * block_tokens + j % block_tokens) * rw];
                for (int k = 0; k < r; k++) ref[((size_t)i * H + h) * r + k] += s[j] / sum * c[k];
            }
        }
    cuda_mla_decode_attention(out.data(), qa.data(), cache.data(), bt.data(), max_blocks, n_layers, layer,
                              block_tokens, pos.data(), n, H, r, dr, scale);
    double num = 0, den = 0, worst = 0, sc = 1e-30;
    bool finite = true;
    for (double v : ref) sc = fmax(sc, fabs(v));
    for (size_t e = 0; e < ref.size(); e++) {
        finite &= std::isfinite(out[e]);
        double d = out[e] - ref[e];
        num += d * d, den += ref[e] * ref[e], worst = fmax(worst, fabs(d) / sc);
    }
    double rel = sqrt(num / den);
    expect(finite && rel < 2e-5 && worst < 1e-4, "attention: rel %.2e worst %.2e", rel, worst);
}

int main(int argc, char **argv) {
    const char *which = argc > 1 ? argv[1] : "small";
    if (!strcmp(which, "small")) {
        run_case({1, 37, 300}, 3, 16, 8, 16);  // one head group of 3; 300 spans two splits
        run_case({300, 1}, 16, 16, 8, 32);     // two full head groups
        run_case({37, 5, 1}, 11, 16, 8, 16);   // a group of 8 and a partial group of 3
        run_case({256, 257}, 2, 8, 4, 64);     // a split exactly full; one position past it
        run_case({37, 3}, 5, 13, 5, 1);        // odd r and dr, one position per block
    } else if (!strcmp(which, "split64") || !strcmp(which, "split32")) {
        // CRUCIBLE_CUDA_MLA_SPLIT: shorter splits, more of them per row
        setenv("CRUCIBLE_CUDA_MLA_SPLIT", which + 5, 1);
        run_case({1, 37, 300}, 3, 16, 8, 16);      // 300: 5 (or 10) splits
        run_case({64, 65, 31, 33}, 11, 16, 8, 16); // a split exactly full, one past it; partial head group
        run_case({37, 2}, 16, 512, 64, 64);        // Lite's row
        run_case({100, 7}, 4, 16, 8, 16, 70);      // a table padded 70 blocks past the contexts
        unsetenv("CRUCIBLE_CUDA_MLA_SPLIT");
    } else if (!strcmp(which, "wide")) {
        run_case({37, 2}, 16, 512, 64, 64);  // DeepSeek-V2-Lite's latent row, 8 heads per block
        run_case({5}, 8, 2048, 64, 16);      // 8 heads would need 74 KiB: groups of 4
    }
    if (g_failed) {
        printf("%d of %d check(s) failed\n", g_failed, g_checks);
        return 1;
    }
    printf("%d checks, %ld launches, %ld blocks simulated: all ok\n", g_checks, sim.launches, sim.blocks);
    return 0;
}
