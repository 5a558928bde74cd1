/* data/bpe.c — see bpe.h */
#include "data/bpe.h"
#include "core/alloc.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

void bpe_init(Bpe *b, size_t expected) {
    memset(b, 0, sizeof *b);
    size_t cap = 64;
    while (cap < expected * 2 + 2) cap <<= 1;
    b->merges = cr_calloc(cap, sizeof *b->merges);
    b->merge_cap = cap;
    for (int i = 0; i < 256; i++) b->byte_id[i] = -1;
    b->unk_id = -1;
}

void bpe_free(Bpe *b) {
    free(b->merges);
    b->merges = NULL;
}

static void merge_insert(BpeMergeSlot *tab, size_t cap, BpeMergeSlot s) {
    size_t j = (size_t)((s.key * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
    while (tab[j].key) j = (j + 1) & (cap - 1);
    tab[j] = s;
}

void bpe_add_merge(Bpe *b, int32_t left, int32_t right, int32_t rank, int32_t id) {
    if (bpe_find(b, left, right)) return;
    if ((b->n_merges + 1) * 2 > b->merge_cap) {
        size_t ncap = b->merge_cap * 2;
        BpeMergeSlot *t = cr_calloc(ncap, sizeof *t);
        for (size_t i = 0; i < b->merge_cap; i++)
            if (b->merges[i].key) merge_insert(t, ncap, b->merges[i]);
        free(b->merges);
        b->merges = t;
        b->merge_cap = ncap;
    }
    uint64_t key = (((uint64_t)(uint32_t)left << 32) | (uint32_t)right) + 1;
    merge_insert(b->merges, b->merge_cap, (BpeMergeSlot){key, rank, id});
    b->n_merges++;
}

void bpe_scratch_free(BpeScratch *s) {
    free(s->ids);
    free(s->ranks);
    free(s->prev);
    free(s->next);
    free(s->heap);
    memset(s, 0, sizeof *s);
}

static void out_push(int32_t **out, size_t *n, size_t *cap, int32_t id) {
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *out = cr_realloc(*out, *cap * sizeof **out);
    }
    (*out)[(*n)++] = id;
}

static inline int32_t pair_rank(const Bpe *b, int32_t l, int32_t r) {
    const BpeMergeSlot *s = bpe_find(b, l, r);
    return s ? s->rank : INT32_MAX;
}

/* Words up to this many symbols use the array scan (no heap); longer ones use a
 * binary heap over (rank, position) with lazy invalidation, O(n log n). */
#define BPE_SCAN_MAX 48

/* heap entries: (int64) rank << 32 | pos, min-heap */
static void heap_push(int64_t *h, size_t *n, int64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static int64_t heap_pop(int64_t *h, size_t *n) {
    int64_t top = h[0], last = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && h[c + 1] < h[c]) c++;
        if (h[c] >= last) break;
        h[i] = h[c];
        i = c;
    }
    if (*n) h[i] = last;
    return top;
}

size_t bpe_encode_word(const Bpe *b, const unsigned char *w, size_t n, int space, BpeScratch *s,
                       int32_t **out, size_t *out_n, size_t *out_cap) {
    size_t total = n + (space ? 1 : 0);
    if (total > s->cap) {
        s->cap = total * 2;
        s->ids = cr_realloc(s->ids, s->cap * sizeof(int32_t));
        s->ranks = cr_realloc(s->ranks, s->cap * sizeof(int32_t));
        s->prev = cr_realloc(s->prev, s->cap * sizeof(int32_t));
        s->next = cr_realloc(s->next, s->cap * sizeof(int32_t));
    }
    int32_t *ids = s->ids;
    size_t m = 0;
    int last_unk = 0;
    for (size_t i = 0; i < total; i++) {
        unsigned char c = space ? (i == 0 ? ' ' : w[i - 1]) : w[i];
        int32_t id = b->byte_id[c];
        if (id < 0) {
            /* HF: no token for this char -> unk (fused if asked), or dropped */
            if (b->unk_id < 0) continue;
            if (b->fuse_unk && last_unk) continue;
            id = b->unk_id;
            last_unk = 1;
        } else {
            last_unk = 0;
        }
        ids[m++] = id;
    }
    size_t start = *out_n;
    if (m <= BPE_SCAN_MAX) {
        int32_t *rk = s->ranks;
        for (size_t i = 0; i + 1 < m; i++) rk[i] = pair_rank(b, ids[i], ids[i + 1]);
        while (m > 1) {
            size_t best = 0;
            int32_t br = INT32_MAX;
            for (size_t i = 0; i + 1 < m; i++)
                if (rk[i] < br) { br = rk[i]; best = i; }
            if (br == INT32_MAX) break;
            ids[best] = bpe_find(b, ids[best], ids[best + 1])->id;
            memmove(ids + best + 1, ids + best + 2, (m - best - 2) * sizeof(int32_t));
            if (m >= best + 3) memmove(rk + best + 1, rk + best + 2, (m - best - 3) * sizeof(int32_t));
            m--;
            if (best > 0) rk[best - 1] = pair_rank(b, ids[best - 1], ids[best]);
            if (best + 1 < m) rk[best] = pair_rank(b, ids[best], ids[best + 1]);
        }
        for (size_t i = 0; i < m; i++) out_push(out, out_n, out_cap, ids[i]);
        return *out_n - start;
    }
    /* linked list over the initial positions + heap */
    int32_t *prev = s->prev, *next = s->next;
    if (m > s->heap_cap) {
        s->heap_cap = m * 2;
        s->heap = cr_realloc(s->heap, s->heap_cap * sizeof(int64_t));
    }
    int64_t *heap = s->heap;
    size_t hn = 0;
    for (size_t i = 0; i < m; i++) {
        prev[i] = (int32_t)i - 1;
        next[i] = i + 1 < m ? (int32_t)(i + 1) : -1;
    }
    for (size_t i = 0; i + 1 < m; i++) {
        int32_t r = pair_rank(b, ids[i], ids[i + 1]);
        if (r != INT32_MAX) heap_push(heap, &hn, ((int64_t)r << 32) | (int64_t)i);
    }
    while (hn) {
        int64_t top = heap_pop(heap, &hn);
        int32_t r = (int32_t)(top >> 32), pos = (int32_t)(top & 0xffffffff);
        if (ids[pos] < 0) continue;               /* merged away */
        int32_t nx = next[pos];
        if (nx < 0) continue;
        const BpeMergeSlot *ms = bpe_find(b, ids[pos], ids[nx]);
        if (!ms || ms->rank != r) continue;       /* pair changed since pushed */
        ids[pos] = ms->id;
        ids[nx] = -1;
        next[pos] = next[nx];
        if (next[nx] >= 0) prev[next[nx]] = pos;
        /* each merge adds at most 2 entries, and there are < m merges */
        if (hn + 2 > s->heap_cap) {
            s->heap_cap = (hn + 2) * 2;
            s->heap = cr_realloc(s->heap, s->heap_cap * sizeof(int64_t));
            heap = s->heap;
        }
        if (prev[pos] >= 0) {
            int32_t pr = pair_rank(b, ids[prev[pos]], ids[pos]);
            if (pr != INT32_MAX) heap_push(heap, &hn, ((int64_t)pr << 32) | prev[pos]);
        }
        if (next[pos] >= 0) {
            int32_t nr = pair_rank(b, ids[pos], ids[next[pos]]);
            if (nr != INT32_MAX) heap_push(heap, &hn, ((int64_t)nr << 32) | pos);
        }
    }
    for (int32_t i = 0; i >= 0 && (size_t)i < m; i = next[i]) out_push(out, out_n, out_cap, ids[i]);
    return *out_n - start;
}
