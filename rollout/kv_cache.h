/* rollout/kv_cache.h — the latent MLA cache (spec/deepseek-v2.md §9.2), paged.
 * Defines: LatentCache, CacheSeq, latent_cache_create(_ops)/free, cache_seq_*.
 *
 * Per layer and token the cache holds ONE row of width kv_lora_rank + qk_rope_head_dim:
 * the compressed latent after kv_a_layernorm, then the rotated shared rope key. Nothing
 * per head. Memory is a pool of fixed-size blocks preallocated from a token budget; a
 * block holds block_tokens positions for every layer ([layer][token][row] inside it).
 * A sequence is a table of block ids. Blocks are reference counted so that the G
 * samples of a group share their prompt's blocks: cache_seq_fork copies the table and
 * bumps the counts; the first write into a shared block copies it (copy-on-write).
 *
 * Capacity is managed by reservation: a caller reserves the most blocks a sequence can
 * ever need before starting it (cache_reserve fails, without side effects, when the pool
 * cannot promise them), so allocation inside a decode step never fails.
 *
 * Where the data lives: in the memory of the Ops backend it was created on (host for
 * ops_cpu(), device memory for CUDA); the bookkeeping (block tables, reference counts,
 * free list) is always host memory. Copy-on-write copies through ops->copy. cache_row
 * dereferences nothing but is only meaningful for host memory (the CPU forward). */
#ifndef CRUCIBLE_ROLLOUT_KV_CACHE_H
#define CRUCIBLE_ROLLOUT_KV_CACHE_H

#include <stddef.h>

#include "core/error.h"

struct Ops;

typedef struct LatentCache {
    const struct Ops *ops;    /* backend holding data */
    int n_layers, row;        /* row = kv_lora_rank + qk_rope_head_dim floats */
    int block_tokens;
    int n_blocks;
    float *data;              /* [n_blocks][n_layers][block_tokens][row], backend memory */
    int *refcount;            /* [n_blocks] */
    int *free_list;           /* stack of free block ids */
    int n_free;
    int n_reserved;           /* blocks promised to callers and not yet allocated */
} LatentCache;

typedef struct CacheSeq {
    int *blocks;              /* [cap] block ids */
    int n_blocks, cap;
    int len;                  /* positions written (0..len-1) */
} CacheSeq;

/* A pool holding at least token_budget positions (rounded up to whole blocks), in host
 * memory (ops_cpu()). Error (not abort) when the budget is < one block or the memory
 * cannot be had. */
LatentCache *latent_cache_create(int n_layers, int row, int block_tokens, long token_budget,
                                 CrError *e);
/* The same in the memory of `ops` (ops_cpu() gives latent_cache_create). Another
 * backend's allocator aborts with its own message when the memory cannot be had. */
LatentCache *latent_cache_create_ops(const struct Ops *ops, int n_layers, int row, int block_tokens,
                                     long token_budget, CrError *e);
void latent_cache_free(LatentCache *c);

/* Blocks needed to hold positions [0, n_tokens). */
static inline int cache_blocks_for(const LatentCache *c, long n_tokens) {
    return (int)((n_tokens + c->block_tokens - 1) / c->block_tokens);
}
/* Reserve n blocks: 0, or -1 if n_free - n_reserved < n (nothing changes). */
int cache_reserve(LatentCache *c, int n);
/* Return n unused reserved blocks. */
void cache_unreserve(LatentCache *c, int n);

/* Make position `pos` (== s->len or < s->len) writable in s: allocate a block from the
 * reservation when pos starts a new block, or copy a shared block. *reserved is the
 * caller's remaining reservation for this sequence and is decremented per allocation. */
void cache_seq_prepare_write(LatentCache *c, CacheSeq *s, int pos, int *reserved);
/* Pointer to the row of layer l at position pos (pos < blocks * block_tokens). */
static inline float *cache_row(const LatentCache *c, const CacheSeq *s, int l, int pos) {
    int b = s->blocks[pos / c->block_tokens];
    return c->data + (((size_t)b * c->n_layers + l) * c->block_tokens + pos % c->block_tokens) *
                         (size_t)c->row;
}
/* dst becomes a second reference to src's blocks (dst must be empty). */
void cache_seq_fork(LatentCache *c, CacheSeq *dst, const CacheSeq *src);
/* Drop all blocks (refcounts decremented; blocks reaching 0 return to the pool). */
void cache_seq_release(LatentCache *c, CacheSeq *s);

#endif
