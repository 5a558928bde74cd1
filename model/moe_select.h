/* model/moe_select.h — the DeepSeekMoE router softmax and expert selection of one token, shared by the CPU
 * router (model/cpu/moe_route.c) and the CUDA one (model/cuda/moe_route.cu).
 * Defines: moe_router_softmax, moe_select_experts.
 *
 * Given the token's router probabilities p[E] (softmax of its logits), picks r->K
 * experts (spec §6.1):
 *  - greedy (r->group_limited == 0): the K largest p;
 *  - group_limited_greedy: the E experts form r->n_group groups of E/n_group contiguous
 *    ones; a group's score is its largest p; the r->topk_group best groups are kept and
 *    every expert of the others counts as 0 (masked_fill 0.0, as the reference does),
 *    then the K largest of those scores.
 * Ties go to the lower index, among experts and among groups; "taken" flags (not
 * sentinel values) keep the K experts distinct even when scores are NaN.
 * Weights: w[k] = p[idx[k]], renormalised to sum 1 when K > 1 and r->norm_topk_prob
 * (w * 1 / (sum + 1e-20)), otherwise scaled by r->routed_scale.
 * Outputs idx[K], w[K]; scratch masked[E], taken[E], gscore[n_group], gtaken[n_group]
 * (the group arrays unused when not group-limited). The caller validated the settings
 * (1 <= K <= E, n_group divides E, 1 <= topk_group <= n_group). The float operations
 * are written out one by one, so host and device compute the same bits from the same p. */
#ifndef CRUCIBLE_MODEL_MOE_SELECT_H
#define CRUCIBLE_MODEL_MOE_SELECT_H

#include <math.h>
#include <stdint.h>

#include "model/hd.h"
#include "model/ops.h"

/* p[0..E) = softmax(l[0..E)): max subtracted, sum accumulated in index order, then
 * multiplied by 1/sum (the probabilities saved for the backward and the aux loss). */
static inline CR_HD void moe_router_softmax(float *p, const float *l, int E) {
    float m = l[0];
    for (int e = 1; e < E; e++) m = l[e] > m ? l[e] : m;
    float sum = 0;
    for (int e = 0; e < E; e++) sum += (p[e] = expf(l[e] - m));
    float inv = 1.0f / sum;
    for (int e = 0; e < E; e++) p[e] *= inv;
}

static inline CR_HD void moe_select_experts(int32_t *idx, float *w, const float *p, const OpsMoeRoute *r,
                                            float *masked, unsigned char *taken, float *gscore,
                                            unsigned char *gtaken) {
    int E = r->E, K = r->K;
    for (int e = 0; e < E; e++) {
        masked[e] = p[e];
        taken[e] = 0;
    }
    if (r->group_limited) {
        int G = r->n_group, per = E / G;
        for (int g = 0; g < G; g++) {
            float gm = p[g * per];
            for (int e = 1; e < per; e++) gm = p[g * per + e] > gm ? p[g * per + e] : gm;
            gscore[g] = gm;
            gtaken[g] = 0;
        }
        for (int t = 0; t < r->topk_group; t++) {
            int best = -1;
            for (int g = 0; g < G; g++)
                if (!gtaken[g] && (best < 0 || gscore[g] > gscore[best])) best = g;
            gtaken[best] = 1;
        }
        for (int g = 0; g < G; g++)
            if (!gtaken[g])
                for (int e = 0; e < per; e++) masked[g * per + e] = 0.0f;
    }
    float wsum = 0;
    for (int k = 0; k < K; k++) {
        int best = -1;
        for (int e = 0; e < E; e++)
            if (!taken[e] && (best < 0 || masked[e] > masked[best])) best = e;
        idx[k] = best;
        w[k] = p[best];
        wsum += p[best];
        taken[best] = 1;
    }
    if (K > 1 && r->norm_topk_prob) {
        float inv = 1.0f / (wsum + 1e-20f);
        for (int k = 0; k < K; k++) w[k] *= inv;
    } else {
        for (int k = 0; k < K; k++) w[k] *= r->routed_scale;
    }
}

#endif
