/* tests/fuzz/fuzz_jsonl_sft.c — libFuzzer target: the SFT JSONL reader never crashes,
 * and every example it accepts encodes (chat template / FIM / prompt-completion) into
 * ids + a loss mask with at least one target, using the small fixture tokenizer
 * (tests/fixtures/data/chat_tokenizer.json, loaded once; run from the repo root). */
#include "data/sft_data.h"
#include "data/chat.h"
#include "data/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>

static Tokenizer *g_tok;  /* fuzzer-owned, loaded on the first input */
static int g_tried;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!g_tried) {
        CrError e;
        g_tried = 1;
        g_tok = tokenizer_load("tests/fixtures/data/chat_tokenizer.json", &e);
    }
    SftExample *xs = NULL;
    int n = 0;
    CrError e;
    if (sft_parse((const char *)data, size, "fuzz.jsonl", &xs, &n, &e) == 0) {
        for (int i = 0; i < n; i++) {
            if (xs[i].n_messages == 0 && !(xs[i].prompt && xs[i].completion) &&
                !(xs[i].fim_prefix && xs[i].fim_suffix && xs[i].fim_middle)) abort();
            for (int k = 0; k < xs[i].n_messages; k++)
                if (!xs[i].contents[k] || xs[i].roles[k] > SFT_ASSISTANT) abort();
            if (g_tok) {
                TokenSeq s;
                if (sft_example_encode(g_tok, &xs[i], &s, &e) != 0) abort();
                int targets = 0;
                for (int k = 0; k < s.n; k++) targets += s.loss[k];
                if (targets == 0 || s.loss[0] != 0) abort();  /* EOS at least; BOS never */
                token_seq_free(&s);
            }
        }
        sft_free(xs, n);
    }
    return 0;
}
