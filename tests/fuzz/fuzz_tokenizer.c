/* tests/fuzz/fuzz_tokenizer.c — libFuzzer: (1) encode arbitrary bytes with a DeepSeek-
 * config and a GPT-2-config fixture tokenizer (neither has lstrip/rstrip tokens, which
 * swallow whitespace); decode must give the bytes back and the lossy copy must be valid
 * UTF-8; (2) tokenizer.json parsing of arbitrary input must fail cleanly or load.
 * The first byte picks the mode. Run from the repo root (make fuzz-run). */
#include "data/tokenizer.h"
#include "data/utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static Tokenizer *g_tok[2];  /* harness-owned, loaded once */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tok[0]) {
        CrError e;
        g_tok[0] = tokenizer_load("tests/fixtures/tokenizer/crucible_trained.json", &e);
        g_tok[1] = tokenizer_load("tests/fixtures/tokenizer/gpt2.json", &e);
        if (!g_tok[0] || !g_tok[1]) {
            fprintf(stderr, "fuzz_tokenizer: run from the repo root: %s\n", e.msg);
            abort();
        }
    }
    if (size == 0) return 0;
    const char *text = (const char *)data + 1;
    size_t len = size - 1;
    if (data[0] < 16) {  /* JSON parsing */
        CrError e;
        Tokenizer *t = tokenizer_load_json(text, len, "fuzz.json", &e);
        if (t) {
            int n;
            int32_t *ids = tokenizer_encode(t, "hello world", 11, 1, &n);
            free(ids);
            tokenizer_free(t);
        }
        return 0;
    }
    Tokenizer *t = g_tok[data[0] & 1];
    int n;
    int32_t *ids = tokenizer_encode(t, text, len, (data[0] >> 1) & 1, &n);
    size_t dl;
    char *d = tokenizer_decode(t, ids, n, &dl);
    if (dl != len || memcmp(d, text, len)) abort();
    size_t sl;
    char *s = utf8_sanitize(d, dl, &sl);
    for (size_t i = 0; i < sl;) {
        uint32_t cp;
        int k = utf8_decode((const unsigned char *)s + i, sl - i, &cp);
        if (!k) abort();
        i += (size_t)k;
    }
    free(s);
    free(d);
    free(ids);
    return 0;
}
