/* data/str_map.h — byte-string -> int32 hash map (open addressing) for vocabularies.
 * Defines: StrMap, str_map_init, str_map_free, str_map_put, str_map_get, str_hash.
 *
 * Keys are copied into an arena the map owns; lookups never allocate. The map is
 * not thread-safe for writers, but concurrent str_map_get calls are fine. */
#ifndef CRUCIBLE_DATA_STR_MAP_H
#define CRUCIBLE_DATA_STR_MAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct StrMapSlot {
    uint64_t hash;     /* 0 = empty */
    uint32_t key_off;  /* into arena */
    uint32_t key_len;
    int32_t value;
} StrMapSlot;

typedef struct StrMap {
    StrMapSlot *slots;
    size_t cap, n;     /* cap is a power of two */
    char *arena;
    size_t arena_len, arena_cap;
} StrMap;

void str_map_init(StrMap *m, size_t expected);
void str_map_free(StrMap *m);
uint64_t str_hash(const void *key, size_t len);
/* Insert or overwrite. Returns 1 if the key was new, 0 if it replaced a value. */
int str_map_put(StrMap *m, const void *key, size_t len, int32_t value);
/* Returns the value, or -1 when absent. */
int32_t str_map_get(const StrMap *m, const void *key, size_t len);
/* Key bytes of a slot (for iteration over slots with hash != 0). */
static inline const char *str_map_key(const StrMap *m, const StrMapSlot *s) { return m->arena + s->key_off; }

#endif
