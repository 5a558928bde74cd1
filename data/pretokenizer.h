/* data/pretokenizer.h — Hugging Face pre-tokenizers of byte-level BPE tokenizers.
 * Defines: PreTokenizer, PreTokPiece, PreTokPieces, pretok_from_json, pretok_free,
 *          pretok_run, pretok_translate_regex, PRETOK_WS_CLASS.
 *
 * Supported `pre_tokenizer` JSON: Sequence of Split (pattern Regex or String;
 * behavior Isolated / Removed / MergedWithPrevious / MergedWithNext / Contiguous;
 * invert), Digits (individual_digits), and ByteLevel (add_prefix_space,
 * use_regex = the GPT-2 pattern) which must come last. Regexes are written in
 * Oniguruma (Ruby syntax) as HF `tokenizers` compiles them; they are translated to
 * PCRE2 (UTF, UCP, multiline with LF newlines, JIT) so that \s, \h, \w, ^ and $
 * mean what Oniguruma means (see pretok_translate_regex). Semantics follow
 * `NormalizedString::split`: every step runs on each piece of the previous step,
 * empty pieces are dropped. */
#ifndef CRUCIBLE_DATA_PRETOKENIZER_H
#define CRUCIBLE_DATA_PRETOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "core/error.h"

/* Oniguruma's Unicode \s (= Rust char::is_whitespace, the White_Space property),
 * as the inside of a PCRE2 character class. */
#define PRETOK_WS_CLASS \
    "\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}\\x{202f}\\x{205f}\\x{3000}"

typedef struct PreTokenizer PreTokenizer;

/* A piece of the input: bytes text[off, off+len), preceded by one virtual ' '
 * when space is set (ByteLevel add_prefix_space). */
typedef struct PreTokPiece {
    uint32_t off, len;
    uint32_t space;
} PreTokPiece;

typedef struct PreTokPieces {
    PreTokPiece *v;
    size_t n, cap;
} PreTokPieces;

/* Build from the tokenizer.json "pre_tokenizer" value. Errors name the field
 * ("pre_tokenizer.pretokenizers[2].pattern: ..."). Returns NULL on error. */
PreTokenizer *pretok_from_json(const cJSON *j, CrError *e);
void pretok_free(PreTokenizer *p);
/* 1 if the chain ends with a ByteLevel step. */
int pretok_has_byte_level(const PreTokenizer *p);

/* Per-caller scratch (match data, JIT stack, piece buffers): one per thread.
 * Zero-initialise; release with pretok_scratch_free. */
typedef struct PreTokScratch {
    PreTokPieces a, b;
    void *match_data, *match_ctx, *jit_stack;
    char *buf;
    size_t buf_cap;
} PreTokScratch;
void pretok_scratch_free(PreTokScratch *s);

/* Split text[0..len) — which must be valid UTF-8 — into pieces appended to out
 * (offsets are relative to text, plus base). Returns 0, or -1 with e set if the
 * regex engine fails (e.g. its JIT stack limit on a pathological input). */
int pretok_run(const PreTokenizer *p, const char *text, size_t len, uint32_t base,
               PreTokPieces *out, PreTokScratch *s, CrError *e);

/* Translate an Oniguruma (Ruby syntax) pattern to PCRE2: \s \S -> the White_Space
 * class, \h \H -> hex digits (Oniguruma's meaning, not PCRE2's horizontal space),
 * \w \W -> Alphabetic, marks, numbers and connector punctuation (as Oniguruma). Malloc'd. */
char *pretok_translate_regex(const char *onig);

#endif
