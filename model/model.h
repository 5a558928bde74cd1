/* model/model.h — the DeepSeek-V2 MoE model: the one seam every trainer uses.
 * Defines: Batch, Model, model_create/create_ops/create_infer/free/load/load_ops/save/
 * init_random, model_is_infer_only, model_forward, model_backward, model_forward_hidden,
 * model_backward_hidden, model_zero_grads.
 * Per-layer weight views and inference helpers: model/layers.h. Backend ops: model/ops.h.
 *
 * CONTRACT (other modules are written against this; extend, do not break):
 *  - Parameters live in one flat fp32 buffer carved into HF-named tensors (names and
 *    shapes exactly as the Hugging Face DeepseekV2 checkpoints; spec/deepseek-v2.md §2).
 *    Gradients use the same layout. On the CPU backend both are host memory.
 *  - A Batch is packed: a flat token array with sequence boundaries (cu_seqlens) and
 *    per-token positions; attention is causal within each sequence; no padding.
 *  - model_forward returns, for every position t with targets[t] >= 0,
 *    logp[t] = log softmax(logits_t)[targets[t]] (0 where targets[t] < 0), and the sum
 *    over MoE layers of the auxiliary load-balancing loss (spec §6.4; 0 if alpha = 0).
 *  - model_backward takes dL/dlogp[t] and ACCUMULATES parameter gradients into
 *    m->grads; aux_weight multiplies the aux-loss gradient (1.0 = the reference's
 *    objective CE + sum_l L_aux(l); 0 = ignore it). It must follow a model_forward
 *    of the same batch (activations are kept inside the model).
 *  - Bad input (token id out of range, empty batch, position >= max positions,
 *    inconsistent cu_seqlens) returns -1 with a message; never crashes. Non-finite
 *    outputs return -1 naming the first parameter tensor holding NaN/Inf, if any.
 *  - model_forward_hidden ignores targets (may be NULL).
 *  - A Model is not thread-safe: one forward/backward at a time (ops parallelise inside).
 *  - For a given build and CPU kernel (OPENBLAS_CORETYPE), results are bit-identical
 *    whatever the OpenMP thread count. */
#ifndef CRUCIBLE_MODEL_MODEL_H
#define CRUCIBLE_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "model/config.h"

typedef struct Batch {
    int n_tokens;               /* N (> 0) */
    int n_seqs;                 /* S (> 0) */
    const int32_t *tokens;      /* [N] input ids */
    const int32_t *targets;     /* [N] id whose log-prob is wanted at t, or -1 */
    const int32_t *cu_seqlens;  /* [S+1]: 0 = c0 < c1 < ... < cS = N */
    const int32_t *pos;         /* [N] positions; NULL = 0..len-1 within each sequence */
} Batch;

/* One named parameter tensor inside the flat buffer. */
typedef struct ParamTensor {
    char name[96];   /* HF name, e.g. "model.layers.1.mlp.experts.3.up_proj.weight" */
    int ndim;
    int64_t shape[2];
    size_t offset;   /* in floats from the start of params */
    size_t numel;
} ParamTensor;

typedef struct ModelState ModelState;  /* activations and scratch (private) */
struct Ops;                            /* model/ops.h */

typedef struct Model {
    ModelConfig cfg;
    float *params;          /* [n_params] */
    float *grads;           /* [n_params] (allocated by model_create); NULL for model_create_infer */
    size_t n_params;
    ParamTensor *tensors;   /* [n_tensors], in checkpoint order */
    int n_tensors;
    ModelState *state;
    const struct Ops *ops;  /* compute backend (ops_cpu() by default); params/grads live in its memory */
} Model;

/* A model with this config and all-zero parameters. NULL + error if the config is invalid. */
Model *model_create(const ModelConfig *cfg, CrError *e);
/* The same on a given backend (ops_cpu(), or ops_cuda() from model/cuda/ops_cuda.h):
 * params, grads and activations live in that backend's memory. */
Model *model_create_ops(const ModelConfig *cfg, const struct Ops *ops, CrError *e);
/* Inference only (the rollout engine, decode benchmarks): params on that backend and
 * nothing else — m->grads is NULL and no training activations are ever allocated, so a
 * model whose params and grads would not both fit (DeepSeek-Coder-V2-Lite in fp32 on one
 * 80 GB GPU) can still decode. model_forward, model_forward_hidden, model_backward and
 * model_backward_hidden return -1 with a message on such a model; model_zero_grads does
 * nothing; adamw_init refuses it. Weight views (model/layers.h) and
 * model_ffn_forward_infer work as on a full model. */
Model *model_create_infer(const ModelConfig *cfg, const struct Ops *ops, CrError *e);
/* 1 for a model from model_create_infer. */
int model_is_infer_only(const Model *m);
void model_free(Model *m);
/* Deterministic for a seed: Linear weights ~ N(0, initializer_range), norms = 1; each
 * tensor from its own stream, so the values do not depend on the backend or thread
 * count. Generated on the host, largest tensors first: in place on ops_cpu(); for another
 * backend in two staging chunks of 1 GiB (or twice the largest tensor) and uploaded, no
 * host copy of the whole parameter buffer. */
void model_init_random(Model *m, uint64_t seed);
/* The same values staged through chunks of at least chunk_floats (model_init_random: 2^28;
 * tests pass small ones to cross many chunk boundaries). */
void model_init_random_chunked(Model *m, uint64_t seed, size_t chunk_floats);
/* Load DIR/config.json and DIR/model.safetensors or the sharded
 * DIR/model.safetensors.index.json (F32/BF16/F16 converted to fp32). */
Model *model_load(const char *dir, CrError *e);
/* The same onto a given backend (model_load = model_load_ops(dir, ops_cpu(), e)): values
 * are converted and checked on the host, one tensor at a time, then uploaded. */
Model *model_load_ops(const char *dir, const struct Ops *ops, CrError *e);
/* Write DIR/config.json and DIR/model.safetensors (atomically; DIR is created). */
int model_save(const Model *m, const char *dir, CrError *e);
/* Look up a tensor by HF name (NULL if absent). */
const ParamTensor *model_find_tensor(const Model *m, const char *name);

int model_forward(Model *m, const Batch *b, float *logp, float *aux_loss, CrError *e);
int model_backward(Model *m, const Batch *b, const float *dlogp, float aux_weight, CrError *e);
/* Final-norm hidden states [N, D] (the reward model's trunk); backward takes dL/dhidden. */
int model_forward_hidden(Model *m, const Batch *b, float *hidden, float *aux_loss, CrError *e);
int model_backward_hidden(Model *m, const Batch *b, const float *dhidden, float aux_weight,
                          CrError *e);
void model_zero_grads(Model *m);

#endif
