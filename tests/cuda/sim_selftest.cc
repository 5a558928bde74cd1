// tests/cuda/sim_selftest.cc — tests of the CPU simulator itself (tests/cuda/sim/cuda_sim.h
// and the CUB fakes): kernels written here in CUDA's dialect and launched through
// sim_launch, checked against values derived by hand: shuffle semantics (xor, down,
// indexed, widths 32 and 8, float/int/double), warp_sum and block_sum/block_max (the fast
// warp reduction bit-identical to cuda_common.cuh's shuffle tree), 3-D grids and blocks,
// dynamic shared memory NaN-refilled per block, the CUB fakes' contracts; and, each in a
// forked child that must fail with a message, what the simulator must report: divergent
// __syncthreads, a thread that returned before a barrier, a partial shuffle mask, a lane
// that never reaches a shuffle, too much shared memory without cudaFuncSetAttribute, bad
// block / grid shapes, a too-small sort buffer, and (AddressSanitizer) a read past the
// launch's dynamic shared memory. Prints "all ok" and exits 0 on success. Built and run by
// tests/cuda/test_cuda_sim_host.c.
#include "tests/cuda/sim/cub_sim.h"

#include <string>

#include <sys/wait.h>

static int g_failed, g_checks;
static void expect(bool ok, const char *what) {
    printf("  %-60s %s\n", what, ok ? "ok" : "FAIL");
    g_checks++;
    if (!ok) g_failed++;
}

// ---- kernels -------------------------------------------------------------------------

__global__ void k_shuffles(int *out) {
    int t = threadIdx.x, n = blockDim.x;
    out[0 * n + t] = __shfl_xor_sync(0xffffffffu, t, 5);
    out[1 * n + t] = __shfl_down_sync(0xffffffffu, t, 3);
    out[2 * n + t] = __shfl_sync(0xffffffffu, t, 7);
    out[3 * n + t] = __shfl_xor_sync(0xffffffffu, t, 4, 8);
    out[4 * n + t] = __shfl_down_sync(0xffffffffu, t, 3, 8);
    out[5 * n + t] = (int)__shfl_sync(0xffffffffu, (double)t + 0.5, 9, 16);
}

__global__ void k_reduce(float *out, const float *x) {
    __shared__ float red[32];
    int t = threadIdx.x;
    float v = x[t];
    out[t] = warp_sum(v);
    out[blockDim.x + t] = sim_cc_warp_sum(v);  // cuda_common.cuh's, on __shfl_xor_sync
    out[2 * blockDim.x + t] = warp_max(v);
    out[3 * blockDim.x + t] = sim_cc_warp_max(v);
    out[4 * blockDim.x + t] = block_sum(v, red);
    __syncthreads();
    out[5 * blockDim.x + t] = block_max(v, red);
}

__global__ void k_index(int *seen, int *bad) {
    unsigned b = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
    unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
    unsigned nt = blockDim.x * blockDim.y * blockDim.z;
    seen[b * nt + t]++;  // each (block, thread) exactly once
    if (threadIdx.x >= blockDim.x || threadIdx.y >= blockDim.y || threadIdx.z >= blockDim.z) bad[0] = 1;
}

__global__ void k_smem(int *nan_seen, int n) {
    float *s = (float *)sim_dynamic_smem();
    if (threadIdx.x == 0) nan_seen[blockIdx.x] = std::isnan(s[n - 1]) && std::isnan(s[0]);
    __syncthreads();
    s[threadIdx.x % n] = 1.0f;  // the next block must not see these
}

__global__ void k_cub(float *out, double *scan) {
    typedef cub::BlockReduce<float, 64> Red;
    typedef cub::BlockScan<double, 64> Scan;
    __shared__ typename Red::TempStorage tr;
    __shared__ typename Scan::TempStorage ts;
    int t = threadIdx.x;
    out[t] = Red(tr).Sum((float)t);
    double in[2] = {1.0, (double)t}, o[2];
    Scan(ts).InclusiveSum(in, o);
    scan[2 * t] = o[0], scan[2 * t + 1] = o[1];
}

// the failures
__global__ void k_divergent(int *) {
    if (threadIdx.x < 32) {
        __syncthreads();
    } else {
        __syncthreads();
    }
}
__global__ void k_early_return(int *) {
    if (threadIdx.x == 5) return;
    __syncthreads();
}
__global__ void k_partial_mask(int *out) { out[threadIdx.x] = __shfl_xor_sync(0x0000ffffu, (int)threadIdx.x, 1); }
__global__ void k_lane_missing(int *out) {
    if (threadIdx.x == 3) return;
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, (int)threadIdx.x, 1);
}
__global__ void k_smem_read(float *out, int at) { out[threadIdx.x] = ((float *)sim_dynamic_smem())[at]; }
__global__ void k_nothing(int *) {}

// Runs f in a forked child: it must exit non-zero with `want` in its output.
template <class F>
static void expect_failure(const char *what, const char *want, F f) {
    int fd[2];
    if (pipe(fd) != 0) sim_fail("pipe");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fd[1], 1), dup2(fd[1], 2);
        close(fd[0]);
        f();
        fflush(stdout);
        _exit(0);
    }
    close(fd[1]);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = read(fd[0], buf, sizeof buf)) > 0) out.append(buf, (size_t)n);
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    bool ok = WIFEXITED(st) && WEXITSTATUS(st) != 0 && out.find(want) != std::string::npos;
    char line[200];
    snprintf(line, sizeof line, "reported: %s", what);
    expect(ok, line);
    if (!ok) printf("    child said: %.300s\n", out.c_str());
}

int main() {
    {  // shuffles
        std::vector<int> out(6 * 64, -1);
        sim_launch(SimCfg(1, 64), k_shuffles, out.data());
        bool ok = true;
        for (int t = 0; t < 64; t++) {
            int l = t & 31, base = t - l;
            ok &= out[t] == (t ^ 5);
            ok &= out[64 + t] == (l + 3 < 32 ? t + 3 : t);
            ok &= out[128 + t] == base + 7;
            ok &= out[192 + t] == (t ^ 4);
            ok &= out[256 + t] == ((l & 7) + 3 < 8 ? t + 3 : t);
            ok &= out[320 + t] == base + (l & 16) + 9;
        }
        expect(ok, "shuffles: xor, down, indexed; widths 32, 16, 8; int, double");
    }
    {  // reductions
        int n = 256;
        std::vector<float> x(n), out(6 * n, NAN);
        uint64_t r = 12345;
        for (float &v : x) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            v = (float)((double)(r >> 11) / 9007199254740992.0 * 200 - 100);
        }
        sim_launch(SimCfg(1, n), k_reduce, out.data(), x.data());
        bool same =
            !memcmp(out.data(), out.data() + n, 4 * n) && !memcmp(out.data() + 2 * n, out.data() + 3 * n, 4 * n);
        expect(same, "warp_sum / warp_max bit-identical to cuda_common.cuh's shuffle tree");
        bool ok = true;
        double total = 0;
        float mx = -INFINITY;
        for (int w = 0; w < n / 32; w++) {
            double s = 0;
            float m = -INFINITY;
            for (int l = 0; l < 32; l++) s += x[w * 32 + l], m = fmaxf(m, x[w * 32 + l]);
            total += s, mx = fmaxf(mx, m);
            for (int l = 0; l < 32; l++) ok &= fabs(out[w * 32 + l] - s) < 1e-3 && out[2 * n + w * 32 + l] == m;
        }
        for (int t = 0; t < n; t++) ok &= fabs(out[4 * n + t] - total) < 1e-2 && out[5 * n + t] == mx;
        expect(ok, "warp_sum/max per warp, block_sum/max in every thread");
    }
    {  // 3-D indices
        dim3 g(2, 3, 2), b(8, 4, 2);
        std::vector<int> seen(12 * 64, 0), bad(1, 0);
        sim_launch(SimCfg(g, b), k_index, seen.data(), bad.data());
        bool ok = !bad[0];
        for (int v : seen) ok &= v == 1;
        expect(ok, "3-D grid and block: every (block, thread) once");
    }
    {  // shared memory refill
        std::vector<int> nan_seen(3, 0);
        sim_launch(SimCfg(3, 32, 1000 * sizeof(float)), k_smem, nan_seen.data(), 1000);
        expect(nan_seen[0] && nan_seen[1] && nan_seen[2], "dynamic shared memory NaN at every block's start");
    }
    {  // CUB fakes
        std::vector<float> out(64);
        std::vector<double> scan(128);
        sim_launch(SimCfg(1, 64), k_cub, out.data(), scan.data());
        bool ok = out[0] == 2016.0f && std::isnan(out[1]) && std::isnan(out[63]);
        double run = 0;
        for (int t = 0; t < 64; t++) {
            run += 1.0;
            ok &= scan[2 * t] == run;
            run += t;
            ok &= scan[2 * t + 1] == run;
        }
        expect(ok, "BlockReduce (thread 0 only) and BlockScan (blocked, inclusive)");
        uint64_t k0[6] = {5, 1, 9, 3, 3, 7}, k1[6];
        int off[3] = {0, 4, 6};
        cub::DoubleBuffer<uint64_t> db(k0, k1);
        size_t bytes = 0;
        cub::DeviceSegmentedRadixSort::SortKeysDescending(NULL, bytes, db, 6, 2, off, off + 1);
        std::vector<char> temp(bytes);
        cub::DeviceSegmentedRadixSort::SortKeysDescending(temp.data(), bytes, db, 6, 2, off, off + 1);
        uint64_t want[6] = {9, 5, 3, 1, 7, 3};
        expect(db.Current() == k1 && !memcmp(k1, want, sizeof want), "segmented sort, descending, selector flipped");
    }
    expect_failure("divergent __syncthreads", "different calls",
                   [] { sim_launch(SimCfg(1, 64), k_divergent, (int *)0); });
    expect_failure("a thread returned before __syncthreads", "returned", [] {
        sim_launch(SimCfg(1, 64), k_early_return, (int *)0);
    });
    expect_failure("partial shuffle mask", "mask", [] {
        std::vector<int> o(32);
        sim_launch(SimCfg(1, 32), k_partial_mask, o.data());
    });
    expect_failure("a lane never reaching a shuffle", "returned", [] {
        std::vector<int> o(32);
        sim_launch(SimCfg(1, 32), k_lane_missing, o.data());
    });
    expect_failure("49 KiB of dynamic shared memory without the opt-in", "48 KiB", [] {
        sim_launch(SimCfg(1, 32, 49 * 1024), k_nothing, (int *)0);
    });
    {
        sim_func_attr(k_nothing, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024);
        sim_launch(SimCfg(1, 32, 100 * 1024), k_nothing, (int *)0);
        expect(true, "100 KiB after cudaFuncSetAttribute launches");
    }
    expect_failure("a block of 1025 threads", "block", [] { sim_launch(SimCfg(1, 1025), k_nothing, (int *)0); });
    expect_failure("grid.y of 65536", "grid", [] { sim_launch(SimCfg(dim3(1, 65536), 32), k_nothing, (int *)0); });
    expect_failure("a sort buffer smaller than the query", "temporary storage", [] {
        uint64_t a[4] = {1, 2, 3, 4}, b[4];
        int off[2] = {0, 4};
        cub::DoubleBuffer<uint64_t> db(a, b);
        size_t bytes = 8;
        char t[8];
        cub::DeviceSegmentedRadixSort::SortKeysDescending(t, bytes, db, 4, 1, off, off + 1);
    });
#if defined(__SANITIZE_ADDRESS__)
    expect_failure("a read past the launch's dynamic shared memory", "AddressSanitizer", [] {
        std::vector<float> o(32);
        sim_launch(SimCfg(1, 32, 256), k_smem_read, o.data(), 64);
    });
#endif
    if (g_failed) {
        printf("%d of %d check(s) failed\n", g_failed, g_checks);
        return 1;
    }
    printf("%d checks: all ok\n", g_checks);
    return 0;
}
