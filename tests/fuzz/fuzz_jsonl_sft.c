/* tests/fuzz/fuzz_jsonl_sft.c — libFuzzer target: the SFT JSONL reader never crashes. */
#include "data/sft_data.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    SftExample *xs = NULL;
    int n = 0;
    CrError e;
    if (sft_parse((const char *)data, size, "fuzz.jsonl", &xs, &n, &e) == 0) {
        for (int i = 0; i < n; i++) {
            if (xs[i].n_messages == 0 && !(xs[i].prompt && xs[i].completion) && !(xs[i].fim_prefix && xs[i].fim_suffix && xs[i].fim_middle)) abort();
            for (int k = 0; k < xs[i].n_messages; k++)
                if (!xs[i].contents[k] || xs[i].roles[k] > SFT_ASSISTANT) abort();
        }
        sft_free(xs, n);
    }
    return 0;
}
