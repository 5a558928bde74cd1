// tests/cuda/sim/cub_sim.h — the parts of CUB that model/cuda/*.cu use, for the CPU
// simulator (cuda_sim.h, included first). tests/cuda/sim/cub/... forward here, so a
// kernel's `#include <cub/...>` finds these when -Itests/cuda/sim comes before CUDA's.
// They keep CUB's contracts, which is what the kernels must respect:
//  - BlockReduce: the result is valid in thread 0 only (other threads get NaN / -1 bytes);
//    the temporary storage may be reused only after a __syncthreads (no barrier at the
//    end: a reuse without one is a data race that ThreadSanitizer reports, and may give
//    wrong sums here);
//  - BlockScan::InclusiveSum over a blocked arrangement (thread t holds items
//    t*ITEMS .. t*ITEMS+ITEMS-1), the result in every thread, the same reuse rule;
//  - DeviceSegmentedRadixSort::SortKeys[Descending]: a NULL temp pointer is a size query;
//    the sort checks the temporary storage is as large as the query said (and writes all
//    of it: too small a buffer is an AddressSanitizer error), sorts each segment stably
//    into the other buffer of the DoubleBuffer and flips its selector (the caller must use
//    Current()).
// Not CUB's algorithms: sums here run in index order, not CUB's trees.
#ifndef CRUCIBLE_TESTS_CUDA_SIM_CUB_SIM_H
#define CRUCIBLE_TESTS_CUDA_SIM_CUB_SIM_H

#include <algorithm>
#include <functional>

#include "tests/cuda/sim/cuda_sim.h"

namespace cub {

template <class T>
static T sim_garbage() {
    T x;
    memset((void *)&x, 0xFF, sizeof x);
    return x;
}

static inline void sim_check_block(int bx, const char *what) {
    if ((unsigned long)bx != (unsigned long)blockDim.x * blockDim.y * blockDim.z)
        sim_fail("%s<%d> used in a block of %u x %u x %u threads", what, bx, blockDim.x, blockDim.y, blockDim.z);
}

template <class T, int BX>
struct BlockReduce {
    struct TempStorage {
        T v[BX];
    };
    TempStorage &s;
    explicit BlockReduce(TempStorage &ts) : s(ts) { sim_check_block(BX, "BlockReduce"); }
    template <class Op>
    T Reduce(T x, Op op) {
        s.v[sim_t.lin] = x;
        sim_syncthreads(__LINE__);
        if (sim_t.lin != 0) return sim_garbage<T>();
        T r = s.v[0];
        for (int i = 1; i < BX; i++) r = op(r, s.v[i]);
        return r;
    }
    T Sum(T x) {
        return Reduce(x, [](const T &a, const T &b) { return a + b; });
    }
};

template <class T, int BX>
struct BlockScan {
    enum { MAX_ITEMS = 16 };
    struct TempStorage {
        T v[BX * MAX_ITEMS];
    };
    TempStorage &s;
    explicit BlockScan(TempStorage &ts) : s(ts) { sim_check_block(BX, "BlockScan"); }
    template <int ITEMS>
    void InclusiveSum(T (&in)[ITEMS], T (&out)[ITEMS]) {
        static_assert(ITEMS <= MAX_ITEMS, "simulated BlockScan: too many items per thread");
        for (int k = 0; k < ITEMS; k++) s.v[sim_t.lin * ITEMS + k] = in[k];
        sim_syncthreads(__LINE__);
        if (sim_t.lin == 0)
            for (int i = 1; i < BX * ITEMS; i++) s.v[i] = s.v[i - 1] + s.v[i];
        sim_syncthreads(__LINE__);
        for (int k = 0; k < ITEMS; k++) out[k] = s.v[sim_t.lin * ITEMS + k];
    }
};

template <class T>
struct DoubleBuffer {
    T *d_buffers[2];
    int selector;
    DoubleBuffer() : d_buffers{nullptr, nullptr}, selector(0) {}
    DoubleBuffer(T *cur, T *alt) : d_buffers{cur, alt}, selector(0) {}
    T *Current() { return d_buffers[selector]; }
    T *Alternate() { return d_buffers[selector ^ 1]; }
};

struct DeviceSegmentedRadixSort {
    static size_t sim_temp_bytes(long num_items, int num_segments) {
        return 512 + 16 * (size_t)num_segments + (size_t)num_items / 64;  // some size that grows with the job
    }
    template <class K, class Off>
    static cudaError_t sim_sort(void *temp, size_t &bytes, DoubleBuffer<K> &keys, long num_items, int num_segments,
                                Off begin, Off end, bool descending) {
        size_t need = sim_temp_bytes(num_items, num_segments);
        if (!temp) {
            bytes = need;
            return cudaSuccess;
        }
        if (bytes < need) sim_fail("SortKeys: %zu bytes of temporary storage, the query asked %zu", bytes, need);
        memset(temp, 0xA5, bytes);
        K *src = keys.Current(), *dst = keys.Alternate();
        if (!src || !dst) sim_fail("SortKeys: a NULL key buffer");
        for (int sg = 0; sg < num_segments; sg++) {
            long b = begin[sg], e = end[sg];
            if (b < 0 || e > num_items)
                sim_fail("SortKeys: segment %d [%ld, %ld) outside %ld items", sg, b, e, num_items);
            if (e <= b) continue;
            memcpy(dst + b, src + b, sizeof(K) * (size_t)(e - b));
            if (descending)
                std::stable_sort(dst + b, dst + e, [](const K &x, const K &y) { return x > y; });
            else
                std::stable_sort(dst + b, dst + e);
        }
        keys.selector ^= 1;
        return cudaSuccess;
    }
    template <class K, class Off>
    static cudaError_t SortKeysDescending(void *temp, size_t &bytes, DoubleBuffer<K> &keys, int num_items,
                                          int num_segments, Off begin, Off end, int begin_bit = 0,
                                          int end_bit = (int)(sizeof(K) * 8), cudaStream_t = 0) {
        if (begin_bit != 0 || end_bit != (int)(sizeof(K) * 8)) sim_fail("SortKeys: partial key bits not simulated");
        return sim_sort(temp, bytes, keys, num_items, num_segments, begin, end, true);
    }
    template <class K, class Off>
    static cudaError_t SortKeys(void *temp, size_t &bytes, DoubleBuffer<K> &keys, int num_items, int num_segments,
                                Off begin, Off end, int begin_bit = 0, int end_bit = (int)(sizeof(K) * 8),
                                cudaStream_t = 0) {
        if (begin_bit != 0 || end_bit != (int)(sizeof(K) * 8)) sim_fail("SortKeys: partial key bits not simulated");
        return sim_sort(temp, bytes, keys, num_items, num_segments, begin, end, false);
    }
};

}  // namespace cub

#endif
