/* rollout/forward_ops.h — the inference forward of forward.h on any compute backend.
 * Defines: ForwardOps, ForwardOpsAttention, ForwardOpsStats, forward_ops_new,
 * forward_ops_free, forward_ops_set_attention, forward_ops_stats, forward_ops_run.
 *
 * The same pass as forward_run (rollout/forward.h): n rows, row i token tokens[i] at
 * position pos[i] of sequence seqs[i]; per layer every row's latent [rmsnorm(c) |
 * rope(k_pe)] is written to the paged cache, then each row attends to positions
 * 0..pos[i] of its own sequence (in one of the two forms below). Written once against
 * the model's Ops table (m->ops) and the model/layers.h weight views, so every tensor —
 * weights, activations, cache, logits — stays in backend memory (device memory on
 * CUDA). Per call the host uploads only small int32 arrays (tokens, positions, the logit
 * rows and the rows' block tables in ONE upload — each transfer is a host sync on CUDA —;
 * the MHA form's run boundaries and key-row indices) and downloads only the chosen
 * experts when asked (after the LM head is queued).
 *
 * Two forms of the same attention (spec §9.4), chosen per call:
 *  - absorbed (spec §9.3): q_lat = W_UK^T q_nope, scores against the 576-wide latent
 *    rows (ops->mla_decode_attention), o = W_UV o_lat. Cheapest for decode: nothing is
 *    expanded, but every query row is a scalar pass over its whole context.
 *  - non-absorbed / MHA (spec §4.2, the training form of model.c): the rows of the call
 *    are cut into runs (maximal stretches of consecutive rows of one sequence at
 *    consecutive positions p0..p0+len-1). Each run's keys are its sequence's latent rows
 *    0..p0+len-1 (its own rows, or, when p0 > 0, the cached context gathered from the
 *    cache after this layer's rows were written), expanded per head by one kv_b_proj GEMM
 *    to K = [W_UK c | k_pe], V = W_UV c, and ops->attention_forward runs causal attention
 *    with one cu_seqlens segment per run (query rows placed at their positions; the
 *    context rows before p0 get zero queries whose outputs are dropped). GEMM-shaped
 *    work (tensor cores on the bf16 table), for prefill.
 * Rule (FORWARD_OPS_ATTN_AUTO): with n rows, n_keys = sum over runs of (p0 + len), the
 * call takes the MHA form iff its longest run has >= FORWARD_OPS_MHA_MIN_RUN rows,
 * n_keys <= FORWARD_OPS_MHA_KEYS_PER_ROW * n and n_keys <= FORWARD_OPS_MHA_MAX_KEYS;
 * otherwise (decode steps: runs of one row; tiny prompts; a short chunk behind a long
 * context, where expanding the context costs more than it saves; more key rows than
 * the scratch bound) the absorbed form. A prefill chunk from position 0 has n_keys = n
 * and needs no gather or padding. Both forms write the same cache rows.
 *
 * Numerics: the backend's (fp32 on ops_cpu() and ops_cuda()); results agree with
 * forward_run to rounding, not bit for bit, and may depend on the batch (on CUDA cuBLAS
 * picks kernels by shape; on every backend the batch decides the attention form). The CPU
 * forward.c stays the checked specification.
 *
 * Recorded steps: when the backend records (Ops.step_enabled, e.g. CUDA graphs under
 * CRUCIBLE_CUDA_GRAPHS=1), an absorbed-form call whose FFN needs no host sync
 * (model_ffn_infer_is_async) runs as one recorded step: recorded on the second call of a
 * shape (rows, padded table width, logit rows, logits buffer, experts asked, cache) and
 * replayed while the shape stays, re-recorded when the backend's memory moved. Block
 * tables are then padded to whole multiples of FORWARD_OPS_STEP_CTX positions, so a
 * decode step keeps its shape for that many tokens (the extra splits of the decode
 * attention are empty: same values). The uploads and the experts download stay outside
 * the step. */
#ifndef CRUCIBLE_ROLLOUT_FORWARD_OPS_H
#define CRUCIBLE_ROLLOUT_FORWARD_OPS_H

#include <stdint.h>

#include "model/model.h"
#include "rollout/kv_cache.h"

typedef struct ForwardOps ForwardOps;

/* The MHA-form thresholds of the rule above. The keys-per-row bound keeps the MHA form
 * within ~2x the absorbed form's attention FLOPs (which are scalar, not GEMM) for
 * 256-row chunks; the key bound caps its scratch (~60 KB per key row on Lite). */
enum { FORWARD_OPS_MHA_MIN_RUN = 16, FORWARD_OPS_MHA_KEYS_PER_ROW = 8, FORWARD_OPS_MHA_MAX_KEYS = 8192 };
/* With recorded steps: block tables padded to multiples of this many positions. */
enum { FORWARD_OPS_STEP_CTX = 1024 };

typedef enum ForwardOpsAttention {
    FORWARD_OPS_ATTN_AUTO = 0,   /* the rule above (the default) */
    FORWARD_OPS_ATTN_ABSORBED,   /* always absorbed */
    FORWARD_OPS_ATTN_MHA         /* always the MHA form (tests: any rows form valid runs) */
} ForwardOpsAttention;

/* Calls and rows through each form since forward_ops_new. */
typedef struct ForwardOpsStats {
    long absorbed_calls, absorbed_rows;
    long mha_calls, mha_rows, mha_keys;  /* mha_keys: key rows attended (n_keys summed) */
    long step_records, step_replays;     /* recorded steps (Ops.step_*): recorded, run */
    long step_shapes;                    /* decode-step shapes met while recording was on */
} ForwardOpsStats;

/* Scratch grows to the largest call; the model must outlive it. */
ForwardOps *forward_ops_new(Model *m);
void forward_ops_free(ForwardOps *f);

/* The form of later calls (default AUTO). Forced MHA still falls back to absorbed when
 * the cache has more than INT32_MAX rows (the gather's int32 index). */
void forward_ops_set_attention(ForwardOps *f, ForwardOpsAttention mode);
ForwardOpsStats forward_ops_stats(const ForwardOps *f);

/* tokens, pos, seqs, logit_rows: host. c: a cache created on m->ops. logits: backend
 * memory [n_logits, vocab] (overwritten). experts (host, may be NULL): [n][n_moe][K]
 * chosen expert ids in descending router score order. The caller has made every
 * (seq, pos) writable (cache_seq_prepare_write) and guarantees pos[i] < capacity. */
void forward_ops_run(ForwardOps *f, LatentCache *c, int n, const int32_t *tokens, const int32_t *pos,
                     CacheSeq *const *seqs, const int *logit_rows, int n_logits, float *logits,
                     int32_t *experts);

#endif
