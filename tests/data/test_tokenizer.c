/* tests/data/test_tokenizer.c — the tokenizer against Hugging Face `tokenizers`
 * (fixtures from tests/reference/make_tokenizer_fixtures.py), the invalid-UTF-8 rule,
 * the trainer, errors and the CLI. */
#include "tests/test.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/rng.h"
#include "data/bpe_train.h"
#include "data/pretokenizer.h"
#include "data/tokenizer.h"
#include "data/utf8.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cjson/cJSON.h>
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FIX "tests/fixtures/tokenizer/"

static cJSON *load_json(const char *path) {
    CrError e;
    size_t n;
    char *s = cr_read_file(path, &n, &e);
    if (!s) return NULL;
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    return j;
}

static char *unhex(const char *h, size_t *n) {
    size_t l = strlen(h) / 2;
    char *b = cr_malloc(l + 1);
    for (size_t i = 0; i < l; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        b[i] = (char)v;
    }
    b[l] = 0;
    *n = l;
    return b;
}

/* ids == JSON array; prints the first difference */
static int same_ids(const int32_t *ids, int n, const cJSON *want, const char *what, int case_no) {
    int m = cJSON_GetArraySize(want), i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, want) {
        if (i >= n || ids[i] != (int32_t)it->valuedouble) {
            fprintf(stderr, "    %s case %d: id[%d] = %d, HF has %d (lengths %d vs %d)\n", what, case_no, i,
                    i < n ? ids[i] : -1, (int)it->valuedouble, n, m);
            return 0;
        }
        i++;
    }
    if (n != m) fprintf(stderr, "    %s case %d: %d ids, HF has %d\n", what, case_no, n, m);
    return n == m;
}

static void check_against_hf(TestCtx *t_, const char *name) {
    char tp[256], ep[256];
    snprintf(tp, sizeof tp, FIX "%s.json", name);
    snprintf(ep, sizeof ep, FIX "expected_%s.json", name);
    CrError e;
    Tokenizer *tok = tokenizer_load(tp, &e);
    CHECKF(tok, "%s", e.msg);
    cJSON *exp = load_json(ep);
    CHECK(exp);
    if (!tok || !exp) return;
    int n_cases = 0, n_ids = 0, n_dec = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(exp, "cases")) {
        size_t len;
        char *text = unhex(cJSON_GetObjectItem(c, "hex")->valuestring, &len);
        int n;
        int32_t *ids = tokenizer_encode(tok, text, len, 1, &n);
        CHECKF(same_ids(ids, n, cJSON_GetObjectItem(c, "ids"), name, n_cases), "%s: encode differs from HF", name);
        n_ids += n;
        if (cJSON_IsTrue(cJSON_GetObjectItem(c, "roundtrip"))) {
            size_t dl;
            char *d = tokenizer_decode(tok, ids, n, &dl);
            CHECKF(dl == len && !memcmp(d, text, len), "%s case %d: decode(encode(s)) != s", name, n_cases);
            free(d);
        }
        free(ids);
        ids = tokenizer_encode(tok, text, len, 0, &n);
        CHECKF(same_ids(ids, n, cJSON_GetObjectItem(c, "ids_no_special"), name, n_cases),
               "%s: encode with special tokens as text differs from HF", name);
        free(ids);
        free(text);
        n_cases++;
        if (FAILED()) break;
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(exp, "decode")) {
        const cJSON *a = cJSON_GetObjectItem(c, "ids"), *it;
        int32_t ids[64];
        int n = 0;
        cJSON_ArrayForEach(it, a) ids[n++] = (int32_t)it->valuedouble;
        size_t dl, sl;
        char *d = tokenizer_decode(tok, ids, n, &dl);
        char *s = utf8_sanitize(d, dl, &sl);
        size_t wl;
        char *want = unhex(cJSON_GetObjectItem(c, "hex")->valuestring, &wl);
        CHECKF(sl == wl && !memcmp(s, want, sl), "%s decode case %d: \"%s\" vs HF \"%s\"", name, n_dec, s, want);
        free(want);
        free(d);
        free(s);
        n_dec++;
    }
    fprintf(stderr, "    %s: %d texts (%d ids) and %d decodes match HF tokenizers\n", name, n_cases, n_ids, n_dec);
    CHECK(n_cases > 50 && n_dec > 10);
    cJSON_Delete(exp);
    tokenizer_free(tok);
}

TEST(tokenizer_matches_hf_deepseek_pretokenizer) { check_against_hf(t_, "deepseek"); }
TEST(tokenizer_matches_hf_gpt2_regex) { check_against_hf(t_, "gpt2"); }
TEST(tokenizer_matches_hf_split_behaviors) { check_against_hf(t_, "mixed"); }
TEST(tokenizer_trained_file_loads_in_hf_and_encodes_identically) { check_against_hf(t_, "crucible_trained"); }

/* vocabularies without every byte token: unk_token, fuse_unk, dropped bytes; ignore_merges */
TEST(tokenizer_matches_hf_unk_and_ignore_merges) {
    cJSON *all = load_json(FIX "tiny_bpe.json");
    CHECK(all);
    if (!all) return;
    int v = 0, n_texts = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, all) {
        char *json = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "tokenizer"));
        CrError e;
        Tokenizer *tok = tokenizer_load_json(json, strlen(json), "tiny", &e);
        CHECKF(tok, "%s", e.msg);
        const cJSON *x;
        cJSON_ArrayForEach(x, cJSON_GetObjectItem(c, "texts")) {
            if (!tok) break;
            size_t len;
            char *text = unhex(cJSON_GetObjectItem(x, "hex")->valuestring, &len);
            int n;
            int32_t *ids = tokenizer_encode(tok, text, len, 1, &n);
            CHECKF(same_ids(ids, n, cJSON_GetObjectItem(x, "ids"), "tiny", v), "variant %d: \"%s\"", v, text);
            free(ids);
            free(text);
            n_texts++;
        }
        tokenizer_free(tok);
        free(json);
        v++;
    }
    CHECK(v == 5 && n_texts == 25);
    cJSON_Delete(all);
}

/* BOS/EOS come from tokenizer_config.json beside tokenizer.json when it names them */
TEST(tokenizer_bos_eos_from_tokenizer_config) {
    char *dir = test_tmpdir();
    CrError e;
    CHECK(cr_mkdir_p(dir, &e) == 0);
    size_t n;
    char *s = cr_read_file(FIX "gpt2.json", &n, &e);
    char *tp = cr_path_join(dir, "tokenizer.json"), *cp = cr_path_join(dir, "tokenizer_config.json");
    CHECK(s && cr_write_file_atomic(tp, s, n, &e) == 0);
    Tokenizer *tok = tokenizer_load(tp, &e);
    int eot = tok ? tokenizer_token_to_id(tok, "<|endoftext|>") : -2;
    CHECK(tok && eot >= 0 && tokenizer_bos_id(tok) == eot && tokenizer_eos_id(tok) == eot);  /* well-known name */
    tokenizer_free(tok);
    const char *cfg = "{\"bos_token\": {\"content\": \"!\"}, \"eos_token\": \"#\"}";
    CHECK(cr_write_file_atomic(cp, cfg, strlen(cfg), &e) == 0);
    tok = tokenizer_load(tp, &e);
    CHECK(tok && tokenizer_bos_id(tok) == tokenizer_token_to_id(tok, "!") &&
          tokenizer_eos_id(tok) == tokenizer_token_to_id(tok, "#"));
    int p, sf, m;
    CHECK(tok && tokenizer_fim_ids(tok, &p, &sf, &m) == -1 && p == -1);
    tokenizer_free(tok);
    free(s);
    free(tp);
    free(cp);
    free(dir);
}

TEST(tokenizer_invalid_utf8_bytes_are_single_pieces) {
    cJSON *exp = load_json(FIX "invalid_utf8.json");
    CHECK(exp);
    if (!exp) return;
    const char *names[] = {"deepseek", "gpt2"};
    for (int k = 0; k < 2; k++) {
        char tp[256];
        snprintf(tp, sizeof tp, FIX "%s.json", names[k]);
        CrError e;
        Tokenizer *tok = tokenizer_load(tp, &e);
        CHECKF(tok, "%s", e.msg);
        if (!tok) break;
        int i = 0;
        const cJSON *c;
        cJSON_ArrayForEach(c, cJSON_GetObjectItem(exp, names[k])) {
            size_t len, ll, sl, dl;
            char *b = unhex(cJSON_GetObjectItem(c, "hex")->valuestring, &len);
            char *lossy = unhex(cJSON_GetObjectItem(c, "lossy_hex")->valuestring, &ll);
            int n;
            int32_t *ids = tokenizer_encode(tok, b, len, 1, &n);
            CHECK(same_ids(ids, n, cJSON_GetObjectItem(c, "ids"), names[k], i));
            char *d = tokenizer_decode(tok, ids, n, &dl);
            CHECKF(dl == len && !memcmp(d, b, len), "case %d: bytes do not round-trip", i);
            char *s = utf8_sanitize(b, len, &sl);
            CHECKF(sl == ll && !memcmp(s, lossy, ll), "case %d: utf8_sanitize differs from Python's 'replace'", i);
            free(s);
            free(d);
            free(ids);
            free(b);
            free(lossy);
            i++;
        }
        tokenizer_free(tok);
    }
    cJSON_Delete(exp);
}

/* decode(encode(b)) == b for random byte strings, valid UTF-8 or not */
TEST(tokenizer_roundtrips_random_bytes) {
    const char *files[] = {FIX "deepseek.json", FIX "gpt2.json", FIX "crucible_trained.json"};
    CrRng r;
    cr_rng_init(&r, 5, 0, 0);
    static const char *atoms[] = {"a", "Z", " ", "  ", "\n", "\r\n", "\t", "1", "23", "'s", "中", "é", "😀", "\xff",
                                  "\x80", "\xe2\x82", "<", "｜", "<｜end▁of▁sentence｜>", "<|endoftext|>", "\xc3",
                                  "\x00", "　", "ß", "Ω"};
    size_t na = sizeof atoms / sizeof *atoms;
    for (int f = 0; f < 3; f++) {
        CrError e;
        Tokenizer *tok = tokenizer_load(files[f], &e);
        CHECKF(tok, "%s", e.msg);
        if (!tok) return;
        for (int it = 0; it < 300; it++) {
            char buf[2048];
            size_t len = 0;
            int parts = (int)(cr_rng_u64(&r) % 40);
            for (int p = 0; p < parts; p++) {
                if (cr_rng_u64(&r) % 3 == 0) {
                    buf[len++] = (char)(cr_rng_u64(&r) & 0xff);
                } else {
                    const char *a = atoms[cr_rng_u64(&r) % na];
                    size_t l = *a ? strlen(a) : 1;   /* "\x00" is one NUL byte */
                    memcpy(buf + len, a, l);
                    len += l;
                }
            }
            int n;
            int32_t *ids = tokenizer_encode(tok, buf, len, (int)(it & 1), &n);
            size_t dl;
            char *d = tokenizer_decode(tok, ids, n, &dl);
            CHECKF(dl == len && !memcmp(d, buf, len), "%s: random case %d does not round-trip", files[f], it);
            free(d);
            free(ids);
            if (FAILED()) break;
        }
        tokenizer_free(tok);
    }
}

TEST(tokenizer_deepseek_letter_class_is_the_spec_code_points) {
    /* The trainer's pattern \s?[<LETTERS>]+ must hold exactly 2,729 code points, all
     * cased letters (Lu/Ll/Lt by PCRE2's own Unicode tables), including the six that
     * NFC would change (spec §10.2). */
    cJSON *pj = deepseek_pretokenizer_json();
    const cJSON *steps = cJSON_GetObjectItem(pj, "pretokenizers");
    const char *letters = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(steps, 1), "pattern"), "Regex")->valuestring;
    const char *cjk = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(steps, 4), "pattern"), "Regex")->valuestring;
    CHECK(!strncmp(letters, "\\s?[", 4));
    char *cls = cr_strdup(letters + 3);          /* "[...]+" */
    cls[strlen(cls) - 1] = 0;                     /* "[...]" */
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)cls, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_ANCHORED | PCRE2_ENDANCHORED, &err, &off, NULL);
    pcre2_code *cased = pcre2_compile((PCRE2_SPTR) "[\\p{Lu}\\p{Ll}\\p{Lt}]", PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_ANCHORED, &err, &off, NULL);
    CHECK(re && cased);
    if (!re || !cased) return;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    int count = 0, not_cased = 0;
    for (uint32_t cp = 1; cp < 0x110000; cp++) {
        if (cp >= 0xD800 && cp < 0xE000) continue;
        char b[4];
        int k = utf8_encode(cp, b);
        if (pcre2_match(re, (PCRE2_SPTR)b, (size_t)k, 0, 0, md, NULL) >= 0) {
            count++;
            if (pcre2_match(cased, (PCRE2_SPTR)b, (size_t)k, 0, 0, md, NULL) < 0) not_cased++;
        }
    }
    CHECKF(count == 2729, "letter class has %d code points, spec says 2729", count);
    CHECKF(not_cased == 0, "%d code points of the class are not Lu/Ll/Lt", not_cased);
    uint32_t nfc_sensitive[] = {0x1F7D, 0x1FBE, 0x1FD3, 0x1FDB, 0x2126, 0x212A, 0x212B, 0x212D};
    for (int i = 0; i < 8; i++) {
        char b[4];
        int k = utf8_encode(nfc_sensitive[i], b);
        CHECKF(pcre2_match(re, (PCRE2_SPTR)b, (size_t)k, 0, 0, md, NULL) >= 0, "U+%04X missing", nfc_sensitive[i]);
    }
    /* [\\]^_` between K and the Kelvin sign must stay out */
    CHECK(pcre2_match(re, (PCRE2_SPTR) "[", 1, 0, 0, md, NULL) < 0);
    /* CJK class: U+0800..U+4E00 is one range; U+9FA6 is out */
    CHECK(strstr(cjk, "\xE0\xA0\x80-\xE4\xB8\x80") != NULL);
    CHECK(strstr(cjk, "\xE4\xB8\x80-\xE9\xBE\xA5") != NULL);
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    pcre2_code_free(cased);
    free(cls);
    cJSON_Delete(pj);
}

TEST(tokenizer_special_ids_and_lookups) {
    CrError e;
    Tokenizer *tok = tokenizer_load(FIX "crucible_trained.json", &e);
    CHECKF(tok, "%s", e.msg);
    if (!tok) return;
    int v = tokenizer_vocab_size(tok);
    CHECK(tokenizer_bos_id(tok) == v - 5);
    CHECK(tokenizer_eos_id(tok) == v - 4);
    int p, s, m;
    CHECK(tokenizer_fim_ids(tok, &p, &s, &m) == 0);
    CHECK(s == v - 3 && p == v - 2 && m == v - 1);
    CHECK(tokenizer_token_to_id(tok, DEEPSEEK_SPECIAL_TOKENS[1]) == v - 4);
    CHECK(tokenizer_token_to_id(tok, "\xC4\x8A") == 10);  /* 'Ċ' = byte 0x0A */
    CHECK(tokenizer_token_to_id(tok, "no such token") == -1);
    /* spec §10.4: the chat template renders BOS once; "\n\n" is two newline tokens */
    const char *chat = "<｜begin▁of▁sentence｜>User: hi\n\nAssistant:";
    int n;
    int32_t *ids = tokenizer_encode(tok, chat, strlen(chat), 1, &n);
    CHECK(n > 3 && ids[0] == tokenizer_bos_id(tok));
    int nl = 0;
    for (int i = 0; i < n; i++) nl += ids[i] == 10;
    CHECK(nl == 2);
    free(ids);
    int32_t bad[] = {-1, 1 << 30, 104};
    size_t dl;
    char *d = tokenizer_decode(tok, bad, 3, &dl);
    CHECK(dl == 1 && d[0] == 'h');   /* unknown ids decode to nothing */
    free(d);
    tokenizer_free(tok);
}

TEST(tokenizer_train_is_deterministic_and_reproduces_fixture) {
    char *dir = test_tmpdir();
    char *out = cr_path_join(dir, "t.json");
    const char *corpus[] = {FIX "corpus.txt"};
    CrError e;
    CHECKF(tokenizer_train(corpus, 1, 600, out, &e) == 0, "%s", e.msg);
    size_t a, b;
    char *x = cr_read_file(out, &a, &e), *y = cr_read_file(FIX "crucible_trained.json", &b, &e);
    CHECK(x && y);
    if (x && y) CHECKF(a == b && !memcmp(x, y, a), "training output differs from the committed fixture (regenerate it?)");
    free(x);
    free(y);
    CHECK(tokenizer_train(corpus, 1, 200, out, &e) == -1 && strstr(e.msg, "vocab"));
    const char *missing[] = {"/nonexistent/corpus.txt"};
    CHECK(tokenizer_train(missing, 1, 600, out, &e) == -1 && strstr(e.msg, "/nonexistent/corpus.txt"));
    free(out);
    free(dir);
}

/* ~1 MB of Zipf-ish code-like text, vocab 2000: must take a few seconds at most. */
TEST(tokenizer_train_speed_1mb) {
    CrRng r;
    cr_rng_init(&r, 11, 0, 0);
    static const char *syl[] = {"in", "t", "re", "tu", "rn", "fo", "r", "de", "f", "se", "lf", "pri", "nt", "x", "y",
                                "val", "ue", "co", "un", "ter", "数", "据", "é", "ß"};
    size_t cap = 1100000, len = 0;
    char *text = cr_malloc(cap + 64);
    while (len < 1000000) {
        int w = 1 + (int)(cr_rng_u64(&r) % 4);
        for (int i = 0; i < w; i++) {
            uint64_t z = cr_rng_u64(&r) % 1000;
            const char *s = syl[(z * z / 1000) * 24 / 1000];
            size_t l = strlen(s);
            memcpy(text + len, s, l);
            len += l;
        }
        uint64_t sep = cr_rng_u64(&r) % 10;
        text[len++] = sep < 6 ? ' ' : sep < 7 ? '\n' : sep < 8 ? '(' : sep < 9 ? '1' : '.';
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    CrError e;
    BpeTrainStats st;
    char *json = bpe_train_text(text, len, 2000, &st, &e);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    CHECKF(json, "%s", e.msg);
    fprintf(stderr, "    trained %zu bytes -> vocab %d (%d merges) in %.2f s\n", len, st.vocab_size, st.n_merges, s);
    CHECK(st.vocab_size == 2000);
    CHECKF(s < 10.0, "training took %.2f s", s);
    Tokenizer *tok = json ? tokenizer_load_json(json, strlen(json), "trained", &e) : NULL;
    CHECKF(tok, "%s", e.msg);
    if (tok) {
        int n;
        int32_t *ids = tokenizer_encode(tok, text, len, 1, &n);
        size_t dl;
        char *d = tokenizer_decode(tok, ids, n, &dl);
        CHECK(dl == len && !memcmp(d, text, len));
        CHECKF(n < (int)(len / 2), "trained vocabulary compresses poorly: %d ids for %zu bytes", n, len);
        free(d);
        free(ids);
        tokenizer_free(tok);
    }
    free(json);
    free(text);
}

static void expect_load_error(TestCtx *t_, const char *json, const char *needle) {
    CrError e;
    Tokenizer *tok = tokenizer_load_json(json, strlen(json), "bad.json", &e);
    CHECKF(!tok, "loaded: %s", json);
    if (!tok) CHECKF(strstr(e.msg, needle) && strstr(e.msg, "bad.json"), "message \"%s\" lacks \"%s\"", e.msg, needle);
    tokenizer_free(tok);
}

#define PRE "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":true}"
TEST(tokenizer_rejects_bad_files_with_clear_errors) {
    expect_load_error(t_, "{\"model\": {", "malformed JSON");
    expect_load_error(t_, "[]", "object");
    expect_load_error(t_, "{" PRE "}", "model");
    expect_load_error(t_, "{" PRE ",\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}", "model.type");
    expect_load_error(t_, "{" PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":-1},\"merges\":[]}}", "model.vocab");
    expect_load_error(t_, "{" PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a b\"]}}", "model.merges[0]");
    expect_load_error(t_, "{" PRE ",\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[\"a\"]}}", "model.merges[0]");
    expect_load_error(t_, "{" PRE ",\"normalizer\":{\"type\":\"NFC\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", "normalizer");
    expect_load_error(t_, "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(\"},\"behavior\":\"Isolated\"},"
                          "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", "pre_tokenizer.pattern");
    expect_load_error(t_, "{\"pre_tokenizer\":{\"type\":\"Whitespace\"},\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", "Whitespace");
    expect_load_error(t_, "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"a\"},\"behavior\":\"Isolated\"},"
                          "\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", "ByteLevel");
    expect_load_error(t_, "{" PRE ",\"added_tokens\":[{\"id\":1}],\"model\":{\"type\":\"BPE\",\"vocab\":{},\"merges\":[]}}", "added_tokens[0].content");
    CrError e;
    CHECK(!tokenizer_load("/nonexistent/tokenizer.json", &e) && strstr(e.msg, "/nonexistent/tokenizer.json"));
    /* a truncated real file */
    size_t n;
    char *s = cr_read_file(FIX "gpt2.json", &n, &e);
    CHECK(s);
    if (s) {
        Tokenizer *tok = tokenizer_load_json(s, n / 2, "half.json", &e);
        CHECK(!tok && strstr(e.msg, "half.json"));
        free(s);
    }
}

TEST(tokenizer_utf8_sanitize_and_regex_translation) {
    size_t n;
    char *s = utf8_sanitize("a\xff\xe2\x82(\xf0\x9f\x98\x80", 9, &n);
    CHECK(n == 12 && !memcmp(s, "a\xEF\xBF\xBD\xEF\xBF\xBD(\xF0\x9F\x98\x80", 12));
    free(s);
    uint32_t cp;
    CHECK(utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, &cp) == 0);     /* surrogate */
    CHECK(utf8_decode((const unsigned char *)"\xc0\xaf", 2, &cp) == 0);          /* overlong */
    CHECK(utf8_decode((const unsigned char *)"\xf4\x8f\xbf\xbf", 4, &cp) == 4 && cp == 0x10FFFF);
    char *r = pretok_translate_regex("\\s+[^\\s\\p{L}]\\h\\[\\s]");
    CHECK(!strcmp(r, "[" PRETOK_WS_CLASS "]+[^" PRETOK_WS_CLASS "\\p{L}][0-9a-fA-F]\\[[" PRETOK_WS_CLASS "]]") ||
          (fprintf(stderr, "    got %s\n", r), 0));
    free(r);
}

static char *run_cmd(const char *cmd, size_t *n) {
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = cr_malloc(cap);
    size_t k;
    while ((k = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += k;
        if (len + 1 >= cap) buf = cr_realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    *n = len;
    int st = pclose(p);
    if (st != 0) { free(buf); return NULL; }
    return buf;
}

TEST(tokenizer_cli_tokenize_and_decode) {
    char *dir = test_tmpdir();
    char cmd[2048];
    size_t n;
    /* the fixture's first corpus line, encoded by HF */
    cJSON *exp = load_json(FIX "expected_deepseek.json");
    CHECK(exp);
    if (!exp) return;
    const cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItem(exp, "cases"), 20);   /* special tokens inside text */
    size_t len;
    char *text = unhex(cJSON_GetObjectItem(c0, "hex")->valuestring, &len);
    char *in = cr_path_join(dir, "in.txt");
    CrError e;
    CHECK(cr_write_file_atomic(in, text, len, &e) == 0);
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer " FIX "deepseek.json < %s", test_crucible_bin(), in);
    char *out = run_cmd(cmd, &n);
    CHECK(out);
    char *want = cJSON_PrintUnformatted(cJSON_GetObjectItem(c0, "ids"));
    if (out) CHECKF(n == strlen(want) + 1 && !memcmp(out, want, n - 1) && out[n - 1] == '\n', "got %s want %s", out, want);
    char *ids_path = cr_path_join(dir, "ids.json");
    CHECK(out && cr_write_file_atomic(ids_path, out, n, &e) == 0);
    snprintf(cmd, sizeof cmd, "%s tokenize --tokenizer " FIX "deepseek.json --decode < %s", test_crucible_bin(), ids_path);
    char *back = run_cmd(cmd, &n);
    CHECK(back && n == len && !memcmp(back, text, len));
    /* bad input: non-zero exit */
    snprintf(cmd, sizeof cmd, "echo '[1, \"x\"]' | %s tokenize --tokenizer " FIX "deepseek.json --decode 2>/dev/null", test_crucible_bin());
    CHECK(run_cmd(cmd, &n) == NULL);
    snprintf(cmd, sizeof cmd, "echo hi | %s tokenize --tokenizer /nonexistent.json 2>/dev/null", test_crucible_bin());
    CHECK(run_cmd(cmd, &n) == NULL);
    /* tokenizer train through the CLI */
    snprintf(cmd, sizeof cmd, "%s tokenizer train --corpus " FIX "corpus.txt --vocab-size 300 --out %s/t.json 2>/dev/null",
             test_crucible_bin(), dir);
    char *tr = run_cmd(cmd, &n);
    CHECK(tr && strstr(tr, "\"vocab_size\":300"));
    free(tr);
    free(back);
    free(out);
    free(want);
    free(ids_path);
    free(in);
    free(text);
    cJSON_Delete(exp);
    free(dir);
}

/* A backtracking-heavy Split regex on a 400 KB piece overflows PCRE2's default JIT
 * stack; the encoder must grow it and still run BPE (the byte-by-byte fallback would
 * give one id per byte). HF gives 201000 ids for this input (checked by hand with
 * tokenizers 0.23). */
TEST(tokenizer_deep_regex_grows_jit_stack) {
    cJSON *j = load_json(FIX "gpt2.json");
    CHECK(j);
    if (!j) return;
    cJSON *pre = cJSON_Parse("{\"type\":\"Sequence\",\"pretokenizers\":[{\"type\":\"Split\",\"pattern\":{\"Regex\":\"(a|b)*c\"},"
                             "\"behavior\":\"Isolated\",\"invert\":false},{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
                             "\"use_regex\":false}]}");
    cJSON_ReplaceItemInObject(j, "pre_tokenizer", pre);
    char *json = cJSON_PrintUnformatted(j);
    CrError e;
    Tokenizer *tok = tokenizer_load_json(json, strlen(json), "deep", &e);
    CHECKF(tok, "%s", e.msg);
    size_t len = 402001;
    char *text = cr_malloc(len + 1);
    for (size_t i = 0; i < 400000; i++) text[i] = i % 2 ? 'b' : 'a';
    text[400000] = 'c';
    for (size_t i = 400001; i < len; i++) text[i] = (i - 400001) % 2 ? 'b' : 'a';
    if (tok) {
        int n;
        int32_t *ids = tokenizer_encode(tok, text, len, 1, &n);
        size_t dl;
        char *d = tokenizer_decode(tok, ids, n, &dl);
        CHECK(dl == len && !memcmp(d, text, len));
        CHECKF(n == 201000, "%d ids, HF gives 201000", n);
        free(d);
        free(ids);
    }
    tokenizer_free(tok);
    free(text);
    free(json);
    cJSON_Delete(j);
}
