/* rollout/rollout.h — the rollout engine: G samples for each of many prompts, generated
 * together over one latent MLA cache (DESIGN.md §5).
 * Defines: SampleParams, Sample, RolloutStats, RolloutEngine, rollout_create,
 * rollout_generate, rollout_set_progress, rollout_stats, sample_free, rollout_free.
 *
 * How it runs: each prompt is prefilled once; its G samples fork the prompt's cache
 * blocks (shared, copy-on-write on the partial last block). All live samples of all
 * prompts decode together, one batched forward per step (forward.h). A finished sample
 * frees its blocks at once and waiting prompts/samples are admitted as soon as the pool
 * can promise their worst case (continuous batching); nothing fails for lack of cache
 * mid-run: work waits instead.
 *
 * Determinism: sample g of prompt p draws from the RNG stream (seed, prompt_index_base + p,
 * g), one uniform per token (none when greedy). Every decode product runs on kernels
 * whose per-row summation order does not depend on the other rows or the thread count
 * (rollout/linear.h), so a sample's tokens AND log-probs are bitwise the same whatever
 * the batch composition, cache budget or thread count (for up to 512 live samples per
 * step; on the same CPU instruction set).
 *
 * Backends: on ops_cpu() the engine runs the host forward (rollout/forward.c) and the
 * host sampler; on any other backend (CUDA) it runs rollout/forward_ops.c over a cache
 * in that backend's memory, and samples with ops->sample_rows when the backend has one
 * (the host uploads each live row's uniform, drawn from the row's stream exactly as the
 * host sampler draws it, and downloads only tokens and the two log-probs), else on the
 * host after downloading the logits. The bitwise batch invariance above holds for the
 * host forward only; the Ops path agrees with it to rounding. Environment:
 * CRUCIBLE_ROLLOUT_OPS=1 (read by rollout_create) sends ops_cpu() models down the Ops
 * path too, which is how the CPU tests check that path.
 *
 * What a Sample holds:
 *  - token_ids: every generated token, INCLUDING the stop token id that ended it (GRPO
 *    trains on EOS) and the token that completed a stop string; logprobs / logprobs_model
 *    for each of them (see sampler.h: sampled distribution after temperature and
 *    truncation, 0 when greedy; and the untempered model).
 *  - text (only with a tokenizer): the decoded completion, cut before a stop string and
 *    without the stop token.
 *  - expert_ids (record_experts): for token t and MoE layer j, the K experts chosen (in
 *    descending router score) at the position whose logits produced token t (token 0:
 *    the prompt's last position).
 * The engine reads the model's parameters in place: the trainer may update them between
 * calls to rollout_generate (not during one). */
#ifndef CRUCIBLE_ROLLOUT_ROLLOUT_H
#define CRUCIBLE_ROLLOUT_ROLLOUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "model/model.h"

typedef struct Tokenizer Tokenizer;

typedef struct SampleParams {
    float temperature, top_p, min_p;  /* 0 = greedy; top_p >= 1 off; min_p <= 0 off */
    int top_k;                        /* <= 0: off */
    int max_new_tokens;               /* >= 1; fewer when the context (max_position_embeddings)
                                         ends first (finish_reason "length") */
    const int32_t *stop_ids;          /* NULL/0: the tokenizer's EOS (else config eos_token_id) */
    int n_stop_ids;
    const char *const *stop_strings;  /* need a tokenizer */
    int n_stop_strings;
    uint64_t seed;
    int record_experts;
    int ignore_eos;                   /* 1: no default EOS stop (stop_ids still apply) */
} SampleParams;

typedef struct Sample {
    int32_t *token_ids;
    int n_tokens;
    float *logprobs;        /* under the distribution sampled from (after temperature) */
    float *logprobs_model;  /* under the untempered model */
    char *text;             /* NUL-terminated; NULL without a tokenizer */
    size_t text_len;
    int finish_reason;      /* 0 stop, 1 length */
    int32_t *expert_ids;    /* [n_tokens][n_moe_layers][K] or NULL */
} Sample;

typedef struct RolloutStats {
    long prefill_tokens, generated_tokens, decode_steps;
    double prefill_s, decode_s;       /* wall time inside forward + sampling */
    int max_live;                     /* most samples decoded in one step */
    /* Ops path only (0 on the host path): rows through each attention form of
     * forward_ops.h (prefill chunks: MHA form; decode steps: absorbed form) */
    long attn_mha_rows, attn_absorbed_rows;
    /* decode steps run as a recorded step of the backend (forward_ops.h, Ops.step_*):
     * recordings made, steps replayed (0 unless the backend records, CRUCIBLE_CUDA_GRAPHS=1),
     * and the decode-step shapes met (each a key a step is recorded for) */
    long step_records, step_replays, step_shapes;
} RolloutStats;

typedef struct RolloutEngine RolloutEngine;

/* cache_token_budget: positions of latent cache to preallocate (all layers). */
RolloutEngine *rollout_create(Model *m, const Tokenizer *tok, long cache_token_budget, CrError *e);
/* n_prompts prompts (token ids), G samples each; out[p*G + g]. Errors (nothing written to
 * out): empty prompt, token id out of range, prompt not shorter than
 * max_position_embeddings, a prompt whose single sample cannot fit in the cache budget,
 * bad parameters, stop strings without a tokenizer. */
int rollout_generate(RolloutEngine *r, const int32_t *const *prompts, const int *prompt_lens,
                     int n_prompts, int G, const SampleParams *sp, long prompt_index_base,
                     Sample *out, CrError *e);
/* Progress lines (tokens/s) to f about every 2 s during generation; NULL = quiet. */
void rollout_set_progress(RolloutEngine *r, FILE *f);
/* Counters since rollout_create. */
RolloutStats rollout_stats(const RolloutEngine *r);
/* Cache size in tokens (rounded up to whole blocks). */
long rollout_cache_tokens(const RolloutEngine *r);
void sample_free(Sample *s);
void rollout_free(RolloutEngine *r);

#endif
