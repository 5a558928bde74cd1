/* rollout/stop.c — see stop.h */
#include "rollout/stop.h"

#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

void stop_text_init(StopText *st, const char *const *stops, int n_stops) {
    memset(st, 0, sizeof *st);
    st->cap = 64;
    st->buf = cr_malloc(st->cap);
    st->buf[0] = 0;
    st->stops = stops;
    st->n_stops = n_stops;
    for (int i = 0; i < n_stops; i++) {
        size_t l = strlen(stops[i]);
        if (l > st->max_stop_len) st->max_stop_len = l;
    }
}

int stop_text_append(StopText *st, const char *bytes, size_t n) {
    if (st->len + n + 1 > st->cap) {
        while (st->len + n + 1 > st->cap) st->cap *= 2;
        st->buf = cr_realloc(st->buf, st->cap);
    }
    size_t old = st->len;
    memcpy(st->buf + old, bytes, n);
    st->len += n;
    st->buf[st->len] = 0;
    if (n == 0 || st->max_stop_len == 0) return 0;
    /* A new match must end inside the new bytes, so it starts at or after this. */
    size_t from = old > st->max_stop_len - 1 ? old - (st->max_stop_len - 1) : 0;
    size_t best = (size_t)-1;
    for (int i = 0; i < st->n_stops; i++) {
        size_t l = strlen(st->stops[i]);
        if (l == 0) continue;
        const char *hit = memmem(st->buf + from, st->len - from, st->stops[i], l);
        if (hit && (size_t)(hit - st->buf) < best) best = (size_t)(hit - st->buf);
    }
    if (best == (size_t)-1) return 0;
    st->len = best;
    st->buf[best] = 0;
    return 1;
}

void stop_text_free(StopText *st) {
    free(st->buf);
    memset(st, 0, sizeof *st);
}
