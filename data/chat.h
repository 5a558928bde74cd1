/* data/chat.h — training examples -> token ids + loss mask, in the formats of
 * DeepSeek-Coder-V2 (spec/deepseek-v2.md §10.4 chat template, §10.5 FIM).
 * Defines: TokenSeq, token_seq_free, chat_render, chat_encode, fim_encode,
 * completion_encode, sft_example_encode.
 *
 * loss[i] = 1 marks ids[i] as a training target (predicted from ids[0..i-1]); the
 * trainer shifts. The first token (BOS) is never a target.
 *
 * Chat (Coder-V2-Instruct):
 *   <BOS>{system}\n\nUser: {user}\n\nAssistant: {assistant}<EOS>User: ...\n\nAssistant:
 * The loss covers exactly the tokens of each assistant reply and its EOS. Encoding
 * is piecewise but split only where the pre-tokenizer always splits, so that the ids
 * equal a whole-string encoding of the rendered template (what HF
 * apply_chat_template(tokenize=True) gives): the text up to and including
 * "Assistant:" is one piece (loss 0), " " + reply is the next (loss 1), EOS (loss 1).
 * The template's space after "Assistant:" is encoded with the reply because the
 * pre-tokenizer attaches a single space to the following word (" def"): that first
 * token is in the loss, as HF's offset-based assistant mask would mark it; when the
 * space stays a token of its own (reply starting with a newline or empty), it is not.
 * Message contents are encoded with special-token parsing OFF: text such as
 * "<｜end▁of▁sentence｜>" inside a message stays text (HF would turn it into the
 * control token — a deliberate difference, so data cannot forge turn boundaries).
 *
 * FIM (PSM): <BOS><｜fim▁begin｜>{prefix}<｜fim▁hole｜>{suffix}<｜fim▁end｜>{middle}<EOS>,
 * loss on middle + EOS. With middle == NULL: the inference prompt (ends at fim_end).
 *
 * Prompt/completion: <BOS>{prompt}{completion}<EOS>, loss on completion + EOS. Prompt
 * and completion are encoded separately (the mask boundary is exact; a word spanning
 * the boundary is split there, as it is at inference when the prompt is encoded alone).
 *
 * Errors: -1 with e set when the tokenizer lacks BOS/EOS/FIM tokens. */
#ifndef CRUCIBLE_DATA_CHAT_H
#define CRUCIBLE_DATA_CHAT_H

#include <stdint.h>
#include "core/error.h"
#include "data/sft_data.h"

typedef struct Tokenizer Tokenizer;

typedef struct TokenSeq {
    int32_t *ids;
    uint8_t *loss;
    int n;
} TokenSeq;

void token_seq_free(TokenSeq *s);

/* The template's text with the given BOS/EOS strings (malloc'd). */
char *chat_render(const SftRole *roles, char *const *contents, int n, int add_generation_prompt,
                  const char *bos, const char *eos);
int chat_encode(const Tokenizer *t, const SftRole *roles, char *const *contents, int n,
                int add_generation_prompt, TokenSeq *out, CrError *e);
int fim_encode(const Tokenizer *t, const char *prefix, const char *suffix, const char *middle,
               TokenSeq *out, CrError *e);
int completion_encode(const Tokenizer *t, const char *prompt, const char *completion, TokenSeq *out,
                      CrError *e);
/* Any SftExample (chat, prompt/completion, FIM) -> ids + loss mask. */
int sft_example_encode(const Tokenizer *t, const SftExample *x, TokenSeq *out, CrError *e);

#endif
