/* rollout/forward_ops.h — the inference forward of forward.h on any compute backend.
 * Defines: ForwardOps, forward_ops_new, forward_ops_free, forward_ops_run.
 *
 * The same pass as forward_run (rollout/forward.h): n rows, row i token tokens[i] at
 * position pos[i] of sequence seqs[i]; per layer every row's latent [rmsnorm(c) |
 * rope(k_pe)] is written to the paged cache, then each row attends to positions
 * 0..pos[i] of its own sequence in the absorbed form (spec §9.3). Written once against
 * the model's Ops table (m->ops) and the model/layers.h weight views, so every tensor —
 * weights, activations, cache, logits — stays in backend memory (device memory on
 * CUDA). Per call the host uploads only small int32 arrays (tokens, positions, the rows'
 * block tables, the logit rows) and downloads only the chosen experts when asked.
 *
 * Numerics: the backend's (fp32 on ops_cpu() and ops_cuda()); results agree with
 * forward_run to rounding, not bit for bit, and on CUDA they may depend on the batch
 * (cuBLAS picks kernels by shape). The CPU forward.c stays the checked specification. */
#ifndef CRUCIBLE_ROLLOUT_FORWARD_OPS_H
#define CRUCIBLE_ROLLOUT_FORWARD_OPS_H

#include <stdint.h>

#include "model/model.h"
#include "rollout/kv_cache.h"

typedef struct ForwardOps ForwardOps;

/* Scratch grows to the largest call; the model must outlive it. */
ForwardOps *forward_ops_new(Model *m);
void forward_ops_free(ForwardOps *f);

/* tokens, pos, seqs, logit_rows: host. c: a cache created on m->ops. logits: backend
 * memory [n_logits, vocab] (overwritten). experts (host, may be NULL): [n][n_moe][K]
 * chosen expert ids in descending router score order. The caller has made every
 * (seq, pos) writable (cache_seq_prepare_write) and guarantees pos[i] < capacity. */
void forward_ops_run(ForwardOps *f, LatentCache *c, int n, const int32_t *tokens, const int32_t *pos,
                     CacheSeq *const *seqs, const int *logit_rows, int n_logits, float *logits,
                     int32_t *experts);

#endif
