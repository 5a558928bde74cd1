/* data/byte_level.c — see byte_level.h */
#include "data/byte_level.h"
#include "data/utf8.h"

static int printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

/* The 68 non-printable bytes in order: 00-20 (33), 7F-A0 (34), AD (1). */
uint32_t byte_level_char(unsigned char b) {
    if (printable(b)) return b;
    if (b <= 0x20) return 256u + b;
    if (b <= 0xA0) return 256u + 33u + (b - 0x7Fu);
    return 256u + 67u;  /* 0xAD */
}

int byte_level_byte(uint32_t cp) {
    if (cp < 256) return printable(cp) ? (int)cp : -1;
    if (cp >= 256 + 68) return -1;
    unsigned k = cp - 256;
    if (k < 33) return (int)k;
    if (k < 67) return (int)(0x7F + (k - 33));
    return 0xAD;
}

long byte_level_to_bytes(const char *s, size_t len, unsigned char *out) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < len) {
        uint32_t cp;
        int k = utf8_decode(p + i, len - i, &cp);
        if (!k) return -1;
        int b = byte_level_byte(cp);
        if (b < 0) return -1;
        out[o++] = (unsigned char)b;
        i += (size_t)k;
    }
    return (long)o;
}

size_t byte_level_from_bytes(const unsigned char *b, size_t len, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) o += (size_t)utf8_encode(byte_level_char(b[i]), out + o);
    out[o] = 0;
    return o;
}
