/* data/tokenizer.h — byte-level BPE tokenizers from Hugging Face tokenizer.json files
 * (DeepSeek-Coder-V2, DeepSeek-V2, GPT-2-style), and a trainer that writes them.
 * Defines: Tokenizer, tokenizer_load, tokenizer_load_json, tokenizer_free,
 *          tokenizer_encode, tokenizer_decode, tokenizer_token_to_id,
 *          tokenizer_vocab_size, tokenizer_bos_id, tokenizer_eos_id,
 *          tokenizer_fim_ids, tokenizer_train.
 *
 * Encoding follows HF `tokenizers` (checked id for id against it, see
 * tests/reference/make_tokenizer_fixtures.py): added tokens are cut out of the raw
 * text first (leftmost-longest; lstrip/rstrip/single_word/normalized flags), the
 * rest goes through the pre-tokenizer (data/pretokenizer.h) and BPE
 * (data/bpe.h). Encode never adds BOS/EOS (HF add_special_tokens=False): callers
 * prepend tokenizer_bos_id() themselves. The post_processor is ignored.
 *
 * Invalid UTF-8 (HF cannot take it: Python strings are always valid): every byte
 * that is not part of a well-formed sequence becomes a piece of its own, encoded
 * as that byte's token, and the valid runs around it are encoded as if they were
 * separate texts. So decode(encode(b)) == b for ANY byte string b (given that the
 * vocabulary has all 256 byte tokens, as byte-level BPE vocabularies do).
 *
 * Unicode: character properties (\p{L}, \p{N}, ...) come from the system PCRE2 (10.42:
 * Unicode 14); HF's engines are newer, so code points assigned after Unicode 14 can
 * split differently under patterns that use properties. DeepSeek's own classes are
 * explicit code points, unaffected except for its Digits step (\p{N}).
 *
 * A loaded Tokenizer is read-only: concurrent encode/decode calls are safe. */
#ifndef CRUCIBLE_DATA_TOKENIZER_H
#define CRUCIBLE_DATA_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

typedef struct Tokenizer Tokenizer;

/* Load tokenizer.json. BOS/EOS are taken from a tokenizer_config.json in the same
 * folder when present and parseable (bos_token / eos_token), else from well-known
 * names (<｜begin▁of▁sentence｜>, <|endoftext|>, <s>, ...). NULL + e on error (the
 * message names the file and the JSON field). */
Tokenizer *tokenizer_load(const char *path, CrError *e);
/* Same from an in-memory JSON text; name is used in error messages. */
Tokenizer *tokenizer_load_json(const char *json, size_t len, const char *name, CrError *e);
void tokenizer_free(Tokenizer *t);

/* ids malloc'd (never NULL; *n_out may be 0). parse_special != 0 matches special
 * added tokens inside text (HF default); 0 treats them as plain text (HF
 * encode_special_tokens=True; non-special added tokens are still matched).
 * len must be < 4 GiB. If PCRE2 itself fails on a piece (its JIT stack limit — not
 * seen on any input, including 5 MB single runs), that piece is encoded byte by
 * byte and the failure is printed on stderr: ids still decode to the text. */
int32_t *tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int parse_special, int *n_out);
/* Concatenated raw bytes of the tokens (added tokens as their content; unknown ids
 * -> ""), malloc'd + NUL; the bytes may be invalid UTF-8 (see utf8_sanitize). */
char *tokenizer_decode(const Tokenizer *t, const int32_t *ids, int n, size_t *len_out);
/* Raw bytes of one token (NULL for unknown ids; *len gets the length). Not NUL-terminated. */
const char *tokenizer_token_bytes(const Tokenizer *t, int32_t id, size_t *len);
/* Id of a token by its tokenizer.json spelling ("Ġthe", "<｜fim▁hole｜>"); -1 if absent. */
int tokenizer_token_to_id(const Tokenizer *t, const char *token);
int tokenizer_vocab_size(const Tokenizer *t);        /* max id + 1 */
int tokenizer_bos_id(const Tokenizer *t);            /* -1 if absent */
int tokenizer_eos_id(const Tokenizer *t);            /* -1 if absent */
/* FIM markers: prefix = fim_begin, suffix = fim_hole, middle = fim_end. Each -1 if
 * absent; returns 0 when all three exist, else -1. */
int tokenizer_fim_ids(const Tokenizer *t, int *prefix, int *suffix, int *middle);

/* Train a byte-level BPE tokenizer with DeepSeek's pre-tokenizer on the files and
 * write tokenizer.json (see data/bpe_train.h for the details). vocab_size counts
 * everything: 256 byte tokens + merges + the 5 DeepSeek special tokens. */
int tokenizer_train(const char *const *corpus_paths, int n_paths, int vocab_size, const char *out_path, CrError *e);

#endif
