/* rollout/forward.h — the inference forward pass over the latent MLA cache.
 * Defines: RolloutLayer, RolloutWeights, rollout_weights_bind, Forward, forward_new,
 * forward_free, forward_run.
 *
 * One call processes n rows; row i is token tokens[i] at position pos[i] of the sequence
 * seqs[i]. Rows may belong to different sequences (a decode step: one row per live
 * sequence) or all to one sequence (a prefill chunk). Per layer every row's latent
 * [c | rope(k_pe)] is written to the cache first, then each row attends to positions
 * 0..pos[i] of its own sequence, in the ABSORBED form (spec §9.3): the query is
 * [W_UK^T q_nope | q_pe] (width r + dr), keys are the cached rows, values their first r
 * floats, and W_UV is applied to the attention output before o_proj. Every weight matrix
 * runs once per call as one GEMM over all n rows (MoE experts: one GEMM per expert over
 * the rows routed to it).
 *
 * Weights are read in place from the model's flat parameter buffer (the buffer the
 * trainer updates): no copy, no sync. Numerics are fp32 like the CPU training path. */
#ifndef CRUCIBLE_ROLLOUT_FORWARD_H
#define CRUCIBLE_ROLLOUT_FORWARD_H

#include <stdint.h>

#include "core/error.h"
#include "model/model.h"
#include "rollout/kv_cache.h"

typedef struct RolloutLayer {
    const float *attn_norm, *ffn_norm;
    const float *wq;                         /* [H*(dn+dr), D] when q_lora_rank == 0 */
    const float *wq_a, *q_a_norm, *wq_b;     /* [ql, D], [ql], [H*(dn+dr), ql] */
    const float *wkv_a, *kv_a_norm, *wkv_b;  /* [r+dr, D], [r], [H*(dn+dv), r] */
    const float *wo;                         /* [D, H*dv] */
    int moe;
    const float *w_gate, *w_up, *w_down;     /* dense MLP */
    const float *router;                     /* [E, D] */
    const float **e_gate, **e_up, **e_down;  /* [E] pointers: [Ie, D], [Ie, D], [D, Ie] */
    const float *s_gate, *s_up, *s_down;     /* shared experts (NULL when none) */
} RolloutLayer;

typedef struct RolloutWeights {
    const ModelConfig *cfg;
    const float *embed, *final_norm, *lm_head;
    RolloutLayer *layers;
    int n_moe_layers;
    float inv_freq[128], cs_factor, softmax_scale;
} RolloutWeights;

/* Point every view at m->params by HF tensor name (shapes checked). */
int rollout_weights_bind(RolloutWeights *w, const Model *m, CrError *e);
void rollout_weights_release(RolloutWeights *w);

typedef struct Forward Forward;

Forward *forward_new(const RolloutWeights *w);
void forward_free(Forward *f);

/* Run n rows. Logits are computed for the rows listed in logit_rows[0..n_logits) into
 * logits[n_logits][vocab]. experts (may be NULL): [n][n_moe_layers][K] chosen expert
 * ids, in descending router score order. The caller has made every (seq, pos) writable
 * (cache_seq_prepare_write) and guarantees pos[i] < seq capacity. */
void forward_run(Forward *f, LatentCache *c, int n, const int32_t *tokens, const int32_t *pos,
                 CacheSeq *const *seqs, const int *logit_rows, int n_logits, float *logits,
                 int32_t *experts);

#endif
