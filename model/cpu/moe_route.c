/* model/cpu/moe_route.c — DeepSeekMoE router: softmax scores, greedy or group-limited
 * top-K and routing weights (spec §6.1; the selection is model/moe_select.h, shared with
 * the CUDA router), the sequence-level auxiliary loss (§6.4) and the router backward
 * (§7.9). Ties are broken toward the lower expert index. */
#include "model/cpu/cpu_ops.h"

#include <math.h>
#include <stdlib.h>

#include "core/alloc.h"
#include "model/moe_select.h"

void cpu_moe_route_forward(float *probs, int32_t *idx, float *w, const float *logits, int N,
                           const OpsMoeRoute *r) {
    int E = r->E, K = r->K;
#pragma omp parallel if ((long)N * E > OPS_CPU_PAR_MIN / 4)
    {
        /* masked [E] | taken [E] | gscore [G] | gtaken [G]; "taken" flags (not sentinel
         * values) so that NaN scores still select valid, distinct experts. */
        int G = r->group_limited ? r->n_group : 1;
        float *masked = cr_malloc(sizeof(float) * (size_t)(E + G));
        float *gscore = masked + E;
        unsigned char *taken = cr_malloc((size_t)(E + G));
        unsigned char *gtaken = taken + E;
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *l = logits + (size_t)n * E;
            float *p = probs + (size_t)n * E;
            moe_router_softmax(p, l, E);
            moe_select_experts(idx + (size_t)n * K, w + (size_t)n * K, p, r, masked, taken, gscore, gtaken);
        }
        free(masked);
        free(taken);
    }
}

void cpu_moe_aux_forward(float *loss, float *aux_coef, int32_t *seg_of_token, const float *probs,
                         const int32_t *idx, const int32_t *cu_seg, int n_seg, int N, int E, int K, float alpha) {
    double total = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : total) if (n_seg > 1 && (long)N * E > OPS_CPU_PAR_MIN / 4)
    for (int s = 0; s < n_seg; s++) {
        int t0 = n_seg == 1 ? 0 : cu_seg[s], t1 = n_seg == 1 ? N : cu_seg[s + 1], T = t1 - t0;
        double *P = cr_calloc((size_t)E, sizeof(double));
        float *f = aux_coef + (size_t)s * E;
        for (int e = 0; e < E; e++) f[e] = 0;
        for (int t = t0; t < t1; t++) {
            seg_of_token[t] = s;
            for (int e = 0; e < E; e++) P[e] += probs[(size_t)t * E + e];
            for (int k = 0; k < K; k++) f[idx[(size_t)t * K + k]] += 1.0f;
        }
        double part = 0;
        for (int e = 0; e < E; e++) {
            double fe = (double)f[e] * E / ((double)K * T);
            part += fe * (P[e] / T);
            f[e] = (float)(alpha * fe / ((double)n_seg * T));
        }
        total += part;
        free(P);
    }
    *loss = (float)(alpha * total / n_seg);
}

void cpu_moe_route_backward(float *dlogits, const float *dw, const float *probs, const int32_t *idx,
                            const float *w, const float *aux_coef, float aux_weight,
                            const int32_t *seg_of_token, int N, const OpsMoeRoute *r) {
    int E = r->E, K = r->K;
#pragma omp parallel if ((long)N * E > OPS_CPU_PAR_MIN / 4)
    {
        float *ds = cr_malloc(sizeof(float) * E);
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            const float *p = probs + (size_t)n * E;
            const int32_t *ix = idx + (size_t)n * K;
            const float *g = dw + (size_t)n * K;
            for (int e = 0; e < E; e++) ds[e] = aux_coef ? aux_weight * aux_coef[(size_t)seg_of_token[n] * E + e] : 0.0f;
            if (K > 1 && r->norm_topk_prob) {
                /* w_k = s_k / Z: ds_j = dw_j / Z - sum_k dw_k s_k / Z^2 = (dw_j - sum_k dw_k w_k) / Z */
                float Z = 1e-20f, gw = 0;
                for (int k = 0; k < K; k++) {
                    Z += p[ix[k]];
                    gw += g[k] * w[(size_t)n * K + k];
                }
                for (int k = 0; k < K; k++) ds[ix[k]] += (g[k] - gw) / Z;
            } else {
                for (int k = 0; k < K; k++) ds[ix[k]] += r->routed_scale * g[k];
            }
            float dot = 0;
            for (int e = 0; e < E; e++) dot += ds[e] * p[e];
            float *dl = dlogits + (size_t)n * E;
            for (int e = 0; e < E; e++) dl[e] = p[e] * (ds[e] - dot);
        }
        free(ds);
    }
}
