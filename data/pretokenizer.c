/* data/pretokenizer.c — see pretokenizer.h */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "data/pretokenizer.h"
#include "core/alloc.h"

#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* tokenizers' ByteLevel pre-tokenizer pattern (GPT-2). */
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

enum { B_ISOLATED, B_REMOVED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };
enum { STEP_SPLIT, STEP_BYTE_LEVEL };

typedef struct Step {
    int kind;
    pcre2_code *re;   /* Split / Digits; ByteLevel with use_regex */
    int jit;          /* re was JIT-compiled */
    int behavior, invert;
    int add_prefix_space;
} Step;

struct PreTokenizer {
    Step *steps;
    int n;
};

/* ---- regex translation --------------------------------------------------------- */

#define W_CLASS "\\p{Alphabetic}\\p{M}\\p{N}\\p{Pc}"
#define H_CLASS "0-9a-fA-F"

char *pretok_translate_regex(const char *src) {
    size_t n = strlen(src), cap = n * 8 + 256, o = 0;
    char *out = cr_malloc(cap);
    int in_class = 0, class_start = 0;
#define EMIT(str) do { size_t l_ = strlen(str); if (o + l_ + 1 > cap) { cap = (o + l_) * 2 + 64; out = cr_realloc(out, cap); } memcpy(out + o, str, l_); o += l_; } while (0)
    for (size_t i = 0; i < n; i++) {
        char c = src[i];
        if (c == '\\' && i + 1 < n) {
            char d = src[i + 1];
            const char *rep = NULL;
            switch (d) {
            case 's': rep = in_class ? PRETOK_WS_CLASS : "[" PRETOK_WS_CLASS "]"; break;
            case 'S': rep = in_class ? "\\S" : "[^" PRETOK_WS_CLASS "]"; break;
            case 'h': rep = in_class ? H_CLASS : "[" H_CLASS "]"; break;
            case 'H': rep = in_class ? "\\x{0}-\\x{2f}\\x{3a}-\\x{40}\\x{47}-\\x{60}\\x{67}-\\x{10ffff}" : "[^" H_CLASS "]"; break;
            case 'w': rep = in_class ? W_CLASS : "[" W_CLASS "]"; break;
            case 'W': rep = in_class ? "\\W" : "[^" W_CLASS "]"; break;
            default: break;
            }
            if (rep) {
                EMIT(rep);
            } else {
                char two[3] = {c, d, 0};
                EMIT(two);
            }
            i++;
            class_start = 0;
            continue;
        }
        if (!in_class && c == '[') {
            in_class = 1;
            class_start = 1;
            EMIT("[");
            if (i + 1 < n && src[i + 1] == '^') { EMIT("^"); i++; }
            continue;
        }
        if (in_class && c == ']' && !class_start) in_class = 0;
        class_start = 0;
        char one[2] = {c, 0};
        EMIT(one);
    }
    out[o] = 0;
#undef EMIT
    return out;
}

/* ---- construction --------------------------------------------------------------- */

static pcre2_code *compile_pattern(const char *pattern, int literal, int *jit, const char *field, CrError *e) {
    char *translated = literal ? NULL : pretok_translate_regex(pattern);
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    if (!cc) CR_DIE("pcre2_compile_context_create failed");
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    uint32_t opts = literal ? PCRE2_UTF | PCRE2_LITERAL : PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE;
    int err;
    PCRE2_SIZE erroff;
    const char *pat = literal ? pattern : translated;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, opts, &err, &erroff, cc);
    pcre2_compile_context_free(cc);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        cr_error_set(e, "%s: cannot compile regex \"%s\" (as PCRE2 \"%s\"): %s at offset %zu", field, pattern,
                     pat, (const char *)msg, (size_t)erroff);
        free(translated);
        return NULL;
    }
    free(translated);
    *jit = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    return re;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Missing/null booleans take the default. -1 for a present non-boolean. */
static int json_bool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return dflt;
    if (!cJSON_IsBool(v)) return -1;
    return cJSON_IsTrue(v);
}

static int add_step(PreTokenizer *p, const cJSON *j, const char *field, CrError *e) {
    const char *type = json_str(j, "type");
    if (!cJSON_IsObject(j) || !type) return cr_error_set(e, "%s: expected an object with a \"type\"", field);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(j, "pretokenizers");
        if (!cJSON_IsArray(list)) return cr_error_set(e, "%s.pretokenizers: expected an array", field);
        int i = 0;
        const cJSON *it;
        cJSON_ArrayForEach(it, list) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s.pretokenizers[%d]", field, i++);
            if (add_step(p, it, sub, e)) return -1;
        }
        return 0;
    }
    if (p->n > 0 && p->steps[p->n - 1].kind == STEP_BYTE_LEVEL)
        return cr_error_set(e, "%s: a %s step after ByteLevel is not supported (ByteLevel must be last)", field, type);
    Step st = {0};
    char sub[300];
    if (!strcmp(type, "Split")) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(j, "pattern");
        const char *rx = json_str(pat, "Regex"), *lit = json_str(pat, "String");
        snprintf(sub, sizeof sub, "%s.pattern", field);
        if (!rx && !lit) return cr_error_set(e, "%s: expected {\"Regex\": ...} or {\"String\": ...}", sub);
        const char *beh = json_str(j, "behavior");
        if (!beh) return cr_error_set(e, "%s.behavior: missing", field);
        if (!strcmp(beh, "Isolated")) st.behavior = B_ISOLATED;
        else if (!strcmp(beh, "Removed")) st.behavior = B_REMOVED;
        else if (!strcmp(beh, "MergedWithPrevious")) st.behavior = B_MERGED_PREV;
        else if (!strcmp(beh, "MergedWithNext")) st.behavior = B_MERGED_NEXT;
        else if (!strcmp(beh, "Contiguous")) st.behavior = B_CONTIGUOUS;
        else return cr_error_set(e, "%s.behavior: unknown value \"%s\"", field, beh);
        st.invert = json_bool(j, "invert", 0);
        if (st.invert < 0) return cr_error_set(e, "%s.invert: expected a boolean", field);
        if (lit && !*lit) return cr_error_set(e, "%s: empty String pattern is not supported", sub);
        st.kind = STEP_SPLIT;
        st.re = compile_pattern(rx ? rx : lit, rx == NULL, &st.jit, sub, e);
        if (!st.re) return -1;
    } else if (!strcmp(type, "Digits")) {
        int ind = json_bool(j, "individual_digits", 0);
        if (ind < 0) return cr_error_set(e, "%s.individual_digits: expected a boolean", field);
        /* Digits = split on char::is_numeric (Nd, Nl, No) one char at a time, Isolated
         * or Contiguous; a run regex with Isolated gives the same pieces. */
        st.kind = STEP_SPLIT;
        st.behavior = B_ISOLATED;
        st.re = compile_pattern(ind ? "\\p{N}" : "\\p{N}+", 0, &st.jit, field, e);
        if (!st.re) return -1;
    } else if (!strcmp(type, "ByteLevel")) {
        st.kind = STEP_BYTE_LEVEL;
        st.add_prefix_space = json_bool(j, "add_prefix_space", 1);
        int use_regex = json_bool(j, "use_regex", 1);
        if (st.add_prefix_space < 0 || use_regex < 0)
            return cr_error_set(e, "%s: add_prefix_space/use_regex must be booleans", field);
        if (use_regex) {
            st.re = compile_pattern(GPT2_PATTERN, 0, &st.jit, field, e);
            if (!st.re) return -1;
        }
    } else {
        return cr_error_set(e, "%s.type: unsupported pre-tokenizer \"%s\" (supported: Sequence, Split, Digits, ByteLevel)",
                            field, type);
    }
    p->steps = cr_realloc(p->steps, sizeof(Step) * (size_t)(p->n + 1));
    p->steps[p->n++] = st;
    return 0;
}

PreTokenizer *pretok_from_json(const cJSON *j, CrError *e) {
    PreTokenizer *p = cr_calloc(1, sizeof *p);
    if (add_step(p, j, "pre_tokenizer", e)) {
        pretok_free(p);
        return NULL;
    }
    return p;
}

void pretok_free(PreTokenizer *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) pcre2_code_free(p->steps[i].re);
    free(p->steps);
    free(p);
}

int pretok_has_byte_level(const PreTokenizer *p) {
    return p->n > 0 && p->steps[p->n - 1].kind == STEP_BYTE_LEVEL;
}

void pretok_scratch_free(PreTokScratch *s) {
    free(s->a.v);
    free(s->b.v);
    free(s->buf);
    if (s->match_data) pcre2_match_data_free(s->match_data);
    if (s->match_ctx) pcre2_match_context_free(s->match_ctx);
    if (s->jit_stack) pcre2_jit_stack_free(s->jit_stack);
    memset(s, 0, sizeof *s);
}

/* ---- running -------------------------------------------------------------------- */

static inline void push(PreTokPieces *v, uint32_t off, uint32_t len, uint32_t space) {
    if (len == 0 && !space) return;  /* HF drops empty pieces */
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 64;
        v->v = cr_realloc(v->v, v->cap * sizeof *v->v);
    }
    v->v[v->n++] = (PreTokPiece){off, len, space};
}

typedef struct Seg {
    uint32_t s, e;
    int m;
} Seg;

typedef struct SegVec {
    Seg *v;
    size_t n, cap;
} SegVec;

static void seg_push(SegVec *v, uint32_t s, uint32_t e, int m) {
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 32;
        v->v = cr_realloc(v->v, v->cap * sizeof *v->v);
    }
    v->v[v->n++] = (Seg){s, e, m};
}

static int utf8_len_at(const unsigned char *s) {
    if (s[0] < 0x80) return 1;
    if (s[0] < 0xE0) return 2;
    if (s[0] < 0xF0) return 3;
    return 4;
}

static int grow_jit_stack(PreTokScratch *s);

/* Oniguruma find_iter as the `onig` crate runs it (an empty match right after the
 * previous match is skipped by advancing one char), turned into HF's
 * (offsets, is_match) list that covers the whole subject. */
static int find_matches(const Step *st, const char *subj, size_t n, PreTokScratch *sc, SegVec *out, CrError *e) {
    out->n = 0;
    if (n == 0) { seg_push(out, 0, 0, 0); return 0; }
    pcre2_match_data *md = sc->match_data;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    size_t last_end = 0, prev = 0;
    long last_match_end = -1;
    while (last_end <= n) {
        int rc = st->jit ? pcre2_jit_match(st->re, (PCRE2_SPTR)subj, n, last_end, 0, md, sc->match_ctx)
                         : pcre2_match(st->re, (PCRE2_SPTR)subj, n, last_end, PCRE2_NO_UTF_CHECK, md, sc->match_ctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && grow_jit_stack(sc) == 0) continue;  /* retry, same position */
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return cr_error_set(e, "pre-tokenizer regex failed on a %zu-byte piece: %s", n, (const char *)msg);
        }
        size_t ms = ov[0], me = ov[1];
        if (ms == me && last_match_end == (long)me) {
            last_end += last_end < n ? (size_t)utf8_len_at((const unsigned char *)subj + last_end) : 1;
            continue;
        }
        last_end = me;
        last_match_end = (long)me;
        if (prev != ms) seg_push(out, (uint32_t)prev, (uint32_t)ms, 0);
        seg_push(out, (uint32_t)ms, (uint32_t)me, 1);
        prev = me;
    }
    if (prev != n) seg_push(out, (uint32_t)prev, (uint32_t)n, 0);
    if (st->invert)
        for (size_t i = 0; i < out->n; i++) out->v[i].m = !out->v[i].m;
    return 0;
}

/* NormalizedString::split: apply the behaviour to the (offsets, is_match) list. */
static void apply_behavior(int behavior, SegVec *sv, uint32_t base, PreTokPieces *dst) {
    Seg *v = sv->v;
    size_t n = sv->n;
    if (behavior == B_ISOLATED || behavior == B_REMOVED) {
        for (size_t i = 0; i < n; i++)
            if (!(behavior == B_REMOVED && v[i].m)) push(dst, base + v[i].s, v[i].e - v[i].s, 0);
        return;
    }
    /* fold into a list of kept ranges, in place (k <= i always) */
    size_t k = 0;
    int prev_match = 0;
    if (behavior == B_MERGED_NEXT) {
        /* walk backwards; the result is built reversed */
        for (size_t ii = n; ii-- > 0;) {
            Seg s = v[ii];
            if (s.m && !prev_match && k > 0) v[n - k].s = s.s;      /* acc.last_mut().start = s.start */
            else { k++; v[n - k] = s; }
            prev_match = s.m;
        }
        for (size_t i = n - k; i < n; i++) push(dst, base + v[i].s, v[i].e - v[i].s, 0);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        Seg s = v[i];
        int merge = behavior == B_CONTIGUOUS ? (s.m == prev_match) : (s.m && !prev_match);
        if (merge && k > 0) v[k - 1].e = s.e;
        else v[k++] = s;
        prev_match = s.m;
    }
    for (size_t i = 0; i < k; i++) push(dst, base + v[i].s, v[i].e - v[i].s, 0);
}

/* The JIT runs on a 32 KiB machine-stack area by default; a big JIT stack (mmap'd)
 * is only set up the first time a match needs it, so short encodes stay cheap. */
static int ensure_scratch(PreTokScratch *s) {
    if (s->match_data) return 0;
    s->match_data = pcre2_match_data_create(1, NULL);
    s->match_ctx = pcre2_match_context_create(NULL);
    if (!s->match_data || !s->match_ctx) CR_DIE("pcre2: out of memory");
    return 0;
}

static int grow_jit_stack(PreTokScratch *s) {
    if (s->jit_stack) return -1;
    s->jit_stack = pcre2_jit_stack_create(256 * 1024, 256 * 1024 * 1024, NULL);
    if (!s->jit_stack) CR_DIE("pcre2: out of memory");
    pcre2_jit_stack_assign(s->match_ctx, NULL, s->jit_stack);
    return 0;
}

int pretok_run(const PreTokenizer *p, const char *text, size_t len, uint32_t base, PreTokPieces *out,
               PreTokScratch *sc, CrError *e) {
    if (len == 0) return 0;
    ensure_scratch(sc);
    PreTokPieces *cur = &sc->a, *nxt = &sc->b;
    cur->n = 0;
    push(cur, 0, (uint32_t)len, 0);
    SegVec segs = {0};
    int rc = 0;
    for (int si = 0; si < p->n && rc == 0; si++) {
        const Step *st = &p->steps[si];
        nxt->n = 0;
        for (size_t i = 0; i < cur->n && rc == 0; i++) {
            PreTokPiece pc = cur->v[i];
            const char *subj = text + pc.off;
            size_t n = pc.len;
            if (st->kind == STEP_SPLIT) {
                if ((rc = find_matches(st, subj, n, sc, &segs, e)) == 0) apply_behavior(st->behavior, &segs, pc.off, nxt);
                continue;
            }
            /* ByteLevel: optional prefix space, optional GPT-2 split */
            int sp = st->add_prefix_space && !(n > 0 && subj[0] == ' ');
            if (!st->re) { push(nxt, pc.off, pc.len, (uint32_t)sp); continue; }
            if (sp) {
                if (sc->buf_cap < n + 1) {
                    sc->buf_cap = (n + 1) * 2;
                    sc->buf = cr_realloc(sc->buf, sc->buf_cap);
                }
                sc->buf[0] = ' ';
                memcpy(sc->buf + 1, subj, n);
                subj = sc->buf;
                n++;
            }
            if ((rc = find_matches(st, subj, n, sc, &segs, e)) != 0) break;
            for (size_t k = 0; k < segs.n; k++) {
                Seg s = segs.v[k];
                if (sp && s.s == 0) push(nxt, pc.off, s.e - 1, 1);
                else push(nxt, pc.off + s.s - (uint32_t)sp, s.e - s.s, 0);
            }
        }
        PreTokPieces *t = cur; cur = nxt; nxt = t;
    }
    free(segs.v);
    if (rc) return -1;
    for (size_t i = 0; i < cur->n; i++) push(out, base + cur->v[i].off, cur->v[i].len, cur->v[i].space);
    return 0;
}
