/* rollout/kv_cache.c — see kv_cache.h */
#include "rollout/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "model/ops.h"

LatentCache *latent_cache_create(int n_layers, int row, int block_tokens, long token_budget,
                                 CrError *e) {
    return latent_cache_create_ops(ops_cpu(), n_layers, row, block_tokens, token_budget, e);
}

/* Host memory stays plain malloc (an out-of-memory is an error, not an abort). */
static int on_host(const Ops *ops) { return ops == ops_cpu(); }

LatentCache *latent_cache_create_ops(const Ops *ops, int n_layers, int row, int block_tokens,
                                     long token_budget, CrError *e) {
    if (n_layers <= 0 || row <= 0 || block_tokens <= 0) {
        cr_error_set(e, "latent cache: bad shape (layers %d, row %d, block %d)", n_layers, row,
                     block_tokens);
        return NULL;
    }
    if (token_budget < block_tokens) {
        cr_error_set(e, "latent cache: token budget %ld is smaller than one block (%d tokens)",
                     token_budget, block_tokens);
        return NULL;
    }
    long nb = (token_budget + block_tokens - 1) / block_tokens;
    size_t per_block = (size_t)n_layers * block_tokens * row;
    if (nb > (1L << 30) || (double)nb * per_block * sizeof(float) > 1e12) {
        cr_error_set(e, "latent cache: token budget %ld needs %.1f GB", token_budget,
                     (double)nb * per_block * sizeof(float) / 1e9);
        return NULL;
    }
    size_t bytes = (size_t)nb * per_block * sizeof(float);
    float *data = on_host(ops) ? malloc(bytes) : ops->alloc(bytes);
    if (!data) {
        cr_error_set(e, "latent cache: cannot allocate %.1f MB for %ld tokens",
                     (double)nb * per_block * sizeof(float) / 1e6, token_budget);
        return NULL;
    }
    LatentCache *c = cr_calloc(1, sizeof *c);
    c->ops = ops;
    c->n_layers = n_layers;
    c->row = row;
    c->block_tokens = block_tokens;
    c->n_blocks = (int)nb;
    c->data = data;
    c->refcount = cr_calloc((size_t)nb, sizeof *c->refcount);
    c->free_list = cr_malloc((size_t)nb * sizeof *c->free_list);
    /* Pop order 0, 1, 2, ... (stack top is the end). */
    for (int i = 0; i < c->n_blocks; i++) c->free_list[i] = c->n_blocks - 1 - i;
    c->n_free = c->n_blocks;
    return c;
}

void latent_cache_free(LatentCache *c) {
    if (!c) return;
    if (on_host(c->ops))
        free(c->data);
    else
        c->ops->free(c->data);
    free(c->refcount);
    free(c->free_list);
    free(c);
}

int cache_reserve(LatentCache *c, int n) {
    if (n < 0 || c->n_free - c->n_reserved < n) return -1;
    c->n_reserved += n;
    return 0;
}

void cache_unreserve(LatentCache *c, int n) {
    CR_CHECK(n >= 0 && n <= c->n_reserved);
    c->n_reserved -= n;
}

static int alloc_block(LatentCache *c, int *reserved) {
    CR_CHECK(*reserved > 0 && c->n_reserved > 0 && c->n_free > 0);
    (*reserved)--;
    c->n_reserved--;
    int b = c->free_list[--c->n_free];
    c->refcount[b] = 1;
    return b;
}

static void drop_block(LatentCache *c, int b) {
    CR_CHECK(c->refcount[b] > 0);
    if (--c->refcount[b] == 0) c->free_list[c->n_free++] = b;
}

void cache_seq_prepare_write(LatentCache *c, CacheSeq *s, int pos, int *reserved) {
    int bi = pos / c->block_tokens;
    CR_CHECK(bi <= s->n_blocks);
    if (bi == s->n_blocks) {
        if (s->n_blocks == s->cap) {
            s->cap = s->cap ? 2 * s->cap : 8;
            s->blocks = cr_realloc(s->blocks, (size_t)s->cap * sizeof *s->blocks);
        }
        s->blocks[s->n_blocks++] = alloc_block(c, reserved);
        return;
    }
    int b = s->blocks[bi];
    if (c->refcount[b] > 1) {  /* shared with another sequence: copy before writing */
        int nb = alloc_block(c, reserved);
        size_t per_block = (size_t)c->n_layers * c->block_tokens * c->row;
        c->ops->copy(c->data + (size_t)nb * per_block, c->data + (size_t)b * per_block,
                     per_block * sizeof(float));
        drop_block(c, b);
        s->blocks[bi] = nb;
    }
}

void cache_seq_fork(LatentCache *c, CacheSeq *dst, const CacheSeq *src) {
    CR_CHECK(dst->n_blocks == 0);
    if (dst->cap < src->n_blocks) {
        dst->cap = src->n_blocks > 8 ? src->n_blocks : 8;
        dst->blocks = cr_realloc(dst->blocks, (size_t)dst->cap * sizeof *dst->blocks);
    }
    for (int i = 0; i < src->n_blocks; i++) {
        dst->blocks[i] = src->blocks[i];
        c->refcount[src->blocks[i]]++;
    }
    dst->n_blocks = src->n_blocks;
    dst->len = src->len;
}

void cache_seq_release(LatentCache *c, CacheSeq *s) {
    for (int i = 0; i < s->n_blocks; i++) drop_block(c, s->blocks[i]);
    free(s->blocks);
    memset(s, 0, sizeof *s);
}
