/* sft/pack.h — sequence packing for training batches.
 * Defines: SeqExample, PackedBatch, pack_batches, packed_batch_free.
 *
 * Examples are token sequences with a per-token loss mask (1 = this token is a
 * target: its log-probability given the prefix enters the loss). Packing concatenates
 * whole examples, in the given order, into batches of at most max_tokens tokens (an
 * example longer than max_tokens is truncated to it, keeping its head); every example
 * is its own attention segment (cu_seqlens), so packing never lets one example attend
 * to another. targets[t] = ids[t+1] where mask[t+1] is set, else -1. */
#ifndef CRUCIBLE_SFT_PACK_H
#define CRUCIBLE_SFT_PACK_H

#include <stdint.h>

#include "model/model.h"

typedef struct SeqExample {
    int32_t *ids;
    uint8_t *mask;   /* [n]; mask[0] is ignored (no prefix to predict it from) */
    int n;
} SeqExample;

typedef struct PackedBatch {
    Batch batch;          /* views into the arrays below */
    int32_t *tokens, *targets, *cu_seqlens;
    int n_targets;        /* number of t with targets[t] >= 0 */
    int first_example;    /* index into the order array of the first example packed */
    int n_examples;
} PackedBatch;

/* Pack order[0..n_order) (indices into ex) greedily into batches of <= max_tokens.
 * Returns the number of batches written to *out (malloc'd array). Examples with
 * fewer than 2 tokens or no target are skipped. */
int pack_batches(const SeqExample *ex, const int *order, int n_order, int max_tokens,
                 PackedBatch **out);
void packed_batch_free(PackedBatch *b);

#endif
