/* grpo/micro_batch.h — GRPO training micro-batches: (prompt, completion) pairs packed
 * for model_forward, with the per-token completion index, mask and advantage that
 * grpo_loss takes, and the step-global normalisers.
 * Defines: GrpoSeq, GrpoMicro, grpo_build_micros, grpo_micro_norm, grpo_micro_free.
 *
 * Each sequence is prompt ++ completion, its own attention segment (cu_seqlens),
 * positions from 0. Position t predicts token t+1, so targets[t] = tokens[t+1] exactly
 * where t+1 is a completion token (P <= t+1 < P+L): every completion token, the final
 * EOS included, is a target once, and no prompt token is. mask[t] = 1 on those
 * positions (0 for an overlong-masked completion), 0 elsewhere. Completions are never
 * split across micro-batches (grpo_loss computes |o_i| locally); a micro-batch holds
 * at most batch_tokens tokens unless one sequence alone is longer. Sequences with
 * L <= 0 (nothing generated) or P <= 0 are skipped: they have no token to learn from and
 * do not count in B'.
 *
 * Memory: the micro-batches own their arrays (not the GrpoSeq token arrays). */
#ifndef CRUCIBLE_GRPO_MICRO_BATCH_H
#define CRUCIBLE_GRPO_MICRO_BATCH_H

#include <stdint.h>

#include "grpo/loss.h"
#include "model/model.h"

typedef struct GrpoSeq {
    const int32_t *prompt;
    int P;
    const int32_t *comp;   /* the sampled tokens, the stop token included */
    int L;
    float adv;             /* A_i */
    int masked;            /* 1: overlong-masked, contributes nothing (still counts in B') */
} GrpoSeq;

typedef struct GrpoMicro {
    Batch b;                     /* views into the arrays below */
    int32_t *tokens, *targets, *cu;
    int *comp;                   /* [n_tokens] local completion index */
    float *mask;                 /* [n_tokens] */
    float *adv;                  /* [n_comp] */
    float *logp_old, *logp_ref;  /* [n_tokens] or NULL: filled by the trainer */
    int n_comp;
} GrpoMicro;

/* Pack seqs[0..n) in order into *out (malloc'd). Returns the number of micro-batches
 * (0 when no sequence has tokens; *out is then NULL). batch_tokens >= 2. */
int grpo_build_micros(const GrpoSeq *seqs, int n, long batch_tokens, GrpoMicro **out);
/* The step-global normalisers of grpo_loss over all micro-batches (one rank). */
GrpoNorm grpo_micro_norm(const GrpoMicro *mb, int n_mb, long max_new_tokens);
/* The weight of micro-batch i's MoE auxiliary loss so that the step's aux gradient is
 * that of one batch of all its sequences (the per-sequence aux loss is a mean over
 * sequences when seq_aux is on: weight = n_seqs(i) / total); 1/n_mb otherwise. */
float grpo_micro_aux_weight(const GrpoMicro *mb, int n_mb, int i, int seq_aux);
/* Free the arrays of n micro-batches and the array itself. */
void grpo_micro_free(GrpoMicro *mb, int n);

#endif
