/* data/str_map.c — see str_map.h */
#include "data/str_map.h"
#include "core/alloc.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a over 8-byte words then a final mix: fast for the short keys of a vocabulary. */
uint64_t str_hash(const void *key, size_t len) {
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325ull ^ (len * 0x9E3779B97F4A7C15ull);
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
        p += 8;
        len -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, len);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return h ? h : 1;
}

void str_map_init(StrMap *m, size_t expected) {
    size_t cap = 16;
    while (cap < expected * 2) cap <<= 1;
    m->slots = cr_calloc(cap, sizeof(StrMapSlot));
    m->cap = cap;
    m->n = 0;
    m->arena_cap = 256;
    m->arena = cr_malloc(m->arena_cap);
    m->arena_len = 0;
}

void str_map_free(StrMap *m) {
    free(m->slots);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

static void grow(StrMap *m) {
    size_t ncap = m->cap * 2;
    StrMapSlot *ns = cr_calloc(ncap, sizeof(StrMapSlot));
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].hash) continue;
        size_t j = m->slots[i].hash & (ncap - 1);
        while (ns[j].hash) j = (j + 1) & (ncap - 1);
        ns[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = ns;
    m->cap = ncap;
}

int str_map_put(StrMap *m, const void *key, size_t len, int32_t value) {
    CR_CHECK(len < UINT32_MAX);
    uint64_t h = str_hash(key, len);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].hash) {
        StrMapSlot *s = &m->slots[j];
        if (s->hash == h && s->key_len == len && !memcmp(m->arena + s->key_off, key, len)) {
            s->value = value;
            return 0;
        }
        j = (j + 1) & (m->cap - 1);
    }
    while (m->arena_len + len + 1 > m->arena_cap) m->arena_cap *= 2;
    m->arena = cr_realloc(m->arena, m->arena_cap);
    CR_CHECK(m->arena_len + len < UINT32_MAX);
    memcpy(m->arena + m->arena_len, key, len);
    m->arena[m->arena_len + len] = 0;
    m->slots[j] = (StrMapSlot){h, (uint32_t)m->arena_len, (uint32_t)len, value};
    m->arena_len += len + 1;
    if (++m->n * 2 > m->cap) grow(m);
    return 1;
}

int32_t str_map_get(const StrMap *m, const void *key, size_t len) {
    uint64_t h = str_hash(key, len);
    size_t j = h & (m->cap - 1);
    while (m->slots[j].hash) {
        const StrMapSlot *s = &m->slots[j];
        if (s->hash == h && s->key_len == len && !memcmp(m->arena + s->key_off, key, len)) return s->value;
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}
