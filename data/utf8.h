/* data/utf8.h — UTF-8 validation, decoding and lossy sanitising.
 * Defines: utf8_decode, utf8_encode, utf8_invalid_len, utf8_sanitize.
 *
 * "Valid" is RFC 3629 UTF-8: shortest form only, no surrogates (U+D800..DFFF),
 * nothing above U+10FFFF. */
#ifndef CRUCIBLE_DATA_UTF8_H
#define CRUCIBLE_DATA_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decode the code point at s[0..n). Returns its byte length (1..4) and stores it
 * in *cp, or returns 0 when s does not start with a valid sequence (n > 0). */
int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

/* Write cp (<= 0x10FFFF, not a surrogate) as UTF-8 into out (4 bytes room);
 * returns the byte count. */
int utf8_encode(uint32_t cp, char *out);

/* When s[0..n) does not start with a valid sequence: the length of the maximal
 * ill-formed subpart there (Unicode §3.9 / WHATWG: what one U+FFFD replaces;
 * 1..3). Returns 0 if s starts with a valid sequence. */
int utf8_invalid_len(const unsigned char *s, size_t n);

/* Copy of bytes[0..len) with every maximal ill-formed subpart replaced by U+FFFD
 * (EF BF BD) — the same result as Rust String::from_utf8_lossy and Python's
 * bytes.decode('utf-8', 'replace'), so the output is always valid UTF-8 (safe to
 * put in JSON). Malloc'd, NUL-terminated; *out_len (may be NULL) gets the length. */
char *utf8_sanitize(const char *bytes, size_t len, size_t *out_len);

#endif
