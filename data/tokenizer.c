/* data/tokenizer.c — see tokenizer.h. Loading tokenizer.json, added-token
 * extraction, the encode pipeline with its per-call piece cache, and decode. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/tokenizer.h"
#include "core/alloc.h"
#include "core/file.h"
#include "data/bpe.h"
#include "data/byte_level.h"
#include "data/pretokenizer.h"
#include "data/str_map.h"
#include "data/utf8.h"

#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct AddedTok {
    char *content;
    size_t len;
    int32_t id;
    int special, lstrip, rstrip, single_word, normalized;
} AddedTok;

/* Candidates for one matching pass, bucketed by first byte, longest first. */
typedef struct AddedSet {
    int32_t *idx;        /* indexes into Tokenizer.added */
    int32_t start[257];  /* bucket b is idx[start[b] .. start[b+1]) */
    int n;
} AddedSet;

struct Tokenizer {
    Bpe bpe;
    PreTokenizer *pre;
    StrMap vocab;         /* tokenizer.json spelling -> id (model vocab and added tokens) */
    StrMap raw_vocab;     /* raw bytes -> id, only for ignore_merges */
    int ignore_merges;
    AddedTok *added;
    int n_added;
    AddedSet sets[2];     /* pass 0: normalized=false tokens, pass 1: normalized=true */
    pcre2_code *word_re;  /* \w for single_word checks (NULL if no token needs it) */
    uint32_t *dec_off, *dec_len;  /* decode table per id */
    char *dec_arena;
    size_t dec_arena_len;
    int vocab_size;
    int bos, eos, fim_pre, fim_suf, fim_mid;
};

/* ---- loading ------------------------------------------------------------------- */

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

static int opt_bool(const cJSON *o, const char *k, int dflt, const char *field, CrError *e) {
    const cJSON *v = get(o, k);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (!cJSON_IsBool(v)) return cr_error_set(e, "%s.%s: expected a boolean", field, k), -1;
    return cJSON_IsTrue(v);
}

static int json_id(const cJSON *v, int32_t *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d < 2147483647.0) || d != (double)(int64_t)d) return -1;
    *out = (int32_t)d;
    return 0;
}

static int load_model(Tokenizer *t, const cJSON *m, CrError *e) {
    if (!cJSON_IsObject(m)) return cr_error_set(e, "model: missing or not an object");
    const cJSON *type = get(m, "type");
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE")))
        return cr_error_set(e, "model.type: only \"BPE\" is supported (got %s)",
                            cJSON_IsString(type) ? type->valuestring : "a non-string");
    const cJSON *dropout = get(m, "dropout");
    if (dropout && !cJSON_IsNull(dropout) && !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0))
        return cr_error_set(e, "model.dropout: BPE dropout is not supported (encoding must be deterministic)");
    const char *str_fields[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        const cJSON *v = get(m, str_fields[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !*v->valuestring))
            return cr_error_set(e, "model.%s: not supported for byte-level BPE", str_fields[i]);
    }
    int bf = opt_bool(m, "byte_fallback", 0, "model", e);
    if (bf < 0) return -1;
    if (bf) return cr_error_set(e, "model.byte_fallback: true is not supported (not a byte-level BPE)");
    if ((t->ignore_merges = opt_bool(m, "ignore_merges", 0, "model", e)) < 0) return -1;
    if ((t->bpe.fuse_unk = opt_bool(m, "fuse_unk", 0, "model", e)) < 0) return -1;

    const cJSON *vocab = get(m, "vocab");
    if (!cJSON_IsObject(vocab)) return cr_error_set(e, "model.vocab: missing or not an object");
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab) {
        int32_t id;
        if (json_id(it, &id)) return cr_error_set(e, "model.vocab[\"%s\"]: id is not a non-negative integer", it->string);
        str_map_put(&t->vocab, it->string, strlen(it->string), id);
        if (id + 1 > t->vocab_size) t->vocab_size = id + 1;
    }
    for (int b = 0; b < 256; b++) {
        char s[8];
        int k = utf8_encode(byte_level_char((unsigned char)b), s);
        t->bpe.byte_id[b] = str_map_get(&t->vocab, s, (size_t)k);
    }
    const cJSON *unk = get(m, "unk_token");
    if (cJSON_IsString(unk)) {
        t->bpe.unk_id = str_map_get(&t->vocab, unk->valuestring, strlen(unk->valuestring));
        if (t->bpe.unk_id < 0) return cr_error_set(e, "model.unk_token: \"%s\" is not in the vocab", unk->valuestring);
    }

    const cJSON *merges = get(m, "merges");
    if (!cJSON_IsArray(merges)) return cr_error_set(e, "model.merges: missing or not an array");
    int rank = 0;
    size_t cap = 256;
    char *buf = cr_malloc(cap);
    cJSON_ArrayForEach(it, merges) {
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' ')) {
                free(buf);
                return cr_error_set(e, "model.merges[%d]: \"%s\" is not two tokens separated by one space", rank, s);
            }
            a = s; la = (size_t)(sp - s);
            b = sp + 1; lb = strlen(b);
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 && cJSON_IsString(it->child) &&
                   cJSON_IsString(it->child->next)) {
            a = it->child->valuestring; la = strlen(a);
            b = it->child->next->valuestring; lb = strlen(b);
        } else {
            free(buf);
            return cr_error_set(e, "model.merges[%d]: expected \"A B\" or [\"A\", \"B\"]", rank);
        }
        if (la + lb + 1 > cap) { cap = (la + lb + 1) * 2; buf = cr_realloc(buf, cap); }
        int32_t ia = str_map_get(&t->vocab, a, la), ib = str_map_get(&t->vocab, b, lb);
        memcpy(buf, a, la);
        memcpy(buf + la, b, lb);
        int32_t in = str_map_get(&t->vocab, buf, la + lb);
        if (ia < 0 || ib < 0 || in < 0) {
            buf[la + lb] = 0;
            int r = cr_error_set(e, "model.merges[%d]: token \"%s\" is not in the vocab", rank,
                                 ia < 0 ? (memcpy(buf, a, la), buf[la] = 0, buf) : ib < 0 ? b : buf);
            free(buf);
            return r;
        }
        bpe_add_merge(&t->bpe, ia, ib, rank, in);
        rank++;
    }
    free(buf);
    return 0;
}

static int load_added(Tokenizer *t, const cJSON *arr, CrError *e) {
    if (!arr || cJSON_IsNull(arr)) return 0;
    if (!cJSON_IsArray(arr)) return cr_error_set(e, "added_tokens: expected an array");
    int n = cJSON_GetArraySize(arr), i = 0;
    t->added = cr_calloc((size_t)n + 1, sizeof(AddedTok));
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        char f[64];
        snprintf(f, sizeof f, "added_tokens[%d]", i);
        const cJSON *c = get(it, "content");
        AddedTok *a = &t->added[i];
        if (!cJSON_IsObject(it) || json_id(get(it, "id"), &a->id))
            return cr_error_set(e, "%s.id: missing or not a non-negative integer", f);
        if (!cJSON_IsString(c) || !*c->valuestring) return cr_error_set(e, "%s.content: missing or empty", f);
        a->content = cr_strdup(c->valuestring);
        a->len = strlen(a->content);
        t->n_added = ++i;
        if ((a->special = opt_bool(it, "special", 0, f, e)) < 0 || (a->lstrip = opt_bool(it, "lstrip", 0, f, e)) < 0 ||
            (a->rstrip = opt_bool(it, "rstrip", 0, f, e)) < 0 ||
            (a->single_word = opt_bool(it, "single_word", 0, f, e)) < 0 ||
            (a->normalized = opt_bool(it, "normalized", !a->special, f, e)) < 0)
            return -1;
        str_map_put(&t->vocab, a->content, a->len, a->id);
        if (a->id + 1 > t->vocab_size) t->vocab_size = a->id + 1;
    }
    /* matching sets, longest first inside each first-byte bucket */
    for (int p = 0; p < 2; p++) {
        AddedSet *s = &t->sets[p];
        s->idx = cr_malloc(sizeof(int32_t) * ((size_t)n + 1));
        int cnt[257] = {0};
        for (int k = 0; k < n; k++)
            if (t->added[k].normalized == p) cnt[(unsigned char)t->added[k].content[0]]++;
        s->start[0] = 0;
        for (int b = 0; b < 256; b++) s->start[b + 1] = s->start[b] + cnt[b];
        int fill[256];
        for (int b = 0; b < 256; b++) fill[b] = s->start[b];
        for (int k = 0; k < n; k++) {
            if (t->added[k].normalized != p) continue;
            int b = (unsigned char)t->added[k].content[0];
            int j = fill[b]++;
            /* insertion keeps longer contents first, earlier entries first among equals */
            while (j > s->start[b] && t->added[s->idx[j - 1]].len < t->added[k].len) {
                s->idx[j] = s->idx[j - 1];
                j--;
            }
            s->idx[j] = k;
        }
        s->n = s->start[256];
    }
    for (int k = 0; k < n; k++) {
        if (!t->added[k].single_word) continue;
        int err;
        PCRE2_SIZE off;
        t->word_re = pcre2_compile((PCRE2_SPTR) "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]", PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_ANCHORED, &err, &off, NULL);
        if (!t->word_re) CR_DIE("pcre2_compile of the word class failed");
        break;
    }
    return 0;
}

static int check_normalizer(const cJSON *n, CrError *e) {
    if (!n || cJSON_IsNull(n)) return 0;
    const cJSON *type = get(n, "type");
    if (cJSON_IsString(type) && !strcmp(type->valuestring, "Sequence")) {
        const cJSON *list = get(n, "normalizers");
        if (cJSON_IsArray(list) && cJSON_GetArraySize(list) == 0) return 0;
    }
    return cr_error_set(e, "normalizer: only null or an empty Sequence is supported (byte-level BPE without normalization)");
}

static int check_decoder(const cJSON *d, CrError *e) {
    if (!d || cJSON_IsNull(d)) return 0;
    const cJSON *type = get(d, "type");
    if (cJSON_IsString(type) && !strcmp(type->valuestring, "ByteLevel")) return 0;
    return cr_error_set(e, "decoder: only ByteLevel (or null) is supported, got %s",
                        cJSON_IsString(type) ? type->valuestring : "no type");
}

static void build_decode_table(Tokenizer *t) {
    size_t n = (size_t)t->vocab_size;
    t->dec_off = cr_calloc(n ? n : 1, sizeof(uint32_t));
    t->dec_len = cr_calloc(n ? n : 1, sizeof(uint32_t));
    size_t cap = t->vocab.arena_len + 16;
    t->dec_arena = cr_malloc(cap);
    size_t o = 0;
    for (size_t i = 0; i < t->vocab.cap; i++) {
        const StrMapSlot *s = &t->vocab.slots[i];
        if (!s->hash) continue;
        const char *k = str_map_key(&t->vocab, s);
        long r = byte_level_to_bytes(k, s->key_len, (unsigned char *)t->dec_arena + o);
        if (r < 0) {  /* not an alphabet string: its own UTF-8 bytes (HF ByteLevel decoder) */
            memcpy(t->dec_arena + o, k, s->key_len);
            r = (long)s->key_len;
        }
        t->dec_off[s->value] = (uint32_t)o;
        t->dec_len[s->value] = (uint32_t)r;
        if (t->ignore_merges) str_map_put(&t->raw_vocab, t->dec_arena + o, (size_t)r, s->value);
        o += (size_t)r;
    }
    /* added tokens decode to their content, whatever the vocab says */
    for (int i = 0; i < t->n_added; i++) {
        const AddedTok *a = &t->added[i];
        if (o + a->len > cap) { cap = (o + a->len) * 2; t->dec_arena = cr_realloc(t->dec_arena, cap); }
        memcpy(t->dec_arena + o, a->content, a->len);
        t->dec_off[a->id] = (uint32_t)o;
        t->dec_len[a->id] = (uint32_t)a->len;
        o += a->len;
    }
    t->dec_arena_len = o;
}

static int find_token(const Tokenizer *t, const char *const *names) {
    for (; *names; names++) {
        int id = str_map_get(&t->vocab, *names, strlen(*names));
        if (id >= 0) return id;
    }
    return -1;
}

/* bos_token / eos_token from tokenizer_config.json: a string or {"content": ...}. */
static int config_token(const Tokenizer *t, const cJSON *cfg, const char *key) {
    const cJSON *v = get(cfg, key);
    if (cJSON_IsObject(v)) v = get(v, "content");
    if (!cJSON_IsString(v)) return -1;
    return str_map_get(&t->vocab, v->valuestring, strlen(v->valuestring));
}

static void find_special_ids(Tokenizer *t, const cJSON *cfg) {
    static const char *const bos[] = {"<｜begin▁of▁sentence｜>", "<|begin_of_text|>", "<s>", "<|endoftext|>", NULL};
    static const char *const eos[] = {"<｜end▁of▁sentence｜>", "<|end_of_text|>", "</s>", "<|endoftext|>", NULL};
    static const char *const pre[] = {"<｜fim▁begin｜>", "<|fim_prefix|>", "<fim_prefix>", NULL};
    static const char *const suf[] = {"<｜fim▁hole｜>", "<|fim_suffix|>", "<fim_suffix>", NULL};
    static const char *const mid[] = {"<｜fim▁end｜>", "<|fim_middle|>", "<fim_middle>", NULL};
    t->bos = cfg ? config_token(t, cfg, "bos_token") : -1;
    t->eos = cfg ? config_token(t, cfg, "eos_token") : -1;
    if (t->bos < 0) t->bos = find_token(t, bos);
    if (t->eos < 0) t->eos = find_token(t, eos);
    t->fim_pre = find_token(t, pre);
    t->fim_suf = find_token(t, suf);
    t->fim_mid = find_token(t, mid);
}

static Tokenizer *load_parsed(const cJSON *root, const cJSON *cfg, CrError *e) {
    Tokenizer *t = cr_calloc(1, sizeof *t);
    str_map_init(&t->vocab, 1024);
    str_map_init(&t->raw_vocab, 16);
    bpe_init(&t->bpe, 1024);
    if (!cJSON_IsObject(root)) { cr_error_set(e, "top level: expected a JSON object"); goto fail; }
    if (check_normalizer(get(root, "normalizer"), e) || check_decoder(get(root, "decoder"), e)) goto fail;
    if (load_model(t, get(root, "model"), e) || load_added(t, get(root, "added_tokens"), e)) goto fail;
    const cJSON *pj = get(root, "pre_tokenizer");
    if (!pj || cJSON_IsNull(pj)) { cr_error_set(e, "pre_tokenizer: missing (a byte-level BPE needs a ByteLevel pre-tokenizer)"); goto fail; }
    if (!(t->pre = pretok_from_json(pj, e))) goto fail;
    if (!pretok_has_byte_level(t->pre)) { cr_error_set(e, "pre_tokenizer: no ByteLevel step at the end: not a byte-level BPE tokenizer"); goto fail; }
    build_decode_table(t);
    find_special_ids(t, cfg);
    return t;
fail:
    tokenizer_free(t);
    return NULL;
}

Tokenizer *tokenizer_load_json(const char *json, size_t len, const char *name, CrError *e) {
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= json && at <= json + len ? (size_t)(at - json) : 0;
        cr_error_set(e, "%s: malformed JSON near byte %zu", name, off);
        return NULL;
    }
    Tokenizer *t = load_parsed(root, NULL, e);
    cJSON_Delete(root);
    if (!t) cr_error_prefix(e, "%s", name);
    return t;
}

Tokenizer *tokenizer_load(const char *path, CrError *e) {
    size_t len;
    char *text = cr_read_file(path, &len, e);
    if (!text) return NULL;
    cJSON *root = cJSON_ParseWithLength(text, len);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        size_t off = at && at >= text && at <= text + len ? (size_t)(at - text) : 0;
        cr_error_set(e, "%s: malformed JSON near byte %zu", path, off);
        free(text);
        return NULL;
    }
    free(text);
    /* tokenizer_config.json beside it, if any and if it parses */
    cJSON *cfg = NULL;
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, (size_t)(slash - path)) : cr_strdup(".");
    if (!dir) CR_DIE("out of memory");
    char *cpath = cr_path_join(dir, "tokenizer_config.json");
    size_t clen;
    CrError ce;
    char *ctext = cr_file_exists(cpath) ? cr_read_file(cpath, &clen, &ce) : NULL;
    if (ctext) cfg = cJSON_ParseWithLength(ctext, clen);
    free(ctext);
    free(cpath);
    free(dir);
    Tokenizer *t = load_parsed(root, cfg, e);
    cJSON_Delete(cfg);
    cJSON_Delete(root);
    if (!t) cr_error_prefix(e, "%s", path);
    return t;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    bpe_free(&t->bpe);
    pretok_free(t->pre);
    str_map_free(&t->vocab);
    str_map_free(&t->raw_vocab);
    for (int i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    for (int p = 0; p < 2; p++) free(t->sets[p].idx);
    if (t->word_re) pcre2_code_free(t->word_re);
    free(t->dec_off);
    free(t->dec_len);
    free(t->dec_arena);
    free(t);
}

/* ---- encoding ------------------------------------------------------------------ */

typedef struct CacheEnt {
    uint32_t off, n;
} CacheEnt;

typedef struct Enc {
    const Tokenizer *t;
    const char *text;
    int parse_special;
    int32_t *ids;
    size_t n, cap;
    PreTokPieces pieces;
    PreTokScratch pre;
    BpeScratch bpe;
    int use_cache;
    StrMap cache;        /* piece bytes (+ leading ' ' if virtual) -> index into ents */
    CacheEnt *ents;
    size_t n_ents, ents_cap;
    int32_t *pool;       /* cached ids */
    size_t pool_n, pool_cap;
    char *key;
    size_t key_cap;
    int failed;
} Enc;

static void emit(Enc *c, int32_t id) {
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->ids = cr_realloc(c->ids, c->cap * sizeof(int32_t));
    }
    c->ids[c->n++] = id;
}

#define CACHE_MAX_PIECE 64

static void encode_piece(Enc *c, const unsigned char *w, size_t n, int space) {
    const Tokenizer *t = c->t;
    const unsigned char *key = w;
    size_t klen = n;
    if (space) {
        if (c->key_cap < n + 1) { c->key_cap = (n + 1) * 2; c->key = cr_realloc(c->key, c->key_cap); }
        c->key[0] = ' ';
        memcpy(c->key + 1, w, n);
        key = (const unsigned char *)c->key;
        klen = n + 1;
    }
    if (t->ignore_merges) {
        int32_t id = str_map_get(&t->raw_vocab, key, klen);
        if (id >= 0) { emit(c, id); return; }
    }
    int cacheable = c->use_cache && klen <= CACHE_MAX_PIECE;
    if (cacheable) {
        int32_t k = str_map_get(&c->cache, key, klen);
        if (k >= 0) {
            CacheEnt ce = c->ents[k];
            if (c->n + ce.n > c->cap) {
                c->cap = (c->n + ce.n) * 2;
                c->ids = cr_realloc(c->ids, c->cap * sizeof(int32_t));
            }
            memcpy(c->ids + c->n, c->pool + ce.off, ce.n * sizeof(int32_t));
            c->n += ce.n;
            return;
        }
    }
    size_t before = c->n;
    size_t got = bpe_encode_word(&t->bpe, w, n, space, &c->bpe, &c->ids, &c->n, &c->cap);
    if (!cacheable) return;
    if (c->pool_n + got > c->pool_cap) {
        c->pool_cap = (c->pool_n + got) * 2 + 256;
        c->pool = cr_realloc(c->pool, c->pool_cap * sizeof(int32_t));
    }
    memcpy(c->pool + c->pool_n, c->ids + before, got * sizeof(int32_t));
    if (c->n_ents == c->ents_cap) {
        c->ents_cap = c->ents_cap ? c->ents_cap * 2 : 256;
        c->ents = cr_realloc(c->ents, c->ents_cap * sizeof(CacheEnt));
    }
    c->ents[c->n_ents] = (CacheEnt){(uint32_t)c->pool_n, (uint32_t)got};
    str_map_put(&c->cache, key, klen, (int32_t)c->n_ents);
    c->n_ents++;
    c->pool_n += got;
}

/* Text with no added tokens: valid UTF-8 runs go through the pre-tokenizer, each
 * byte of an ill-formed sequence is a piece of its own. */
static void encode_plain(Enc *c, size_t s, size_t e) {
    const unsigned char *u = (const unsigned char *)c->text;
    size_t i = s;
    while (i < e && !c->failed) {
        size_t run = i;
        while (run < e) {
            if (u[run] < 0x80) { run++; continue; }
            uint32_t cp;
            int k = utf8_decode(u + run, e - run, &cp);
            if (!k) break;
            run += (size_t)k;
        }
        if (run > i) {
            c->pieces.n = 0;
            CrError err;
            if (pretok_run(c->t->pre, c->text + i, run - i, (uint32_t)i, &c->pieces, &c->pre, &err)) {
                /* cannot happen for sane patterns; keep the bytes rather than lose them */
                fprintf(stderr, "tokenizer: %s\n", err.msg);
                for (size_t b = i; b < run; b++) encode_piece(c, u + b, 1, 0);
            } else {
                for (size_t k = 0; k < c->pieces.n; k++) {
                    PreTokPiece p = c->pieces.v[k];
                    encode_piece(c, u + p.off, p.len, (int)p.space);
                }
            }
        }
        if (run < e) encode_piece(c, u + run, 1, 0);  /* one invalid byte */
        i = run + (run < e ? 1 : 0);
    }
}

/* Code point just before / at a position (-1 if none or invalid); *len gets its size. */
static long cp_before(const unsigned char *u, size_t lo, size_t pos, int *len) {
    for (size_t k = 1; k <= 4 && pos >= lo + k; k++) {
        uint32_t cp;
        if ((u[pos - k] & 0xC0) == 0x80) continue;
        *len = (int)k;
        return utf8_decode(u + pos - k, k, &cp) == (int)k ? (long)cp : -1;
    }
    return -1;
}

static long cp_at(const unsigned char *u, size_t pos, size_t hi, int *len) {
    uint32_t cp;
    *len = pos < hi ? utf8_decode(u + pos, hi - pos, &cp) : 0;
    return *len ? (long)cp : -1;
}

static int is_ws(long cp) {
    return (cp >= 9 && cp <= 13) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
           cp == 0x3000;
}

/* HF checks single_word with Rust regex \w: Alphabetic (so Nl and e.g. circled
 * letters too), marks, decimal digits, connector punctuation, joiners. */
static int is_word(const Tokenizer *t, long cp) {
    if (cp < 0) return 0;
    if (cp < 0x80) return (cp >= '0' && cp <= '9') || (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') || cp == '_';
    char b[4];
    int k = utf8_encode((uint32_t)cp, b);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) CR_DIE("pcre2: out of memory");
    int rc = pcre2_match(t->word_re, (PCRE2_SPTR)b, (size_t)k, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    return rc >= 0;
}

/* AddedVocabulary::find_matches for one pass over text[s, e). */
static void extract(Enc *c, int pass, size_t s, size_t e) {
    const Tokenizer *t = c->t;
    const AddedSet *set = &t->sets[pass];
    const unsigned char *u = (const unsigned char *)c->text;
    size_t start_off = s, i = s;
    if (set->n == 0) goto tail;
    while (i < e) {
        unsigned char b = u[i];
        int lo = set->start[b], hi = set->start[b + 1], hit = -1;
        for (int k = lo; k < hi; k++) {
            const AddedTok *a = &t->added[set->idx[k]];
            if (a->len <= e - i && !memcmp(u + i, a->content, a->len)) { hit = set->idx[k]; break; }
        }
        if (hit < 0) { i++; continue; }
        const AddedTok *a = &t->added[hit];
        size_t ms = i, me = i + a->len;
        i = me;  /* the match is consumed even when it is skipped below (aho-corasick) */
        if (!c->parse_special && a->special) continue;
        if (a->single_word) {
            int l;
            if (is_word(t, cp_before(u, s, ms, &l)) || is_word(t, cp_at(u, me, e, &l))) continue;
        }
        if (a->lstrip) {
            size_t ns = ms;
            for (;;) {
                int l;
                long cp = cp_before(u, s, ns, &l);
                if (cp < 0 || !is_ws(cp)) break;
                ns -= (size_t)l;
            }
            ms = ns > start_off ? ns : start_off;
        }
        if (a->rstrip) {
            for (;;) {
                int l;
                long cp = cp_at(u, me, e, &l);
                if (cp < 0 || !is_ws(cp)) break;
                me += (size_t)l;
            }
        }
        if (start_off < ms) {
            if (pass == 0) extract(c, 1, start_off, ms);
            else encode_plain(c, start_off, ms);
        }
        emit(c, a->id);
        start_off = me;
        if (i < me) i = me;
    }
tail:
    if (start_off < e) {
        if (pass == 0) extract(c, 1, start_off, e);
        else encode_plain(c, start_off, e);
    }
}

int32_t *tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int parse_special, int *n_out) {
    Enc c;
    memset(&c, 0, sizeof c);
    c.t = t;
    c.text = text;
    c.parse_special = parse_special;
    c.use_cache = len >= 512;
    CR_CHECK(len < UINT32_MAX);
    if (c.use_cache) str_map_init(&c.cache, len / 16 < (1u << 20) ? len / 16 : (1u << 20));
    extract(&c, 0, 0, len);
    pretok_scratch_free(&c.pre);
    bpe_scratch_free(&c.bpe);
    free(c.pieces.v);
    if (c.use_cache) str_map_free(&c.cache);
    free(c.ents);
    free(c.pool);
    free(c.key);
    CR_CHECK(c.n <= INT32_MAX);
    *n_out = (int)c.n;
    if (!c.ids) c.ids = cr_malloc(sizeof(int32_t));
    return c.ids;
}

/* ---- decoding and lookups ------------------------------------------------------- */

const char *tokenizer_token_bytes(const Tokenizer *t, int32_t id, size_t *len) {
    /* ids with no token have length 0 (a real token is never empty) */
    if (id < 0 || id >= t->vocab_size || t->dec_len[id] == 0) { *len = 0; return NULL; }
    *len = t->dec_len[id];
    return t->dec_arena + t->dec_off[id];
}

char *tokenizer_decode(const Tokenizer *t, const int32_t *ids, int n, size_t *len_out) {
    size_t total = 0;
    for (int i = 0; i < n; i++)
        if (ids[i] >= 0 && ids[i] < t->vocab_size) total += t->dec_len[ids[i]];
    char *out = cr_malloc(total + 1);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->vocab_size) continue;
        memcpy(out + o, t->dec_arena + t->dec_off[ids[i]], t->dec_len[ids[i]]);
        o += t->dec_len[ids[i]];
    }
    out[o] = 0;
    if (len_out) *len_out = o;
    return out;
}

int tokenizer_token_to_id(const Tokenizer *t, const char *token) {
    return str_map_get(&t->vocab, token, strlen(token));
}
int tokenizer_vocab_size(const Tokenizer *t) { return t->vocab_size; }
int tokenizer_bos_id(const Tokenizer *t) { return t->bos; }
int tokenizer_eos_id(const Tokenizer *t) { return t->eos; }
int tokenizer_fim_ids(const Tokenizer *t, int *prefix, int *suffix, int *middle) {
    *prefix = t->fim_pre;
    *suffix = t->fim_suf;
    *middle = t->fim_mid;
    return t->fim_pre >= 0 && t->fim_suf >= 0 && t->fim_mid >= 0 ? 0 : -1;
}
