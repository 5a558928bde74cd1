/* rollout/stop.h — stop strings matched on the decoded text of a growing completion.
 * Defines: StopText, stop_text_init, stop_text_append, stop_text_free.
 *
 * The text is the concatenation of each generated token's raw bytes (byte-level BPE
 * decodes token by token), so a stop string may begin in one token and end in a later
 * one. After each append only the window that can contain a new match is searched
 * (the last max_stop_len - 1 old bytes plus the new bytes). On a match the text is cut
 * just before the earliest occurrence and the caller stops the sample. */
#ifndef CRUCIBLE_ROLLOUT_STOP_H
#define CRUCIBLE_ROLLOUT_STOP_H

#include <stddef.h>

typedef struct StopText {
    char *buf;          /* NUL-terminated (the text may itself contain NUL bytes) */
    size_t len, cap;
    const char *const *stops;
    int n_stops;
    size_t max_stop_len;
} StopText;

/* stops[] must outlive st; empty stop strings are ignored. */
void stop_text_init(StopText *st, const char *const *stops, int n_stops);
/* Append bytes; returns 1 if a stop string now occurs (text cut before it), else 0. */
int stop_text_append(StopText *st, const char *bytes, size_t n);
void stop_text_free(StopText *st);

#endif
