/* sft/pack.c — see pack.h */
#include "sft/pack.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

static int example_len(const SeqExample *e, int max_tokens) {
    return e->n < max_tokens ? e->n : max_tokens;
}

static int example_targets(const SeqExample *e, int len) {
    int k = 0;
    for (int t = 1; t < len; t++) k += e->mask[t] != 0;
    return k;
}

int pack_batches(const SeqExample *ex, const int *order, int n_order, int max_tokens,
                 PackedBatch **out) {
    int cap = 16, nb = 0;
    PackedBatch *bs = cr_calloc((size_t)cap, sizeof *bs);
    int i = 0;
    while (i < n_order) {
        /* gather examples for this batch */
        int start = i, tokens = 0, seqs = 0;
        while (i < n_order) {
            const SeqExample *e = &ex[order[i]];
            int len = example_len(e, max_tokens);
            if (len < 2 || example_targets(e, len) == 0) { i++; continue; }
            if (tokens + len > max_tokens && seqs > 0) break;
            tokens += len;
            seqs++;
            i++;
        }
        if (seqs == 0) break;
        if (nb == cap) { cap *= 2; bs = cr_realloc(bs, sizeof *bs * (size_t)cap); }
        PackedBatch *b = &bs[nb++];
        memset(b, 0, sizeof *b);
        b->tokens = cr_malloc(sizeof(int32_t) * (size_t)tokens);
        b->targets = cr_malloc(sizeof(int32_t) * (size_t)tokens);
        b->cu_seqlens = cr_malloc(sizeof(int32_t) * (size_t)(seqs + 1));
        b->first_example = start;
        b->n_examples = i - start;
        int off = 0, s = 0;
        b->cu_seqlens[0] = 0;
        for (int j = start; j < i; j++) {
            const SeqExample *e = &ex[order[j]];
            int len = example_len(e, max_tokens);
            if (len < 2 || example_targets(e, len) == 0) continue;
            memcpy(b->tokens + off, e->ids, sizeof(int32_t) * (size_t)len);
            for (int t = 0; t < len; t++) {
                int has = t + 1 < len && e->mask[t + 1];
                b->targets[off + t] = has ? e->ids[t + 1] : -1;
                b->n_targets += has;
            }
            off += len;
            b->cu_seqlens[++s] = off;
        }
        b->batch.n_tokens = tokens;
        b->batch.n_seqs = seqs;
        b->batch.tokens = b->tokens;
        b->batch.targets = b->targets;
        b->batch.cu_seqlens = b->cu_seqlens;
        b->batch.pos = NULL;
    }
    *out = bs;
    return nb;
}

void packed_batch_free(PackedBatch *b) {
    if (!b) return;
    free(b->tokens);
    free(b->targets);
    free(b->cu_seqlens);
    memset(b, 0, sizeof *b);
}
