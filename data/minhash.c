/* data/minhash.c — see minhash.h */
#include "data/minhash.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

static uint64_t mix64(uint64_t x) {  /* splitmix64 finalizer */
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

static uint64_t fnv(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static int is_word(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c >= 0x80;
}
static int is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Words: runs of identifier bytes, or single punctuation bytes (so "a+b" and "a + b"
 * give the same words: whitespace changes do not change shingles). */
uint64_t *minhash_shingles(const char *text, size_t len, int *n) {
    size_t cap = 64, nw = 0;
    uint64_t *w = cr_malloc(cap * sizeof *w);
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)text[i];
        if (is_space(c)) { i++; continue; }
        size_t j = i + 1;
        if (is_word(c)) while (j < len && is_word((unsigned char)text[j])) j++;
        if (nw == cap) { cap *= 2; w = cr_realloc(w, cap * sizeof *w); }
        w[nw++] = fnv(text + i, j - i);
        i = j;
    }
    size_t ns = nw < MINHASH_SHINGLE ? (nw > 0) : nw - MINHASH_SHINGLE + 1;
    int k = nw < MINHASH_SHINGLE ? (int)nw : MINHASH_SHINGLE;
    uint64_t *s = cr_malloc((ns ? ns : 1) * sizeof *s);
    for (size_t i = 0; i < ns; i++) {
        uint64_t h = 0x51ed270b27aa3c5dULL;
        for (int t = 0; t < k; t++) h = mix64(h ^ w[i + (size_t)t]);
        s[i] = h;
    }
    free(w);
    qsort(s, ns, sizeof *s, cmp_u64);
    size_t m = 0;
    for (size_t i = 0; i < ns; i++)
        if (m == 0 || s[i] != s[m - 1]) s[m++] = s[i];
    *n = (int)m;
    return s;
}

void minhash_compute(const char *text, size_t len, MinHash *out) {
    int n;
    uint64_t *s = minhash_shingles(text, len, &n);
    for (int k = 0; k < MINHASH_K; k++) out->h[k] = UINT64_MAX;
    for (int i = 0; i < n; i++)
        for (int k = 0; k < MINHASH_K; k++) {
            /* K independent hash functions: mix64 keyed by k */
            uint64_t v = mix64(s[i] ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(k + 1)));
            if (v < out->h[k]) out->h[k] = v;
        }
    free(s);
}

double minhash_jaccard(const MinHash *a, const MinHash *b) {
    int eq = 0;
    for (int k = 0; k < MINHASH_K; k++) eq += a->h[k] == b->h[k];
    return (double)eq / MINHASH_K;
}

/* LSH: for each band, a hash table from the band's hash to the ids having it. */
typedef struct Bucket { uint64_t key; int id; int next; } Bucket;
struct MinHashIndex {
    MinHash *sig;
    int n, cap;
    Bucket *b;          /* all bucket entries */
    int nb, capb;
    int *head;          /* open-addressed heads: slot -> entry index + 1 */
    uint64_t *headkey;
    size_t nslots;
    size_t used;
};

MinHashIndex *minhash_index_new(void) {
    MinHashIndex *ix = cr_calloc(1, sizeof *ix);
    ix->nslots = 1024;
    ix->head = cr_calloc(ix->nslots, sizeof(int));
    ix->headkey = cr_calloc(ix->nslots, sizeof(uint64_t));
    return ix;
}

void minhash_index_free(MinHashIndex *ix) {
    if (!ix) return;
    free(ix->sig);
    free(ix->b);
    free(ix->head);
    free(ix->headkey);
    free(ix);
}

static uint64_t band_key(const MinHash *m, int band) {
    const int rows = MINHASH_K / MINHASH_BANDS;
    uint64_t h = mix64((uint64_t)band + 1);
    for (int r = 0; r < rows; r++) h = mix64(h ^ m->h[band * rows + r]);
    return h;
}

static size_t slot_of(const MinHashIndex *ix, uint64_t key) {
    size_t s = (size_t)key & (ix->nslots - 1);
    while (ix->head[s] && ix->headkey[s] != key) s = (s + 1) & (ix->nslots - 1);
    return s;
}

static void grow_slots(MinHashIndex *ix) {
    size_t old = ix->nslots;
    int *oh = ix->head;
    uint64_t *ok = ix->headkey;
    ix->nslots *= 2;
    ix->head = cr_calloc(ix->nslots, sizeof(int));
    ix->headkey = cr_calloc(ix->nslots, sizeof(uint64_t));
    for (size_t i = 0; i < old; i++)
        if (oh[i]) {
            size_t s = slot_of(ix, ok[i]);
            ix->head[s] = oh[i];
            ix->headkey[s] = ok[i];
        }
    free(oh);
    free(ok);
}

int minhash_index_find_or_add(MinHashIndex *ix, const MinHash *m, double threshold) {
    uint64_t keys[MINHASH_BANDS];
    for (int band = 0; band < MINHASH_BANDS; band++) {
        keys[band] = band_key(m, band);
        size_t s = slot_of(ix, keys[band]);
        for (int e = ix->head[s] - 1; e >= 0; e = ix->b[e].next)
            if (minhash_jaccard(&ix->sig[ix->b[e].id], m) >= threshold) return ix->b[e].id;
    }
    if (ix->n == ix->cap) {
        ix->cap = ix->cap ? ix->cap * 2 : 64;
        ix->sig = cr_realloc(ix->sig, sizeof(MinHash) * (size_t)ix->cap);
    }
    int id = ix->n++;
    ix->sig[id] = *m;
    for (int band = 0; band < MINHASH_BANDS; band++) {
        if ((ix->used + 1) * 2 > ix->nslots) grow_slots(ix);
        size_t s = slot_of(ix, keys[band]);
        if (!ix->head[s]) { ix->headkey[s] = keys[band]; ix->used++; }
        if (ix->nb == ix->capb) {
            ix->capb = ix->capb ? ix->capb * 2 : 256;
            ix->b = cr_realloc(ix->b, sizeof(Bucket) * (size_t)ix->capb);
        }
        ix->b[ix->nb] = (Bucket){keys[band], id, ix->head[s] - 1};
        ix->head[s] = ++ix->nb;
    }
    return -1;
}
