/* data/utf8.c — see utf8.h */
#include "data/utf8.h"
#include "core/alloc.h"

#include <string.h>

/* Allowed range of the second byte for each lead byte (Unicode Table 3-7); the
 * remaining continuation bytes are always 80..BF. */
static int second_range(unsigned char b0, unsigned char *lo, unsigned char *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (b0 >= 0xC2 && b0 <= 0xDF) return 2;
    if (b0 == 0xE0) { *lo = 0xA0; return 3; }
    if (b0 >= 0xE1 && b0 <= 0xEC) return 3;
    if (b0 == 0xED) { *hi = 0x9F; return 3; }
    if (b0 >= 0xEE && b0 <= 0xEF) return 3;
    if (b0 == 0xF0) { *lo = 0x90; return 4; }
    if (b0 >= 0xF1 && b0 <= 0xF3) return 4;
    if (b0 == 0xF4) { *hi = 0x8F; return 4; }
    return 0;
}

int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    unsigned char b0 = s[0];
    if (b0 < 0x80) { *cp = b0; return 1; }
    unsigned char lo, hi;
    int len = second_range(b0, &lo, &hi);
    if (len == 0 || (size_t)len > n) return 0;
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    uint32_t c = b0 & (0x7F >> len);
    for (int i = 1; i < len; i++) c = (c << 6) | (s[i] & 0x3F);
    *cp = c;
    return len;
}

int utf8_encode(uint32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = (unsigned char)(0xC0 | (cp >> 6)); o[1] = (unsigned char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | (cp >> 12));
        o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | (cp >> 18));
    o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

int utf8_invalid_len(const unsigned char *s, size_t n) {
    uint32_t cp;
    if (n == 0 || utf8_decode(s, n, &cp)) return 0;
    unsigned char lo, hi;
    int len = second_range(s[0], &lo, &hi);
    if (len == 0) return 1;                       /* not a lead byte at all */
    /* a valid prefix of a sequence that is cut short or broken later */
    if (n < 2 || s[1] < lo || s[1] > hi) return 1;
    int k = 2;
    while (k < len && (size_t)k < n && (s[k] & 0xC0) == 0x80) k++;
    return k;
}

char *utf8_sanitize(const char *bytes, size_t len, size_t *out_len) {
    const unsigned char *s = (const unsigned char *)bytes;
    /* worst case: every byte becomes 3 bytes */
    char *out = cr_malloc(len * 3 + 1);
    size_t o = 0, i = 0;
    while (i < len) {
        if (s[i] < 0x80) { out[o++] = (char)s[i++]; continue; }
        uint32_t cp;
        int k = utf8_decode(s + i, len - i, &cp);
        if (k) {
            memcpy(out + o, s + i, (size_t)k);
            o += (size_t)k;
            i += (size_t)k;
        } else {
            memcpy(out + o, "\xEF\xBF\xBD", 3);
            o += 3;
            i += (size_t)utf8_invalid_len(s + i, len - i);
        }
    }
    out[o] = 0;
    if (out_len) *out_len = o;
    return out;
}
