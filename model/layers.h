/* model/layers.h — public per-layer views of the flat parameter (and gradient) buffer,
 * and the inference-row helpers the rollout engine shares with the trainer.
 * Defines: LayerWeights, ModelWeights, model_weights, model_grad_weights,
 * model_ffn_forward_infer, model_ffn_forward_infer_ex, model_ffn_infer_is_async,
 * model_moe_small_slots, model_rope_apply.
 *
 * CONTRACT
 *  - Views point INTO m->params / m->grads (backend memory): the rollout engine reads the
 *    same weights the trainer updates; nothing is copied. They stay valid until model_free.
 *  - Shapes are the HF ones (spec §2), W [out, in]. A pointer is NULL when the layer lacks
 *    that tensor (e.g. wq with q-LoRA, the dense MLP in an MoE layer, shared experts when
 *    n_shared_experts = 0). Routed experts are stacked: exp_gate [E, Ie, D] is
 *    experts.0.gate_proj, experts.1.gate_proj, ... contiguous (same for up [E, Ie, D] and
 *    down [E, D, Ie]).
 *  - With tie_word_embeddings, lm_head == embed (and its gradient lands in embed's). */
#ifndef CRUCIBLE_MODEL_LAYERS_H
#define CRUCIBLE_MODEL_LAYERS_H

#include <stdint.h>

#include "core/error.h"
#include "model/model.h"

typedef struct LayerWeights {
    float *attn_norm;                 /* [D]            input_layernorm */
    float *wq;                        /* [H*(dn+dr), D] q_proj (no q-LoRA) */
    float *wq_a, *q_a_norm, *wq_b;    /* [ql, D], [ql], [H*(dn+dr), ql] (q-LoRA) */
    float *wkv_a;                     /* [r+dr, D]      kv_a_proj_with_mqa */
    float *kv_a_norm;                 /* [r]            kv_a_layernorm */
    float *wkv_b;                     /* [H*(dn+dv), r] kv_b_proj */
    float *wo;                        /* [D, H*dv]      o_proj */
    float *ffn_norm;                  /* [D]            post_attention_layernorm */
    float *mlp_gate, *mlp_up, *mlp_down;  /* dense: [I, D], [I, D], [D, I] */
    float *router;                    /* [E, D]         mlp.gate */
    float *exp_gate, *exp_up, *exp_down;  /* [E, Ie, D], [E, Ie, D], [E, D, Ie] */
    float *sh_gate, *sh_up, *sh_down; /* [Is, D], [Is, D], [D, Is], Is = Ie * n_shared */
} LayerWeights;

typedef struct ModelWeights {
    float *embed;        /* [V, D] model.embed_tokens */
    float *final_norm;   /* [D]    model.norm */
    float *lm_head;      /* [V, D] lm_head (== embed when tied) */
    LayerWeights *layers;/* [L] */
} ModelWeights;

/* Views of the parameters / of the gradients. */
const ModelWeights *model_weights(const Model *m);
const ModelWeights *model_grad_weights(const Model *m);

/* FFN of `layer` (dense MLP or MoE: router, routed experts, shared experts) on N rows
 * x_normed [N, D] (already post_attention_layernorm'ed) into out [N, D] (overwritten;
 * must not alias x_normed). No activations are kept and the training activations are
 * untouched (own scratch, grown to the largest N seen). Backend memory. Same ops and
 * routing as model_forward, so rows give the same values as in training (up to GEMM
 * blocking for a different N). Routed experts: for N*K <= 64 slots (decode; or the
 * backend's Ops.moe_experts_small_slots when it answers > 0) through
 * Ops.moe_experts_small when the backend has it (no host synchronisation), else permute +
 * per-expert GEMMs + unpermute as in training; CRUCIBLE_MOE_SMALL_SLOTS=n sets the
 * threshold (0: always the latter). The two agree up to rounding. */
void model_ffn_forward_infer(Model *m, int layer, const float *x_normed, int N, float *out);
/* The same, also copying the chosen experts of an MoE layer into experts_out [N, K]
 * (backend memory, int32, descending router score as moe_route_forward gives them);
 * experts_out may be NULL and is left untouched for a dense layer. */
void model_ffn_forward_infer_ex(Model *m, int layer, const float *x_normed, int N, float *out,
                                int32_t *experts_out);
/* 1 when model_ffn_forward_infer(_ex) of N rows, once its scratch holds N rows, makes no
 * host synchronisation and no allocation in any layer (dense layers, or routed experts
 * through Ops.moe_experts_small): what a recorded step (Ops.step_*) may contain. */
int model_ffn_infer_is_async(const Model *m, int N);
/* The largest N * K (rows x experts per token) whose routed experts go through
 * Ops.moe_experts_small (the threshold above, with the backend's answer and
 * CRUCIBLE_MOE_SMALL_SLOTS applied); 0: always dispatched. */
long model_moe_small_slots(const Model *m);

/* Rotate (in place, spec §5.3) the qk_rope_head_dim floats at x + n*ld + h*head_stride for
 * n < N, h < n_heads, at positions pos[n] (backend memory), with the model's YaRN
 * frequencies and cos/sin factor. */
void model_rope_apply(const Model *m, float *x, int ld, int head_stride, int n_heads, int N,
                      const int32_t *pos);

/* Scan every parameter tensor; -1 with the first non-finite tensor's name. */
int model_check_finite(const Model *m, CrError *e);

#endif
