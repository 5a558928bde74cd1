/* grpo/task_prompt.c — see task_prompt.h */
#include "grpo/task_prompt.h"
#include "core/alloc.h"
#include "data/tokenizer.h"

#include <stdlib.h>
#include <string.h>

int prompt_format_parse(const char *s, PromptFormat *out, CrError *e) {
    if (!s || !strcmp(s, "chat")) { *out = PROMPT_CHAT; return 0; }
    if (!strcmp(s, "raw")) { *out = PROMPT_RAW; return 0; }
    return cr_error_set(e, "--prompt-format: expected chat or raw, got '%s'", s);
}

int task_prompt_encode(const Tokenizer *tok, const Task *t, PromptFormat f, TokenSeq *out, CrError *e) {
    if (f == PROMPT_CHAT) {
        SftRole role = SFT_USER;
        char *content = t->prompt;
        return chat_encode(tok, &role, &content, 1, 1, out, e);
    }
    const char *text = t->program_prefix ? t->program_prefix : t->prompt;
    int n = 0;
    int32_t *ids = tokenizer_encode(tok, text, strlen(text), 0, &n);
    int bos = tokenizer_bos_id(tok);
    int extra = bos >= 0 ? 1 : 0;
    out->n = n + extra;
    out->ids = cr_malloc(sizeof(int32_t) * (size_t)(out->n ? out->n : 1));
    out->loss = cr_calloc((size_t)(out->n ? out->n : 1), 1);
    if (extra) out->ids[0] = bos;
    if (n) memcpy(out->ids + extra, ids, sizeof(int32_t) * (size_t)n);
    free(ids);
    if (out->n == 0) return cr_error_set(e, "task %s: empty prompt", t->id ? t->id : "?");
    return 0;
}

static const char *const k_raw_python_stops[] = {"\nclass", "\ndef", "\n#", "\nif", "\nprint"};

const char *const *task_prompt_stops(const Task *t, PromptFormat f, int *n) {
    if (f == PROMPT_RAW && t->program_prefix && t->test_code && t->language && !strcmp(t->language, "python")) {
        *n = (int)(sizeof k_raw_python_stops / sizeof k_raw_python_stops[0]);
        return k_raw_python_stops;
    }
    *n = 0;
    return NULL;
}
