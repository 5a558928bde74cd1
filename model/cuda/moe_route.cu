// model/cuda/moe_route.cu — DeepSeekMoE router: softmax scores, greedy or group-limited
// top-K, routing weights (spec §6.1), the sequence-level auxiliary loss (§6.4) and the
// router backward (§7.9). One thread per token; the selection is model/moe_select.h, the
// CPU router's own code, so selections and ties (toward the lower expert index) match.
#include "model/cuda/cuda_ops.cuh"

#include "model/moe_select.h"

enum { ROUTE_MAX_E = 256, ROUTE_MAX_G = 64 };

__global__ void moe_route_forward_kernel(float *probs, int32_t *idx, float *w, const float *logits, int N,
                                         OpsMoeRoute r) {
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    float pl[ROUTE_MAX_E], masked[ROUTE_MAX_E], gscore[ROUTE_MAX_G];
    unsigned char taken[ROUTE_MAX_E], gtaken[ROUTE_MAX_G];
    int E = r.E;
    const float *l = logits + (size_t)n * E;
    float *p = probs + (size_t)n * E;
    moe_router_softmax(pl, l, E);  // in registers/local memory, then out
    for (int e = 0; e < E; e++) p[e] = pl[e];
    moe_select_experts(idx + (size_t)n * r.K, w + (size_t)n * r.K, pl, &r, masked, taken, gscore, gtaken);
}

// The same per token with one warp instead of one thread (CRUCIBLE_CUDA_ROUTE=warp; for
// decode, where a step's few tokens left the single-thread kernel at ~28 us on the H100).
// Bit for bit the same results as moe_select.h: every element's float operation is the
// same, the sums that fix bits (the softmax denominator, the weights' sum) and the group
// choice run on lane 0 in index order as there, and the arg-max rounds run across the
// warp only when no score is NaN (then the largest score, first index among equals, is
// what the sequential scan picks); with a NaN lane 0 scans as moe_select.h does.
enum { ROUTE_WARPS = 4 };
__global__ void moe_route_warp_kernel(float *probs, int32_t *idx, float *w, const float *logits, int N,
                                      OpsMoeRoute r) {
    __shared__ float sp[ROUTE_WARPS][ROUTE_MAX_E], sm[ROUTE_WARPS][ROUTE_MAX_E], sg[ROUTE_WARPS][ROUTE_MAX_G];
    __shared__ unsigned char st[ROUTE_WARPS][ROUTE_MAX_E], sgt[ROUTE_WARPS][ROUTE_MAX_G];
    __shared__ float sinv[ROUTE_WARPS];
    __shared__ int sbest[ROUTE_WARPS];
    int wi = threadIdx.x >> 5, lane = threadIdx.x & 31, n = blockIdx.x * ROUTE_WARPS + wi;
    if (n >= N) return;  // the whole warp leaves together: only __syncwarp below
    int E = r.E, K = r.K;
    const float *l = logits + (size_t)n * E;
    float *p = sp[wi], *masked = sm[wi];
    unsigned char *taken = st[wi];
    // max as the sequential scan: from l[0], replaced by a strictly larger value
    float m = l[0];
    for (int e = lane; e < E; e += 32) m = l[e] > m ? l[e] : m;
    for (int o = 16; o > 0; o >>= 1) {
        float x = __shfl_xor_sync(0xffffffffu, m, o);
        m = x > m ? x : m;
    }
    for (int e = lane; e < E; e += 32) p[e] = expf(l[e] - m);
    __syncwarp();
    if (lane == 0) {
        float sum = 0;
        for (int e = 0; e < E; e++) sum += p[e];
        sinv[wi] = 1.0f / sum;
    }
    __syncwarp();
    float inv = sinv[wi];
    int any_nan = 0;
    for (int e = lane; e < E; e += 32) {
        float v = p[e] * inv;
        p[e] = v;
        probs[(size_t)n * E + e] = v;
        masked[e] = v;
        taken[e] = 0;
        any_nan |= v != v;
    }
    for (int o = 16; o > 0; o >>= 1) any_nan |= __shfl_xor_sync(0xffffffffu, any_nan, o);
    __syncwarp();
    if (r.group_limited) {
        int G = r.n_group, per = E / G;
        float *gscore = sg[wi];
        unsigned char *gtaken = sgt[wi];
        for (int g = lane; g < G; g += 32) {
            float gm = p[g * per];
            for (int e = 1; e < per; e++) gm = p[g * per + e] > gm ? p[g * per + e] : gm;
            gscore[g] = gm;
            gtaken[g] = 0;
        }
        __syncwarp();
        if (lane == 0)
            for (int t = 0; t < r.topk_group; t++) {
                int best = -1;
                for (int g = 0; g < G; g++)
                    if (!gtaken[g] && (best < 0 || gscore[g] > gscore[best])) best = g;
                gtaken[best] = 1;
            }
        __syncwarp();
        for (int e = lane; e < E; e += 32)
            if (!gtaken[e / per]) masked[e] = 0.0f;
        __syncwarp();
    }
    float wsum = 0;  // lane 0's, in k order
    for (int k = 0; k < K; k++) {
        int best;
        if (!any_nan) {  // largest score, first index among equals
            float bv = 0.0f;
            best = -1;
            for (int e = lane; e < E; e += 32)
                if (!taken[e] && (best < 0 || masked[e] > bv)) bv = masked[e], best = e;
            for (int o = 16; o > 0; o >>= 1) {
                float ov = __shfl_xor_sync(0xffffffffu, bv, o);
                int ob = __shfl_xor_sync(0xffffffffu, best, o);
                if (ob >= 0 && (best < 0 || ov > bv || (ov == bv && ob < best))) bv = ov, best = ob;
            }
        } else {
            if (lane == 0) {
                best = -1;
                for (int e = 0; e < E; e++)
                    if (!taken[e] && (best < 0 || masked[e] > masked[best])) best = e;
                sbest[wi] = best;
            }
            __syncwarp();
            best = sbest[wi];
        }
        if (lane == 0) {
            idx[(size_t)n * K + k] = best;
            w[(size_t)n * K + k] = p[best];
            wsum += p[best];
            taken[best] = 1;
        }
        __syncwarp();
    }
    if (lane == 0) {
        float *wn = w + (size_t)n * K;
        if (K > 1 && r.norm_topk_prob) {
            float winv = 1.0f / (wsum + 1e-20f);
            for (int k = 0; k < K; k++) wn[k] *= winv;
        } else {
            for (int k = 0; k < K; k++) wn[k] *= r.routed_scale;
        }
    }
}

// CRUCIBLE_CUDA_ROUTE: thread (unset: the default, one thread per token) or warp (read per call).
static int route_warp(void) {
    static const char *const v[2] = {"thread", "warp"};
    return cuda_env_pick("CRUCIBLE_CUDA_ROUTE", v, 2);
}

void cuda_moe_route_forward(float *probs, int32_t *idx, float *w, const float *logits, int N,
                            const OpsMoeRoute *r) {
    if (N <= 0) return;
    int G = r->group_limited ? r->n_group : 1;
    if (r->E > ROUTE_MAX_E || G > ROUTE_MAX_G)
        cuda_fail("moe_route_forward", "more experts or groups than the kernel supports", __FILE__, __LINE__);
    if (route_warp())
        moe_route_warp_kernel<<<(N + ROUTE_WARPS - 1) / ROUTE_WARPS, 32 * ROUTE_WARPS, 0, cuda_stream()>>>(
            probs, idx, w, logits, N, *r);
    else
        moe_route_forward_kernel<<<(N + 127) / 128, 128, 0, cuda_stream()>>>(probs, idx, w, logits, N, *r);
    launchCheck();
}

// One block per segment, one thread per expert: P[e] (double) and the selection counts
// f[e] summed over the segment's tokens in order; part[s] = sum_e f P for the loss.
__global__ void moe_aux_segment_kernel(float *aux_coef, double *part, int32_t *seg_of_token, const float *probs,
                                       const int32_t *idx, const int32_t *cu_seg, int n_seg, int N, int E, int K,
                                       float alpha) {
    __shared__ double sh[ROUTE_MAX_E];
    int s = blockIdx.x;
    int t0 = n_seg == 1 ? 0 : cu_seg[s], t1 = n_seg == 1 ? N : cu_seg[s + 1], T = t1 - t0;
    for (int t = t0 + threadIdx.x; t < t1; t += blockDim.x) seg_of_token[t] = s;
    for (int e = threadIdx.x; e < E; e += blockDim.x) {
        double P = 0;
        float f = 0;
        for (int t = t0; t < t1; t++) {
            P += probs[(size_t)t * E + e];
            for (int k = 0; k < K; k++) f += idx[(size_t)t * K + k] == e ? 1.0f : 0.0f;
        }
        double fe = (double)f * E / ((double)K * T);
        sh[e] = fe * (P / T);
        aux_coef[(size_t)s * E + e] = (float)(alpha * fe / ((double)n_seg * T));
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        double sum = 0;
        for (int e = 0; e < E; e++) sum += sh[e];
        part[s] = sum;
    }
}
__global__ void moe_aux_total_kernel(float *loss, const double *part, int n_seg, float alpha) {
    double total = 0;
    for (int s = 0; s < n_seg; s++) total += part[s];
    *loss = (float)(alpha * total / n_seg);
}

void cuda_moe_aux_forward(float *loss, float *aux_coef, int32_t *seg_of_token, const float *probs,
                          const int32_t *idx, const int32_t *cu_seg, int n_seg, int N, int E, int K, float alpha) {
    if (E > ROUTE_MAX_E) cuda_fail("moe_aux_forward", "more experts than the kernel supports", __FILE__, __LINE__);
    if ((size_t)n_seg * sizeof(double) > CUDA_SCRATCH_BYTES)
        cuda_fail("moe_aux_forward", "too many segments for the scratch buffer", __FILE__, __LINE__);
    double *part = (double *)cuda_ctx()->scratch;
    moe_aux_segment_kernel<<<n_seg, 128, 0, cuda_stream()>>>(aux_coef, part, seg_of_token, probs, idx, cu_seg, n_seg, N,
                                                             E, K, alpha);
    launchCheck();
    moe_aux_total_kernel<<<1, 1, 0, cuda_stream()>>>(loss, part, n_seg, alpha);
    launchCheck();
}

__global__ void moe_route_backward_kernel(float *dlogits, const float *dw, const float *probs, const int32_t *idx,
                                          const float *w, const float *aux_coef, float aux_weight,
                                          const int32_t *seg_of_token, int N, int E, int K, int norm_topk_prob,
                                          float routed_scale) {
    int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= N) return;
    float ds[ROUTE_MAX_E];
    const float *p = probs + (size_t)n * E;
    const int32_t *ix = idx + (size_t)n * K;
    const float *g = dw + (size_t)n * K;
    for (int e = 0; e < E; e++) ds[e] = aux_coef ? aux_weight * aux_coef[(size_t)seg_of_token[n] * E + e] : 0.0f;
    if (K > 1 && norm_topk_prob) {
        float Z = 1e-20f, gw = 0;
        for (int k = 0; k < K; k++) {
            Z += p[ix[k]];
            gw += g[k] * w[(size_t)n * K + k];
        }
        for (int k = 0; k < K; k++) ds[ix[k]] += (g[k] - gw) / Z;
    } else {
        for (int k = 0; k < K; k++) ds[ix[k]] += routed_scale * g[k];
    }
    float dot = 0;
    for (int e = 0; e < E; e++) dot += ds[e] * p[e];
    float *dl = dlogits + (size_t)n * E;
    for (int e = 0; e < E; e++) dl[e] = p[e] * (ds[e] - dot);
}

void cuda_moe_route_backward(float *dlogits, const float *dw, const float *probs, const int32_t *idx, const float *w,
                             const float *aux_coef, float aux_weight, const int32_t *seg_of_token, int N,
                             const OpsMoeRoute *r) {
    if (N <= 0) return;
    if (r->E > ROUTE_MAX_E)
        cuda_fail("moe_route_backward", "more experts than the kernel supports", __FILE__, __LINE__);
    moe_route_backward_kernel<<<(N + 127) / 128, 128, 0, cuda_stream()>>>(dlogits, dw, probs, idx, w, aux_coef,
                                                                          aux_weight, seg_of_token, N, r->E, r->K,
                                                                          r->norm_topk_prob, r->routed_scale);
    launchCheck();
}
