/* data/bpe_train.c — see bpe_train.h */
#include "data/bpe_train.h"
#include "core/alloc.h"
#include "core/file.h"
#include "data/byte_level.h"
#include "data/pretokenizer.h"
#include "data/str_map.h"
#include "data/tokenizer.h"
#include "data/utf8.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const DEEPSEEK_SPECIAL_TOKENS[DEEPSEEK_N_SPECIAL] = {
    "<\xEF\xBD\x9C" "begin\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
    "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>",
    "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>",
    "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>",
};

/* ---- DeepSeek's pre-tokenizer (spec §10.2), from code points ------------------------ */

typedef struct CpRange { uint32_t lo, hi; } CpRange;

/* <LETTERS>: 2,729 cased letters. */
static const CpRange LETTERS[] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xB5, 0xB5}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x1BA}, {0x1BC, 0x1BF},
    {0x1C4, 0x293}, {0x295, 0x2AF}, {0x370, 0x373}, {0x376, 0x377}, {0x37B, 0x37D}, {0x37F, 0x37F},
    {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481},
    {0x48A, 0x52F}, {0x531, 0x556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD}, {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15}, {0x1F18, 0x1F1D},
    {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D},
    {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC},
    {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC}, {0x2102, 0x2102},
    {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126},
    {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149},
    {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3},
    {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E}, {0xAB70, 0xABBF},
    {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F},
    {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF},
    {0x1E900, 0x1E943},
};
static const CpRange PUNCT[] = {{0x21, 0x2F}, {0x3A, 0x7E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002}};
static const CpRange CJK[] = {{0x4E00, 0x9FA5}, {0x800, 0x4E00}, {0xAC00, 0xD7FF}};

/* "prefix[ranges]suffix" with the ranges as literal UTF-8 glyphs, as DeepSeek writes them. */
static char *class_regex(const char *prefix, const CpRange *r, size_t n, const char *suffix) {
    size_t cap = strlen(prefix) + strlen(suffix) + n * 9 + 4, o = 0;
    char *s = cr_malloc(cap);
    o += (size_t)sprintf(s, "%s[", prefix);
    for (size_t i = 0; i < n; i++) {
        o += (size_t)utf8_encode(r[i].lo, s + o);
        if (r[i].hi != r[i].lo) {
            s[o++] = '-';
            o += (size_t)utf8_encode(r[i].hi, s + o);
        }
    }
    o += (size_t)sprintf(s + o, "]%s", suffix);
    return s;
}

static cJSON *split_json(const char *regex) {
    cJSON *o = cJSON_CreateObject(), *p = cJSON_CreateObject();
    if (!o || !p) CR_DIE("cJSON: out of memory");
    cJSON_AddStringToObject(o, "type", "Split");
    cJSON_AddStringToObject(p, "Regex", regex);
    cJSON_AddItemToObject(o, "pattern", p);
    cJSON_AddStringToObject(o, "behavior", "Isolated");
    cJSON_AddBoolToObject(o, "invert", 0);
    return o;
}

cJSON *deepseek_pretokenizer_json(void) {
    cJSON *seq = cJSON_CreateObject(), *list = cJSON_CreateArray();
    if (!seq || !list) CR_DIE("cJSON: out of memory");
    cJSON_AddStringToObject(seq, "type", "Sequence");
    cJSON_AddItemToObject(seq, "pretokenizers", list);
    char *letters = class_regex("\\s?", LETTERS, sizeof LETTERS / sizeof *LETTERS, "+");
    char *punct = class_regex("\\s?", PUNCT, sizeof PUNCT / sizeof *PUNCT, "+");
    char *cjk = class_regex("", CJK, sizeof CJK / sizeof *CJK, "+");
    cJSON_AddItemToArray(list, split_json("[\r\n]"));
    cJSON_AddItemToArray(list, split_json(letters));
    cJSON_AddItemToArray(list, split_json(punct));
    cJSON_AddItemToArray(list, split_json("\\s+$"));
    cJSON_AddItemToArray(list, split_json(cjk));
    free(letters);
    free(punct);
    free(cjk);
    cJSON *d = cJSON_CreateObject(), *b = cJSON_CreateObject();
    if (!d || !b) CR_DIE("cJSON: out of memory");
    cJSON_AddStringToObject(d, "type", "Digits");
    cJSON_AddBoolToObject(d, "individual_digits", 1);
    cJSON_AddItemToArray(list, d);
    cJSON_AddStringToObject(b, "type", "ByteLevel");
    cJSON_AddBoolToObject(b, "add_prefix_space", 0);
    cJSON_AddBoolToObject(b, "trim_offsets", 1);
    cJSON_AddBoolToObject(b, "use_regex", 0);
    cJSON_AddItemToArray(list, b);
    return seq;
}

/* ---- word counting ------------------------------------------------------------------ */

typedef struct Counter {
    PreTokenizer *pre;
    PreTokScratch scratch;
    PreTokPieces pieces;
    StrMap words;        /* word bytes -> index */
    int64_t *counts;
    size_t n_words, cap;
    size_t n_bytes;
} Counter;

static void count_word(Counter *c, const char *w, size_t n) {
    if (n == 0) return;
    int32_t k = str_map_get(&c->words, w, n);
    if (k < 0) {
        if (c->n_words == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 1024;
            c->counts = cr_realloc(c->counts, c->cap * sizeof(int64_t));
        }
        CR_CHECK(c->n_words < INT32_MAX);
        k = (int32_t)c->n_words++;
        c->counts[k] = 0;
        str_map_put(&c->words, w, n, k);
    }
    c->counts[k]++;
}

/* Same segmentation as tokenizer_encode: valid UTF-8 runs through the pre-tokenizer,
 * stray bytes alone. */
static int count_plain(Counter *c, const char *text, size_t len, CrError *e) {
    const unsigned char *u = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        size_t run = i;
        while (run < len) {
            if (u[run] < 0x80) { run++; continue; }
            uint32_t cp;
            int k = utf8_decode(u + run, len - run, &cp);
            if (!k) break;
            run += (size_t)k;
        }
        if (run > i) {
            c->pieces.n = 0;
            if (pretok_run(c->pre, text + i, run - i, 0, &c->pieces, &c->scratch, e)) return -1;
            for (size_t k = 0; k < c->pieces.n; k++) count_word(c, text + i + c->pieces.v[k].off, c->pieces.v[k].len);
        }
        if (run < len) count_word(c, text + run, 1);
        i = run + (run < len);
    }
    return 0;
}

static int count_text(Counter *c, const char *text, size_t len, CrError *e) {
    c->n_bytes += len;
    size_t start = 0, i = 0;
    while (i < len) {
        int hit = -1;
        if (text[i] == '<')
            for (int s = 0; s < DEEPSEEK_N_SPECIAL; s++) {
                size_t l = strlen(DEEPSEEK_SPECIAL_TOKENS[s]);
                if (l <= len - i && !memcmp(text + i, DEEPSEEK_SPECIAL_TOKENS[s], l)) { hit = s; break; }
            }
        if (hit < 0) { i++; continue; }
        if (count_plain(c, text + start, i - start, e)) return -1;
        i += strlen(DEEPSEEK_SPECIAL_TOKENS[hit]);
        start = i;
    }
    return count_plain(c, text + start, len - start, e);
}

/* ---- merge learning ------------------------------------------------------------------ */

typedef struct Pair {
    int32_t a, b;
    int64_t count;
    int32_t *occ;      /* words that contained the pair when it was counted (may be stale) */
    int32_t n_occ, cap_occ;
} Pair;

typedef struct PairTab {
    uint64_t *keys;    /* (a << 32 | b) + 1, 0 = empty */
    int32_t *idx;
    size_t cap;
    Pair *v;
    size_t n, vcap;
} PairTab;

static size_t ph(uint64_t k, size_t cap) { return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1); }

static Pair *pair_get(PairTab *t, int32_t a, int32_t b, int create) {
    uint64_t key = (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
    size_t j = ph(key, t->cap);
    while (t->keys[j]) {
        if (t->keys[j] == key) return &t->v[t->idx[j]];
        j = (j + 1) & (t->cap - 1);
    }
    if (!create) return NULL;
    if (t->n == t->vcap) {
        t->vcap = t->vcap ? t->vcap * 2 : 4096;
        t->v = cr_realloc(t->v, t->vcap * sizeof(Pair));
    }
    t->keys[j] = key;
    t->idx[j] = (int32_t)t->n;
    t->v[t->n] = (Pair){a, b, 0, NULL, 0, 0};
    Pair *p = &t->v[t->n++];
    if (t->n * 2 > t->cap) {
        size_t nc = t->cap * 2;
        uint64_t *nk = cr_calloc(nc, sizeof(uint64_t));
        int32_t *ni = cr_malloc(nc * sizeof(int32_t));
        for (size_t i = 0; i < t->cap; i++) {
            if (!t->keys[i]) continue;
            size_t q = ph(t->keys[i], nc);
            while (nk[q]) q = (q + 1) & (nc - 1);
            nk[q] = t->keys[i];
            ni[q] = t->idx[i];
        }
        free(t->keys);
        free(t->idx);
        t->keys = nk;
        t->idx = ni;
        t->cap = nc;
    }
    return p;
}

/* Max-heap of (count, pair index); ties go to the smaller (a, b). Entries are lazy:
 * a popped entry whose count is stale is pushed back with the current count. */
typedef struct HeapEnt { int64_t count; int32_t pair; } HeapEnt;
typedef struct Heap { HeapEnt *v; size_t n, cap; } Heap;

static int heap_less(const PairTab *t, HeapEnt x, HeapEnt y) { /* x ranks below y */
    if (x.count != y.count) return x.count < y.count;
    const Pair *px = &t->v[x.pair], *py = &t->v[y.pair];
    if (px->a != py->a) return px->a > py->a;
    return px->b > py->b;
}

static void heap_push(Heap *h, const PairTab *t, HeapEnt e) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 4096;
        h->v = cr_realloc(h->v, h->cap * sizeof(HeapEnt));
    }
    size_t i = h->n++;
    while (i > 0 && heap_less(t, h->v[(i - 1) / 2], e)) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = e;
}

static HeapEnt heap_pop(Heap *h, const PairTab *t) {
    HeapEnt top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && heap_less(t, h->v[c], h->v[c + 1])) c++;
        if (!heap_less(t, last, h->v[c])) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct Word {
    int32_t *s;
    int32_t n;
    int64_t count;
} Word;

static void add_pairs(PairTab *t, Word *w, int32_t wi, int64_t sign, Heap *h, int track) {
    for (int32_t i = 0; i + 1 < w->n; i++) {
        Pair *p = pair_get(t, w->s[i], w->s[i + 1], 1);
        p->count += sign * w->count;
        if (sign > 0 && track) {
            if (p->n_occ == 0 || p->occ[p->n_occ - 1] != wi) {
                if (p->n_occ == p->cap_occ) {
                    p->cap_occ = p->cap_occ ? p->cap_occ * 2 : 4;
                    p->occ = cr_realloc(p->occ, (size_t)p->cap_occ * sizeof(int32_t));
                }
                p->occ[p->n_occ++] = wi;
            }
            if (h) heap_push(h, t, (HeapEnt){p->count, (int32_t)(p - t->v)});
        }
    }
}

static char *alphabet(const unsigned char *b, size_t n) {
    char *s = cr_malloc(2 * n + 1);
    byte_level_from_bytes(b, n, s);
    return s;
}

static char *train_counted(Counter *c, int vocab_size, BpeTrainStats *stats, CrError *e) {
    int target = vocab_size - DEEPSEEK_N_SPECIAL;
    if (target < 257)
        return cr_error_set(e, "--vocab-size %d: must be at least %d (256 byte tokens + 1 merge + %d special tokens)",
                            vocab_size, 256 + 1 + DEEPSEEK_N_SPECIAL, DEEPSEEK_N_SPECIAL), NULL;
    /* words as byte-id sequences */
    size_t nw = c->n_words;
    Word *words = cr_calloc(nw ? nw : 1, sizeof(Word));
    for (size_t i = 0; i < c->words.cap; i++) {
        const StrMapSlot *s = &c->words.slots[i];
        if (!s->hash) continue;
        Word *w = &words[s->value];
        w->n = (int32_t)s->key_len;
        w->s = cr_malloc(sizeof(int32_t) * s->key_len);
        const unsigned char *k = (const unsigned char *)str_map_key(&c->words, s);
        for (uint32_t j = 0; j < s->key_len; j++) w->s[j] = k[j];
        w->count = c->counts[s->value];
    }
    /* token table: bytes of every id */
    int cap_tok = target;
    unsigned char **tb = cr_calloc((size_t)cap_tok, sizeof(char *));
    size_t *tl = cr_calloc((size_t)cap_tok, sizeof(size_t));
    StrMap tok_ids;
    str_map_init(&tok_ids, (size_t)target);
    for (int b = 0; b < 256; b++) {
        tb[b] = cr_malloc(1);
        tb[b][0] = (unsigned char)b;
        tl[b] = 1;
        str_map_put(&tok_ids, tb[b], 1, b);
    }
    int n_tok = 256;
    int32_t (*merges)[2] = cr_malloc(sizeof(int32_t[2]) * (size_t)(target + 1));
    int n_merges = 0;

    PairTab pt = {0};
    pt.cap = 1 << 16;
    pt.keys = cr_calloc(pt.cap, sizeof(uint64_t));
    pt.idx = cr_malloc(pt.cap * sizeof(int32_t));
    Heap heap = {0};
    for (size_t i = 0; i < nw; i++) add_pairs(&pt, &words[i], (int32_t)i, +1, NULL, 1);
    for (size_t i = 0; i < pt.n; i++) heap_push(&heap, &pt, (HeapEnt){pt.v[i].count, (int32_t)i});
    uint32_t *stamp = cr_calloc(nw ? nw : 1, sizeof(uint32_t));
    uint32_t round = 0;
    while (n_tok < target && heap.n) {
        HeapEnt top = heap_pop(&heap, &pt);
        Pair *p = &pt.v[top.pair];
        if (top.count != p->count) {           /* stale */
            if (p->count > 0) heap_push(&heap, &pt, (HeapEnt){p->count, top.pair});
            continue;
        }
        if (p->count < 2) break;
        int32_t a = p->a, b = p->b;
        size_t nl = tl[a] + tl[b];
        unsigned char *nb = cr_malloc(nl);
        memcpy(nb, tb[a], tl[a]);
        memcpy(nb + tl[a], tb[b], tl[b]);
        int32_t nid = str_map_get(&tok_ids, nb, nl);
        if (nid < 0) {
            nid = n_tok++;
            tb[nid] = nb;
            tl[nid] = nl;
            str_map_put(&tok_ids, nb, nl, nid);
        } else {
            free(nb);
        }
        merges[n_merges][0] = a;
        merges[n_merges][1] = b;
        n_merges++;
        /* rewrite every word that had (a, b): remove its pairs, merge, add them back */
        round++;
        int32_t n_occ = p->n_occ;
        int32_t *occ = p->occ;
        p->occ = NULL;
        p->n_occ = p->cap_occ = 0;
        for (int32_t k = 0; k < n_occ; k++) {
            int32_t wi = occ[k];
            if (stamp[wi] == round) continue;
            stamp[wi] = round;
            Word *w = &words[wi];
            int has = 0;
            for (int32_t i = 0; i + 1 < w->n && !has; i++) has = w->s[i] == a && w->s[i + 1] == b;
            if (!has) continue;
            add_pairs(&pt, w, wi, -1, NULL, 0);
            int32_t o = 0;
            for (int32_t i = 0; i < w->n; i++) {
                if (i + 1 < w->n && w->s[i] == a && w->s[i + 1] == b) { w->s[o++] = nid; i++; }
                else w->s[o++] = w->s[i];
            }
            w->n = o;
            add_pairs(&pt, w, wi, +1, &heap, 1);
        }
        free(occ);
        p = &pt.v[top.pair];
        p->count = 0;   /* no (a, b) left anywhere */
    }

    /* ---- tokenizer.json ---- */
    cJSON *root = cJSON_CreateObject();
    if (!root) CR_DIE("cJSON: out of memory");
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int s = 0; s < DEEPSEEK_N_SPECIAL; s++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", n_tok + s);
        cJSON_AddStringToObject(o, "content", DEEPSEEK_SPECIAL_TOKENS[s]);
        cJSON_AddBoolToObject(o, "single_word", 0);
        cJSON_AddBoolToObject(o, "lstrip", 0);
        cJSON_AddBoolToObject(o, "rstrip", 0);
        cJSON_AddBoolToObject(o, "normalized", 0);
        cJSON_AddBoolToObject(o, "special", 1);
        cJSON_AddItemToArray(added, o);
    }
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(norm, "type", "Sequence");
    cJSON_AddArrayToObject(norm, "normalizers");
    cJSON_AddItemToObject(root, "pre_tokenizer", deepseek_pretokenizer_json());
    cJSON_AddNullToObject(root, "post_processor");
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "ByteLevel");
    cJSON_AddBoolToObject(dec, "add_prefix_space", 1);
    cJSON_AddBoolToObject(dec, "trim_offsets", 1);
    cJSON_AddBoolToObject(dec, "use_regex", 1);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddNullToObject(model, "unk_token");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 0);
    cJSON_AddBoolToObject(model, "byte_fallback", 0);
    cJSON_AddBoolToObject(model, "ignore_merges", 0);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int i = 0; i < n_tok; i++) {
        char *s = alphabet(tb[i], tl[i]);
        cJSON_AddNumberToObject(vocab, s, i);
        free(s);
    }
    cJSON *ml = cJSON_AddArrayToObject(model, "merges");
    for (int i = 0; i < n_merges; i++) {
        char *l = alphabet(tb[merges[i][0]], tl[merges[i][0]]), *r = alphabet(tb[merges[i][1]], tl[merges[i][1]]);
        const char *pair[2] = {l, r};
        cJSON_AddItemToArray(ml, cJSON_CreateStringArray(pair, 2));
        free(l);
        free(r);
    }
    char *json = cJSON_PrintUnformatted(root);
    if (!json) CR_DIE("cJSON_Print: out of memory");
    cJSON_Delete(root);
    if (stats) {
        stats->vocab_size = n_tok + DEEPSEEK_N_SPECIAL;
        stats->n_merges = n_merges;
        stats->n_words = nw;
        stats->n_bytes = c->n_bytes;
    }

    for (size_t i = 0; i < nw; i++) free(words[i].s);
    free(words);
    for (int i = 0; i < n_tok; i++) free(tb[i]);
    free(tb);
    free(tl);
    str_map_free(&tok_ids);
    free(merges);
    for (size_t i = 0; i < pt.n; i++) free(pt.v[i].occ);
    free(pt.v);
    free(pt.keys);
    free(pt.idx);
    free(heap.v);
    free(stamp);
    return json;
}

static int counter_init(Counter *c, CrError *e) {
    memset(c, 0, sizeof *c);
    cJSON *pj = deepseek_pretokenizer_json();
    c->pre = pretok_from_json(pj, e);
    cJSON_Delete(pj);
    if (!c->pre) return -1;
    str_map_init(&c->words, 1 << 14);
    return 0;
}

static void counter_free(Counter *c) {
    pretok_free(c->pre);
    pretok_scratch_free(&c->scratch);
    free(c->pieces.v);
    str_map_free(&c->words);
    free(c->counts);
}

char *bpe_train_text(const char *text, size_t len, int vocab_size, BpeTrainStats *stats, CrError *e) {
    Counter c;
    if (counter_init(&c, e)) return NULL;
    char *json = count_text(&c, text, len, e) ? NULL : train_counted(&c, vocab_size, stats, e);
    counter_free(&c);
    return json;
}

int bpe_train_files(const char *const *paths, int n_paths, int vocab_size, const char *out_path,
                    BpeTrainStats *stats, CrError *e) {
    if (n_paths < 1) return cr_error_set(e, "no corpus files given");
    Counter c;
    if (counter_init(&c, e)) return -1;
    for (int i = 0; i < n_paths; i++) {
        size_t len;
        char *text = cr_read_file(paths[i], &len, e);
        if (!text || count_text(&c, text, len, e)) {
            if (text) cr_error_prefix(e, "%s", paths[i]);
            free(text);
            counter_free(&c);
            return -1;
        }
        free(text);
    }
    char *json = train_counted(&c, vocab_size, stats, e);
    counter_free(&c);
    if (!json) return -1;
    int rc = cr_write_file_atomic(out_path, json, strlen(json), e);
    free(json);
    return rc;
}

int tokenizer_train(const char *const *corpus_paths, int n_paths, int vocab_size, const char *out_path, CrError *e) {
    return bpe_train_files(corpus_paths, n_paths, vocab_size, out_path, NULL, e);
}
