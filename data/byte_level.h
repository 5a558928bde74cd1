/* data/byte_level.h — the GPT-2 byte <-> unicode alphabet of byte-level BPE.
 * Defines: byte_level_char, byte_level_byte, byte_level_to_bytes, byte_level_from_bytes.
 *
 * Bytes that are printable Latin-1 (21-7E, A1-AC, AE-FF) map to the same code
 * point; the other 68 bytes map, in byte order, to U+0100..U+0143 (so ' ' is 'Ġ'
 * U+0120 and '\n' is 'Ċ' U+010A). */
#ifndef CRUCIBLE_DATA_BYTE_LEVEL_H
#define CRUCIBLE_DATA_BYTE_LEVEL_H

#include <stddef.h>
#include <stdint.h>

/* Code point standing for byte b. */
uint32_t byte_level_char(unsigned char b);
/* Byte a code point stands for, or -1 if cp is not in the alphabet. */
int byte_level_byte(uint32_t cp);
/* Map a UTF-8 alphabet string back to raw bytes into out (room for len bytes).
 * Returns the byte count, or -1 if s is not entirely made of alphabet chars. */
long byte_level_to_bytes(const char *s, size_t len, unsigned char *out);
/* Map raw bytes to the alphabet string (UTF-8) into out (room for 2*len+1);
 * NUL-terminates; returns the length. */
size_t byte_level_from_bytes(const unsigned char *b, size_t len, char *out);

#endif
