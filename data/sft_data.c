/* data/sft_data.c — see sft_data.h */
#include "data/sft_data.h"
#include "data/jsonl.h"
#include "core/alloc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *sft_role_name(SftRole r) {
    switch (r) {
    case SFT_SYSTEM: return "system";
    case SFT_USER: return "user";
    case SFT_ASSISTANT: return "assistant";
    }
    return "?";
}

static void ex_clear(SftExample *x) {
    for (int i = 0; i < x->n_messages; i++) free(x->contents[i]);
    free(x->contents);
    free(x->roles);
    free(x->prompt);
    free(x->completion);
    free(x->fim_prefix);
    free(x->fim_suffix);
    free(x->fim_middle);
    free(x->repo);
    free(x->commit);
    free(x->path);
    memset(x, 0, sizeof *x);
}

void sft_free(SftExample *ex, int n) {
    if (!ex) return;
    for (int i = 0; i < n; i++) ex_clear(&ex[i]);
    free(ex);
}

static int parse_messages(const JsonlIter *it, const cJSON *msgs, SftExample *x, CrError *e) {
    if (!cJSON_IsArray(msgs)) return jsonl_field_error(it, e, "", "messages", "expected an array");
    int n = cJSON_GetArraySize(msgs);
    if (n == 0) return jsonl_field_error(it, e, "", "messages", "empty");
    x->roles = cr_calloc((size_t)n, sizeof(SftRole));
    x->contents = cr_calloc((size_t)n, sizeof(char *));
    int n_assistant = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        char where[64];
        snprintf(where, sizeof where, "messages[%d]", x->n_messages);
        if (!cJSON_IsObject(m)) return jsonl_field_error(it, e, "", where, "expected an object {\"role\",\"content\"}");
        char *role = NULL;
        if (jsonl_str(it, m, where, "role", 1, &role, e) < 0) return -1;
        SftRole r;
        if (strcmp(role, "system") == 0) r = SFT_SYSTEM;
        else if (strcmp(role, "user") == 0) r = SFT_USER;
        else if (strcmp(role, "assistant") == 0) r = SFT_ASSISTANT;
        else {
            jsonl_field_error(it, e, where, "role", "'%.64s' is not one of system, user, assistant", role);
            free(role);
            return -1;
        }
        free(role);
        char *content = NULL;
        if (jsonl_str(it, m, where, "content", 1, &content, e) < 0) return -1;
        x->roles[x->n_messages] = r;
        x->contents[x->n_messages++] = content;
        n_assistant += r == SFT_ASSISTANT;
    }
    if (n_assistant == 0)
        return jsonl_field_error(it, e, "", "messages", "no assistant turn (nothing to train on)");
    return 0;
}

int sft_parse(const char *buf, size_t len, const char *name, SftExample **out, int *n, CrError *e) {
    *out = NULL;
    *n = 0;
    JsonlIter it;
    jsonl_iter_init(&it, buf, len, name);
    int cap = 16, cnt = 0;
    SftExample *xs = cr_malloc(sizeof(SftExample) * (size_t)cap);
    for (;;) {
        cJSON *o = NULL;
        int r = jsonl_next(&it, &o, e);
        if (r == 0) break;
        if (r < 0) { sft_free(xs, cnt); return -1; }
        if (cnt == cap) {
            cap *= 2;
            xs = cr_realloc(xs, sizeof(SftExample) * (size_t)cap);
        }
        SftExample *x = &xs[cnt];
        memset(x, 0, sizeof *x);
        x->line = it.line;
        const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(o, "messages");
        if (msgs) r = parse_messages(&it, msgs, x, e);
        else if (cJSON_GetObjectItemCaseSensitive(o, "fim_middle")) {
            r = jsonl_str(&it, o, "", "fim_prefix", 1, &x->fim_prefix, e);
            if (r == 0) r = jsonl_str(&it, o, "", "fim_suffix", 1, &x->fim_suffix, e);
            if (r == 0) r = jsonl_str(&it, o, "", "fim_middle", 1, &x->fim_middle, e);
        }
        else if (cJSON_GetObjectItemCaseSensitive(o, "prompt") || cJSON_GetObjectItemCaseSensitive(o, "completion")) {
            r = jsonl_str(&it, o, "", "prompt", 1, &x->prompt, e);
            if (r == 0) r = jsonl_str(&it, o, "", "completion", 1, &x->completion, e);
        } else
            r = cr_error_set(e, "%s:%d: expected {\"messages\":[...]}, {\"prompt\",\"completion\"} or {\"fim_prefix\",\"fim_suffix\",\"fim_middle\"}",
                             it.name, it.line);
        if (r == 0) r = jsonl_str(&it, o, "", "repo", 0, &x->repo, e);
        if (r == 0) r = jsonl_str(&it, o, "", "commit", 0, &x->commit, e);
        if (r == 0) r = jsonl_str(&it, o, "", "path", 0, &x->path, e);
        cJSON_Delete(o);
        if (r < 0) { ex_clear(x); sft_free(xs, cnt); return -1; }
        cnt++;
    }
    if (cnt == 0) {
        free(xs);
        return cr_error_set(e, "%s: no examples in file", it.name);
    }
    *out = xs;
    *n = cnt;
    return 0;
}

int sft_load(const char *path, SftExample **out, int *n, CrError *e) {
    size_t len;
    char *buf = jsonl_read(path, &len, e);
    if (!buf) return -1;
    int rc = sft_parse(buf, len, path, out, n, e);
    free(buf);
    return rc;
}
