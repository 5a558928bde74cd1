// tests/cuda/sim/cuda_sim.h — a CPU simulator for the CUDA kernels of model/cuda/, so their
// indexing, synchronisation and numerics run (as written) in host tests without a GPU.
// Include it first in a C++ file compiled by g++, then a model/cuda/*.cu file rewritten by
// tests/cuda/sim_host.c (sim_host_rewrite: `k<<<g, b, smem>>>(args)` becomes
// `sim_launch(SimCfg(g, b, smem), k, args)` and `extern __shared__ T name[];` becomes a
// pointer to the launch's dynamic shared memory; cudaLaunchKernel works as it is).
// model/cuda/cuda_common.cuh is used as it is: block_sum / block_max run on the shuffles
// below; a kernel's own warp_sum / warp_max calls take a one-exchange butterfly with the
// same results bit for bit (tests/cuda/sim_selftest.cc checks it), five times cheaper.
//
// The model:
//  - every CUDA thread of a block is an OS thread (threadIdx thread-local); blocks run one
//    after another on the same threads, so blockIdx/gridDim/blockDim are process-wide;
//  - __syncthreads is a barrier of the block; all threads must reach the same call (the
//    same source line) and none may have returned: a divergent barrier, a thread that
//    exited while others wait, or a wait over SIM_BARRIER_TIMEOUT_S is a reported
//    failure, not a hang;
//  - warps are 32 consecutive linear thread ids; __shfl_xor_sync / __shfl_sync /
//    __shfl_down_sync exchange through a barrier of the warp (full mask only; every lane
//    must arrive at the same line, none may have exited);
//  - dynamic shared memory is one arena refilled with 0xFF bytes (NaN floats) before each
//    block; bytes past the launch's size are poisoned for AddressSanitizer. Static
//    __shared__ variables become function-level statics: one object per kernel (per
//    template instance) shared by the block's threads, right because blocks run one at a
//    time (they are not refilled between blocks: the simulator cannot see a kernel that
//    reads static shared memory it did not write in this block);
//  - launches are checked against the hardware limits (block <= 1024 threads, grid y/z
//    <= 65535, dynamic shared memory <= 48 KiB unless cudaFuncSetAttribute raised it for
//    that kernel, never above the H100's 227 KiB); the process's threads are pinned to
//    one CPU (cheaper barriers, and a test leaves the other cores alone);
//  - cudaMemcpy*/cudaMemset* are host memcpy/memset; cuda_big_scratch returns a fresh
//    exact-size allocation each call (an overrun, or a use after the next call, is an
//    AddressSanitizer error), filled with NaN bytes.
// Not modelled: the memory model (caching, visibility without a barrier is only what the
// OS threads give; ThreadSanitizer builds report the races), timing, occupancy, register
// limits, the real static shared-memory size, atomics, streams and events (everything runs
// in call order), wmma (tests/cuda/sim_attention_wmma.cc adds a scrambled-layout one),
// CUB's real algorithms (the fakes in tests/cuda/sim/cub_sim.h keep CUB's contracts but
// not its summation orders). Cost: a barrier wakes every thread of its group, so a test
// keeps to a few thousand blocks.
#ifndef CRUCIBLE_TESTS_CUDA_SIM_CUDA_SIM_H
#define CRUCIBLE_TESTS_CUDA_SIM_CUDA_SIM_H

#include <atomic>
#include <cstdarg>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define SIM_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define SIM_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define SIM_POISON(p, n) ((void)(p), (void)(n))
#define SIM_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

enum {
    SIM_MAX_THREADS = 1024,
    SIM_SMEM_DEFAULT = 48 * 1024,
    SIM_SMEM_OPTIN = 232448,  // H100: 227 KiB per block with the opt-in
    SIM_BARRIER_TIMEOUT_S = 60,
};

// A failure ends the process at once (other threads may be blocked in barriers).
[[noreturn]] static void sim_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sim_fail(const char *fmt, ...) {
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fflush(stdout);
    fprintf(stderr, "FAIL sim: %s\n", buf);
    fflush(stderr);
    _exit(1);
}

// ---- barriers ----------------------------------------------------------------------

// Waits on the futex word `w` while it holds v, at most `ms` milliseconds.
static void sim_futex_wait(std::atomic<uint32_t> &w, uint32_t v, int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    syscall(SYS_futex, (uint32_t *)&w, FUTEX_WAIT_PRIVATE, v, &ts, NULL, 0);
}
static void sim_futex_wake_all(std::atomic<uint32_t> &w) {
    syscall(SYS_futex, (uint32_t *)&w, FUTEX_WAKE_PRIVATE, INT32_MAX, NULL, NULL, 0);
}

// A barrier of n threads on a futex (no mutex: a release wakes the waiters without a
// convoy). It reports, instead of hanging, threads waiting at different call sites, a
// participant that has returned, or a wait past the timeout. The last thread to arrive
// runs `done` (when set) before releasing the others.
struct SimBarrier {
    std::atomic<uint32_t> gen{0};
    std::atomic<int> arrived{0}, exited{0}, site{0};
    const char *what = "barrier";
    int n = 0;
    void reset(int n_, const char *what_) {  // only while no thread uses it
        n = n_, what = what_;
        arrived.store(0), exited.store(0), site.store(0);
    }
    template <class F>
    void wait_then(int line, F done) {
        if (exited.load())
            sim_fail("%s at line %d: %d thread(s) of the group already returned (they never arrive)", what, line,
                     exited.load());
        uint32_t g = gen.load();  // before arriving: gen cannot move until this thread arrives
        int want = 0;
        if (!site.compare_exchange_strong(want, line) && want != line)
            sim_fail("%s: threads of one group wait at different calls (lines %d and %d)", what, want, line);
        if (arrived.fetch_add(1) + 1 == n) {
            arrived.store(0), site.store(0);
            done();
            gen.fetch_add(1);
            sim_futex_wake_all(gen);
            return;
        }
        // With far more threads than cores, yielding lets the others arrive without the
        // cost of a sleep and a wake-up; a long wait sleeps on the futex.
        for (int spin = 0; spin < 64 && gen.load() == g; spin++) sched_yield();
        for (int waited_ms = 0; gen.load() == g; waited_ms += 100) {
            if (exited.load()) sim_fail("%s at line %d: a thread of the group returned while others wait", what, line);
            if (waited_ms > SIM_BARRIER_TIMEOUT_S * 1000)
                sim_fail("%s at line %d: %d of %d threads arrived in %d s", what, line, arrived.load(), n,
                         SIM_BARRIER_TIMEOUT_S);
            sim_futex_wait(gen, g, 100);
        }
    }
    void wait(int line) {
        wait_then(line, [] {});
    }
    // The calling thread has returned from the kernel.
    void leave() {
        exited.fetch_add(1);
        if (arrived.load()) sim_futex_wake_all(gen);  // the waiters report it
    }
};

struct SimWarp {
    SimBarrier bar;
    uint64_t slot[2][32];  // shuffles alternate between the two: one barrier per shuffle
    int lanes = 32;
};

struct SimState {
    SimBarrier block, sched;
    SimWarp warps[SIM_MAX_THREADS / 32];
    uint3 bid;
    dim3 bdim, gdim;
    size_t smem_bytes = 0;
    std::map<const void *, int> smem_optin;  // kernel -> cudaFuncAttributeMaxDynamicSharedMemorySize
    long launches = 0, blocks = 0;
};
static SimState sim;
alignas(256) static unsigned char sim_smem[SIM_SMEM_OPTIN];

struct SimThread {
    uint3 tid;
    int lin, lane, warp;
    unsigned shfl;  // shuffles done in this block (selects the slot buffer)
};
static thread_local SimThread sim_t;

static inline void sim_syncthreads(int line) { sim.block.wait(line); }
static inline void sim_syncwarp(unsigned mask, int line) {
    SimWarp &w = sim.warps[sim_t.warp];
    unsigned full = w.lanes == 32 ? 0xffffffffu : (1u << w.lanes) - 1;
    if (mask != 0xffffffffu && mask != full) sim_fail("__syncwarp at line %d with a partial mask %#x", line, mask);
    w.bar.wait(line);
}

// Lane src's value of v (src < 0: the caller's own); every lane of the warp takes part.
template <class T>
static T sim_shuffle(unsigned mask, T v, int src, int line, const char *what) {
    static_assert(sizeof(T) <= 8 && std::is_trivially_copyable<T>::value, "shuffle of a 1..8-byte value");
    SimWarp &w = sim.warps[sim_t.warp];
    if (mask != 0xffffffffu)
        sim_fail("%s at line %d with mask %#x (the simulator takes the full mask only)", what, line, mask);
    if (w.lanes != 32) sim_fail("%s at line %d with a full mask in a warp of %d threads", what, line, w.lanes);
    uint64_t *slot = w.slot[sim_t.shfl++ & 1];
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    slot[sim_t.lane] = bits;
    w.bar.wait(line);
    if (src < 0) return v;
    T r;
    memcpy(&r, &slot[src], sizeof r);
    return r;
}
// The target lane of lane `lane` in its segment of `width` lanes, or -1 (keeps its own).
static inline int sim_seg_lane(int lane, int target, int width, int line) {
    if (width <= 0 || width > 32 || (width & (width - 1))) sim_fail("shuffle width %d at line %d", width, line);
    int base = lane & ~(width - 1);
    return target >= base && target < base + width ? target : -1;
}
template <class T>
static T sim_shfl_xor(unsigned mask, T v, int lane_mask, int width, int line) {
    return sim_shuffle(mask, v, sim_seg_lane(sim_t.lane, sim_t.lane ^ lane_mask, width, line), line, "__shfl_xor_sync");
}
template <class T>
static T sim_shfl(unsigned mask, T v, int src, int width, int line) {
    int base = sim_t.lane & ~(width - 1);
    return sim_shuffle(mask, v, sim_seg_lane(sim_t.lane, base + (src & (width - 1)), width, line), line, "__shfl_sync");
}
template <class T>
static T sim_shfl_down(unsigned mask, T v, unsigned delta, int width, int line) {
    return sim_shuffle(mask, v, sim_seg_lane(sim_t.lane, sim_t.lane + (int)delta, width, line), line,
                       "__shfl_down_sync");
}

// ---- what kernels see -------------------------------------------------------------

#undef __global__
#define __global__
#undef __device__
#define __device__
#undef __host__
#define __host__
#undef __forceinline__
#define __forceinline__ inline
#undef __launch_bounds__
#define __launch_bounds__(...)
#undef __shared__
#define __shared__ static
#undef __constant__
#define __constant__ static
#undef __align__
#define __align__(n) __attribute__((aligned(n)))

#define threadIdx (sim_t.tid)
#define blockIdx (sim.bid)
#define blockDim (sim.bdim)
#define gridDim (sim.gdim)
#define warpSize 32
#define __syncthreads() sim_syncthreads(__LINE__)
static inline unsigned sim_opt(unsigned v = 0xffffffffu) { return v; }  // __syncwarp's optional mask
static inline int sim_width(int w = 32) { return w; }                      // a shuffle's optional width
#define __syncwarp(...) sim_syncwarp(sim_opt(__VA_ARGS__), __LINE__)
#define __shfl_xor_sync(mask, v, lm, ...) sim_shfl_xor(mask, v, lm, sim_width(__VA_ARGS__), __LINE__)
#define __shfl_sync(mask, v, src, ...) sim_shfl(mask, v, src, sim_width(__VA_ARGS__), __LINE__)
#define __shfl_down_sync(mask, v, d, ...) sim_shfl_down(mask, v, d, sim_width(__VA_ARGS__), __LINE__)

template <class T>
static inline T __ldg(const T *p) { return *p; }
static inline unsigned __float_as_uint(float f) {
    unsigned u;
    memcpy(&u, &f, sizeof u);
    return u;
}
static inline float __uint_as_float(unsigned u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}
static inline int __float_as_int(float f) { return (int)__float_as_uint(f); }
static inline float __int_as_float(int i) { return __uint_as_float((unsigned)i); }
static inline int min(int a, int b) { return a < b ? a : b; }
static inline int max(int a, int b) { return a > b ? a : b; }

// The launch's dynamic shared memory (what `extern __shared__ T name[]` names).
static inline void *sim_dynamic_smem(void) { return sim_smem; }

// ---- runtime -----------------------------------------------------------------------

static const char *sim_error_string(cudaError_t e) { return e == cudaSuccess ? "no error" : "simulated error"; }
static cudaError_t sim_get_last_error(void) { return cudaSuccess; }
static cudaError_t sim_memcpy(void *d, const void *s, size_t n, cudaMemcpyKind) {
    if (n) memmove(d, s, n);
    return cudaSuccess;
}
static cudaError_t sim_memcpy_async(void *d, const void *s, size_t n, cudaMemcpyKind k, cudaStream_t = 0) {
    return sim_memcpy(d, s, n, k);
}
static cudaError_t sim_memcpy2d(void *d, size_t dp, const void *s, size_t sp, size_t w, size_t h, cudaMemcpyKind,
                                cudaStream_t = 0) {
    if (w > dp || w > sp) sim_fail("cudaMemcpy2D: width %zu above a pitch (%zu, %zu)", w, dp, sp);
    for (size_t r = 0; r < h; r++) memmove((char *)d + r * dp, (const char *)s + r * sp, w);
    return cudaSuccess;
}
static cudaError_t sim_memset(void *p, int v, size_t n) {
    if (n) memset(p, v, n);
    return cudaSuccess;
}
static cudaError_t sim_memset_async(void *p, int v, size_t n, cudaStream_t = 0) { return sim_memset(p, v, n); }
static cudaError_t sim_sync(...) { return cudaSuccess; }
static cudaError_t sim_get_device(int *d) {
    *d = 0;
    return cudaSuccess;
}
static cudaError_t sim_device_attr(int *v, cudaDeviceAttr a, int) {
    if (a == cudaDevAttrMaxSharedMemoryPerBlockOptin) *v = SIM_SMEM_OPTIN;
    else if (a == cudaDevAttrMultiProcessorCount) *v = 132;
    else sim_fail("cudaDeviceGetAttribute: attribute %d not simulated", (int)a);
    return cudaSuccess;
}
template <class F>
static cudaError_t sim_func_attr(F *k, cudaFuncAttribute a, int v) {
    if (a != cudaFuncAttributeMaxDynamicSharedMemorySize)
        sim_fail("cudaFuncSetAttribute: attribute %d not simulated", (int)a);
    if (v < 0 || v > SIM_SMEM_OPTIN) sim_fail("cudaFuncSetAttribute: %d bytes of dynamic shared memory", v);
    sim.smem_optin[(const void *)k] = v;
    return cudaSuccess;
}
#define cudaGetErrorString sim_error_string
#define cudaGetLastError sim_get_last_error
#define cudaPeekAtLastError sim_get_last_error
#define cudaMemcpy sim_memcpy
#define cudaMemcpyAsync sim_memcpy_async
#define cudaMemcpy2DAsync sim_memcpy2d
#define cudaMemcpy2D sim_memcpy2d
#define cudaMemset sim_memset
#define cudaMemsetAsync sim_memset_async
#define cudaDeviceSynchronize sim_sync
#define cudaStreamSynchronize sim_sync
#define cudaGetDevice sim_get_device
#define cudaDeviceGetAttribute sim_device_attr
#define cudaFuncSetAttribute sim_func_attr

// cuda_common.cuh's host functions.
void cuda_fail(const char *what, const char *msg, const char *file, int line) {
    sim_fail("cuda_fail at %s:%d: %s: %s", file, line, what, msg);
}
cudaStream_t cuda_stream(void) { return 0; }  // streams are not modelled: call order
static void *sim_big;
void *cuda_big_scratch(size_t bytes) {
    free(sim_big);  // valid until the next call, as the context's buffer
    sim_big = malloc(bytes ? bytes : 1);
    if (!sim_big) sim_fail("cuda_big_scratch: out of memory (%zu bytes)", bytes);
    memset(sim_big, 0xFF, bytes);
    return sim_big;
}

// model/cuda/param_shadow.cuh's cuda_decode_shadow (the decode kernels' bf16 weight
// copies): a registry the test fills. A lookup answers the copy of the registered range
// holding X[0..extent), as the real registry does, or NULL; lookups are counted.
static struct {
    std::vector<std::tuple<const float *, size_t, const uint16_t *>> r;
    long lookups, hits;
} sim_shadow;
static inline void sim_decode_shadow_add(const float *base, size_t n, const uint16_t *bits) {
    sim_shadow.r.emplace_back(base, n, bits);
}
static inline void sim_decode_shadow_clear(void) { sim_shadow.r.clear(); }
const uint16_t *cuda_decode_shadow(const float *X, size_t extent) {
    sim_shadow.lookups++;
    for (auto &t : sim_shadow.r) {
        const float *b = std::get<0>(t);
        size_t n = std::get<1>(t);
        if (X >= b && X < b + n && (size_t)(X - b) + extent <= n) {
            sim_shadow.hits++;
            return std::get<2>(t) + (X - b);
        }
    }
    return NULL;
}

// ---- launches ----------------------------------------------------------------------

struct SimCfg {
    dim3 grid, block;
    size_t smem;
    SimCfg(dim3 g, dim3 b, size_t s = 0, cudaStream_t = 0) : grid(g), block(b), smem(s) {}
};

// Runs kernel k over the grid with its parameters `params` (a tuple of the decayed types).
template <class... P, class Tuple>
static void sim_run(SimCfg c, void (*k)(P...), Tuple &params) {
    dim3 g = c.grid, b = c.block;
    unsigned long nt = (unsigned long)b.x * b.y * b.z;
    if (!b.x || !b.y || !b.z || b.x > 1024 || b.y > 1024 || b.z > 64 || nt > SIM_MAX_THREADS)
        sim_fail("launch with block (%u, %u, %u)", b.x, b.y, b.z);
    if (!g.x || !g.y || !g.z || g.x > 2147483647u || g.y > 65535 || g.z > 65535)
        sim_fail("launch with grid (%u, %u, %u)", g.x, g.y, g.z);
    int optin = sim.smem_optin.count((const void *)k) ? sim.smem_optin[(const void *)k] : 0;
    if (c.smem > SIM_SMEM_DEFAULT && (long)c.smem > optin)
        sim_fail("launch with %zu bytes of dynamic shared memory (above 48 KiB without cudaFuncSetAttribute)", c.smem);
    if (sim.launches++ == 0) {
        // All simulated threads on one CPU (the threads inherit it): a barrier's wake-ups
        // then need no cross-CPU interrupts (about 30% faster), and a test leaves the
        // machine's other cores alone.
        cpu_set_t one;
        CPU_ZERO(&one);
        int cpu = sched_getcpu();
        CPU_SET(cpu >= 0 ? cpu : 0, &one);
        (void)sched_setaffinity(0, sizeof one, &one);  // best effort
    }
    sim.bdim = b, sim.gdim = g, sim.smem_bytes = c.smem;
    sim.sched.reset((int)nt, "simulator");
    unsigned long n_blocks = (unsigned long)g.x * g.y * g.z;
    // Block b's state, set by the last thread to finish block b - 1 (or before any start).
    auto prepare = [&, nt](unsigned long blk) {
        sim.bid = make_uint3((unsigned)(blk % g.x), (unsigned)(blk / g.x % g.y),
                             (unsigned)(blk / ((unsigned long)g.x * g.y)));
        sim.blocks++;
        sim.block.reset((int)nt, "__syncthreads");
        for (unsigned long w = 0; w < (nt + 31) / 32; w++) {
            sim.warps[w].lanes = (int)(nt - w * 32 < 32 ? nt - w * 32 : 32);
            sim.warps[w].bar.reset(sim.warps[w].lanes, "warp shuffle/__syncwarp");
        }
        SIM_UNPOISON(sim_smem, sizeof sim_smem);
        memset(sim_smem, 0xFF, sizeof sim_smem);  // NaN floats
        SIM_POISON(sim_smem + c.smem, sizeof sim_smem - c.smem);
    };
    prepare(0);
    std::vector<std::thread> th;
    th.reserve(nt);
    for (unsigned long t = 0; t < nt; t++)
        th.emplace_back([&, t] {
            SimThread &me = sim_t;
            me.tid =
                make_uint3((unsigned)(t % b.x), (unsigned)(t / b.x % b.y), (unsigned)(t / ((unsigned long)b.x * b.y)));
            me.lin = (int)t, me.lane = (int)(t & 31), me.warp = (int)(t >> 5);
            for (unsigned long blk = 0; blk < n_blocks; blk++) {  // x fastest, then y, then z
                me.shfl = 0;
                std::apply(k, params);
                sim.warps[me.warp].bar.leave();
                sim.block.leave();
                sim.sched.wait_then(0, [&] {
                    if (blk + 1 < n_blocks) prepare(blk + 1);
                });
            }
        });
    for (auto &x : th) x.join();
    SIM_UNPOISON(sim_smem, sizeof sim_smem);
}

// `k<<<cfg>>>(args...)` as sim_host_rewrite writes it.
template <class... P, class... A>
static void sim_launch(SimCfg c, void (*k)(P...), A &&...args) {
    static_assert(sizeof...(P) == sizeof...(A), "kernel launched with the wrong number of arguments");
    std::tuple<typename std::decay<P>::type...> params(std::forward<A>(args)...);
    sim_run(c, k, params);
}

// cudaLaunchKernel(k, grid, block, args, smem, stream): args[i] points to parameter i.
template <class... P, size_t... I>
static std::tuple<typename std::decay<P>::type...> sim_unpack(void **args, std::index_sequence<I...>) {
    return std::tuple<typename std::decay<P>::type...>(*static_cast<typename std::decay<P>::type *>(args[I])...);
}
template <class... P>
static cudaError_t sim_launch_args(void (*k)(P...), dim3 grid, dim3 block, void **args, size_t smem,
                                   cudaStream_t stream = 0) {
    auto params = sim_unpack<P...>(args, std::index_sequence_for<P...>{});
    sim_run(SimCfg(grid, block, smem, stream), k, params);
    return cudaSuccess;
}
#define cudaLaunchKernel sim_launch_args

// ---- cuda_common.cuh -----------------------------------------------------------------

// The header is used as written; its warp_sum / warp_max definitions are renamed so
// that block_sum / block_max run on the real shuffle tree above, while kernels calling
// warp_sum / warp_max directly get the one-exchange versions below: the same xor
// butterfly (lane i adds lane i^o's value, o = 16, 8, 4, 2, 1, so every lane's sum has
// the same order and bits as the shuffles give) at one warp barrier instead of five.
#define warp_sum(v) sim_cc_warp_sum(v)
#define warp_max(v) sim_cc_warp_max(v)
#include "model/cuda/cuda_common.cuh"
#undef warp_sum
#undef warp_max

template <class Op>
static float sim_warp_butterfly(float v, Op op) {
    SimWarp &w = sim.warps[sim_t.warp];
    if (w.lanes != 32) sim_fail("warp reduction in a warp of %d threads", w.lanes);
    uint64_t *slot = w.slot[sim_t.shfl++ & 1];
    uint64_t bits = 0;
    memcpy(&bits, &v, sizeof v);
    slot[sim_t.lane] = bits;
    w.bar.wait(__LINE__);
    float x[32], y[32];
    for (int i = 0; i < 32; i++) memcpy(&x[i], &slot[i], sizeof(float));
    for (int o = 16; o > 0; o >>= 1) {
        for (int i = 0; i < 32; i++) y[i] = op(x[i], x[i ^ o]);
        memcpy(x, y, sizeof x);
    }
    return x[sim_t.lane];
}
static inline float warp_sum(float v) {
    return sim_warp_butterfly(v, [](float a, float b) { return a + b; });
}
static inline float warp_max(float v) {
    return sim_warp_butterfly(v, [](float a, float b) { return fmaxf(a, b); });
}

#endif
