/* sft/encode.c — see encode.h */
#include "sft/encode.h"
#include "core/alloc.h"
#include "core/rng.h"
#include "data/chat.h"
#include "data/sft_data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sft_encoded_free(SftEncoded *d) {
    for (int i = 0; i < d->n; i++) { free(d->ex[i].ids); free(d->ex[i].mask); }
    free(d->ex);
    d->ex = NULL;
    d->n = 0;
}

/* Split a document into prefix/middle/suffix at two UTF-8 boundaries drawn from rng. */
static int fim_split_encode(const Tokenizer *tok, const char *doc, CrRng *rng, TokenSeq *out, CrError *e) {
    size_t len = strlen(doc);
    size_t a = len ? (size_t)(cr_rng_uniform(rng) * (double)(len + 1)) : 0;
    size_t b = len ? (size_t)(cr_rng_uniform(rng) * (double)(len + 1)) : 0;
    if (a > len) a = len;
    if (b > len) b = len;
    if (a > b) { size_t t = a; a = b; b = t; }
    while (a > 0 && a < len && ((unsigned char)doc[a] & 0xC0) == 0x80) a--;
    while (b > a && b < len && ((unsigned char)doc[b] & 0xC0) == 0x80) b--;
    char *prefix = cr_malloc(a + 1), *middle = cr_malloc(b - a + 1), *suffix = cr_malloc(len - b + 1);
    memcpy(prefix, doc, a); prefix[a] = 0;
    memcpy(middle, doc + a, b - a); middle[b - a] = 0;
    memcpy(suffix, doc + b, len - b); suffix[len - b] = 0;
    int rc = fim_encode(tok, prefix, suffix, middle, out, e);
    free(prefix); free(middle); free(suffix);
    return rc;
}

int sft_encode_file(const char *path, const Tokenizer *tok, double fim_rate, long seed, long max_seq_len,
                    SftEncoded *out, CrError *e) {
    SftExample *ex;
    int n;
    if (sft_load(path, &ex, &n, e)) return -1;
    out->ex = cr_calloc((size_t)n, sizeof *out->ex);
    out->n = 0;
    long truncated = 0;
    for (int i = 0; i < n; i++) {
        TokenSeq s;
        int rc;
        CrRng rng;
        cr_rng_init(&rng, (uint64_t)seed, 0x46494dULL /* "FIM" */, (uint64_t)i);
        /* FIM turns plain documents (prompt/completion with an empty prompt) into PSM
         * infilling examples at fim_rate; chat examples are never transformed. */
        if (fim_rate > 0 && ex[i].completion && ex[i].prompt && !ex[i].prompt[0] &&
            cr_rng_uniform(&rng) < fim_rate)
            rc = fim_split_encode(tok, ex[i].completion, &rng, &s, e);
        else
            rc = sft_example_encode(tok, &ex[i], &s, e);
        if (rc) {
            cr_error_prefix(e, "%s:%d", path, ex[i].line);
            sft_free(ex, n);
            sft_encoded_free(out);
            return -1;
        }
        if (s.n > max_seq_len) { s.n = (int)max_seq_len; truncated++; }
        out->ex[out->n].ids = s.ids;
        out->ex[out->n].mask = s.loss;
        out->ex[out->n].n = s.n;
        out->n++;
    }
    sft_free(ex, n);
    if (truncated) fprintf(stderr, "sft: %s: %ld examples truncated to --max-seq-len %ld\n", path, truncated, max_seq_len);
    return 0;
}

