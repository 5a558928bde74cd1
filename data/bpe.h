/* data/bpe.h — the BPE model of a byte-level tokenizer: merge table and merge loop.
 * Defines: Bpe, bpe_init, bpe_free, bpe_add_merge, bpe_encode_word.
 *
 * Works on raw bytes: symbol i of a word starts as the id of the vocabulary token
 * for byte i (through the GPT-2 byte alphabet), then the adjacent pair with the
 * lowest merge rank is merged, leftmost first on ties — exactly HF `Word::merge_all`
 * (without dropout). */
#ifndef CRUCIBLE_DATA_BPE_H
#define CRUCIBLE_DATA_BPE_H

#include <stddef.h>
#include <stdint.h>

typedef struct BpeMergeSlot {
    uint64_t key;     /* (left << 32 | right) + 1; 0 = empty */
    int32_t rank, id;
} BpeMergeSlot;

typedef struct Bpe {
    int32_t byte_id[256];  /* token of each single byte, -1 if the vocab lacks it */
    BpeMergeSlot *merges;
    size_t merge_cap, n_merges;
    int32_t unk_id;        /* -1: bytes without a token are dropped (HF without unk_token) */
    int fuse_unk;
} Bpe;

void bpe_init(Bpe *b, size_t expected_merges);
void bpe_free(Bpe *b);
/* Register merge (left, right) -> id with the given rank. An existing pair keeps
 * its first (lowest) rank, like HF. */
void bpe_add_merge(Bpe *b, int32_t left, int32_t right, int32_t rank, int32_t id);
static inline const BpeMergeSlot *bpe_find(const Bpe *b, int32_t left, int32_t right) {
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    size_t j = (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (b->merge_cap - 1);
    for (;;) {
        const BpeMergeSlot *s = &b->merges[j];
        if (s->key == key) return s;
        if (s->key == 0) return NULL;
        j = (j + 1) & (b->merge_cap - 1);
    }
}

/* Scratch for bpe_encode_word; zero-initialise, free with bpe_scratch_free. */
typedef struct BpeScratch {
    int32_t *ids, *ranks, *prev, *next;
    int64_t *heap;   /* (rank << 32 | pos) min-heap entries */
    size_t cap, heap_cap;
} BpeScratch;
void bpe_scratch_free(BpeScratch *s);

/* Encode the bytes w[0..n) (with one leading ' ' when space is set) and append
 * the ids to *out (growing *cap with realloc). Returns the number appended. */
size_t bpe_encode_word(const Bpe *b, const unsigned char *w, size_t n, int space, BpeScratch *s,
                       int32_t **out, size_t *out_n, size_t *out_cap);

#endif
