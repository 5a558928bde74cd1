/* data/minhash.h — near-duplicate detection: MinHash signatures over word shingles and
 * an LSH index (banding). Defines: MinHash, MINHASH_K, minhash_shingles,
 * minhash_compute, minhash_jaccard, MinHashIndex, minhash_index_*.
 *
 * Shingles: the text is split into words (maximal runs of [A-Za-z0-9_] and non-ASCII
 * bytes; every other non-space byte is a word of its own, so whitespace changes do not
 * change the words); each shingle is a hash of MINHASH_SHINGLE
 * consecutive words (a text with fewer words is one shingle). The signature keeps, for
 * each of MINHASH_K hash functions, the minimum over shingles; the fraction of equal
 * entries estimates the Jaccard similarity of the shingle sets (std. error
 * sqrt(J(1-J)/K) ~ 0.04 at K = 128). */
#ifndef CRUCIBLE_DATA_MINHASH_H
#define CRUCIBLE_DATA_MINHASH_H

#include <stddef.h>
#include <stdint.h>

#define MINHASH_K 128
#define MINHASH_SHINGLE 5
#define MINHASH_BANDS 16        /* 16 bands x 8 rows: P(candidate | J=0.85) = 0.994, J=0.5: 0.06 */

typedef struct MinHash {
    uint64_t h[MINHASH_K];
} MinHash;

/* The distinct shingle hashes of a text (malloc'd, sorted ascending). */
uint64_t *minhash_shingles(const char *text, size_t len, int *n);
void minhash_compute(const char *text, size_t len, MinHash *out);
double minhash_jaccard(const MinHash *a, const MinHash *b);

typedef struct MinHashIndex MinHashIndex;
MinHashIndex *minhash_index_new(void);
void minhash_index_free(MinHashIndex *ix);
/* If an indexed signature has estimated Jaccard >= threshold with m (among LSH
 * candidates), return its id (the order of insertion, from 0); otherwise insert m and
 * return -1. */
int minhash_index_find_or_add(MinHashIndex *ix, const MinHash *m, double threshold);

#endif
