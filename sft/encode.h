/* sft/encode.h — an SFT JSONL file -> token sequences with loss masks (sft/pack.h input).
 * Defines: SftEncoded, sft_encode_file, sft_encoded_free.
 *
 * Each line is encoded by data/chat.h (chat: loss on assistant replies + EOS;
 * prompt/completion: loss on completion + EOS; FIM lines: loss on middle + EOS). With
 * fim_rate > 0, a plain document ({"prompt": "", "completion": doc}, what `crucible
 * ingest` writes) becomes a PSM fill-in-the-middle example with probability fim_rate:
 * two cut points drawn uniformly over the document's bytes (moved back to UTF-8
 * character starts) split it into prefix / middle / suffix, encoded as
 *   <BOS><fim_begin>prefix<fim_hole>suffix<fim_end>middle<EOS>   (loss on middle + EOS).
 * The draw for line i comes from the stream (seed, "FIM", i): the same examples every
 * epoch and on resume. Chat examples and prompt/completion pairs with a non-empty
 * prompt are never transformed. Sequences longer than max_seq_len keep their head.
 * Errors: -1 with e naming FILE:LINE (sft_load's messages, or a tokenizer without
 * BOS/EOS/FIM tokens). Memory: release with sft_encoded_free. */
#ifndef CRUCIBLE_SFT_ENCODE_H
#define CRUCIBLE_SFT_ENCODE_H

#include "core/error.h"
#include "sft/pack.h"

typedef struct Tokenizer Tokenizer;

typedef struct SftEncoded {
    SeqExample *ex;   /* [n], in file order */
    int n;
} SftEncoded;

int sft_encode_file(const char *path, const Tokenizer *tok, double fim_rate, long seed, long max_seq_len,
                    SftEncoded *out, CrError *e);
void sft_encoded_free(SftEncoded *d);

#endif
