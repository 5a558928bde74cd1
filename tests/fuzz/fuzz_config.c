/* tests/fuzz/fuzz_config.c — libFuzzer target for config.json parsing: any text is either
 * refused with a message or parsed into a config that validates, and whose JSON form
 * (model_config_to_json) parses back to the identical config. */
#include "model/config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) abort();
    memcpy(text, data, size);
    text[size] = 0;
    ModelConfig c, d;
    CrError e;
    if (model_config_parse(&c, text, "fuzz.json", &e) == 0) {
        if (model_config_validate(&c, "fuzz.json", &e) != 0) abort();
        char *js = model_config_to_json(&c);
        if (model_config_parse(&d, js, "roundtrip", &e) != 0 || memcmp(&c, &d, sizeof c) != 0) abort();
        free(js);
    } else if (!memchr(e.msg, 0, sizeof e.msg) || !e.msg[0]) {
        abort();
    }
    free(text);
    return 0;
}
