/* data/bpe_train.h — train a byte-level BPE tokenizer and write it as tokenizer.json.
 * Defines: BpeTrainOptions, bpe_train_files, bpe_train_text, deepseek_pretokenizer_json,
 *          DEEPSEEK_SPECIAL_TOKENS.
 *
 * The corpus is pre-tokenized exactly like the encoder (DeepSeek-V2's pre-tokenizer,
 * spec §10.2; ill-formed UTF-8 bytes become single-byte pieces; the DeepSeek special
 * tokens are cut out of the text first), words are counted, and merges are learned
 * greedily: the most frequent adjacent pair (ties: the smallest (left id, right id))
 * becomes a new token, until the vocabulary is full or no pair occurs twice.
 * Output ids: 0..255 the byte tokens in byte order, then merge results in order of
 * creation, then the 5 special tokens as added special tokens. A merge whose result
 * string already exists reuses that id (like HF BpeTrainer), so the vocabulary can end
 * up smaller than asked when the corpus runs out of pairs: the real size is reported. */
#ifndef CRUCIBLE_DATA_BPE_TRAIN_H
#define CRUCIBLE_DATA_BPE_TRAIN_H

#include <stddef.h>
#include <cjson/cJSON.h>
#include "core/error.h"

#define DEEPSEEK_N_SPECIAL 5
/* BOS, EOS, FIM hole, FIM begin, FIM end (spec §10.3; U+FF5C and U+2581 inside). */
extern const char *const DEEPSEEK_SPECIAL_TOKENS[DEEPSEEK_N_SPECIAL];

/* DeepSeek-V2's "pre_tokenizer" JSON value, character classes built from the exact
 * code points of spec §10.2 (not NFC-normalised glyphs). Caller frees (cJSON_Delete). */
cJSON *deepseek_pretokenizer_json(void);

typedef struct BpeTrainStats {
    int vocab_size;   /* total ids written (BPE + special) */
    int n_merges;
    size_t n_words, n_bytes;
} BpeTrainStats;

/* Train on the bytes text[0..len) and return the tokenizer.json document as a
 * malloc'd string, or NULL with e set (vocab_size < 256 + 5 + 1). stats may be NULL. */
char *bpe_train_text(const char *text, size_t len, int vocab_size, BpeTrainStats *stats, CrError *e);

/* Train on the concatenation of the files (each file is pre-tokenized on its own)
 * and write out_path atomically. */
int bpe_train_files(const char *const *paths, int n_paths, int vocab_size, const char *out_path,
                    BpeTrainStats *stats, CrError *e);

#endif
