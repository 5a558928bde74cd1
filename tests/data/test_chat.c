/* tests/data/test_chat.c — chat template and FIM encodings against Hugging Face
 * (tests/fixtures/data/chat_expected.json, made by tests/reference/make_chat_fixtures.py
 * with transformers apply_chat_template and tokenizers offsets). */
#include "tests/test.h"
#include "data/chat.h"
#include "data/sft_data.h"
#include "core/alloc.h"
#include "core/file.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define FIX_TOK "tests/fixtures/data/chat_tokenizer.json"
#define FIX_EXP "tests/fixtures/data/chat_expected.json"

static cJSON *load_expected(void) {
    CrError e;
    size_t n;
    char *t = cr_read_file(FIX_EXP, &n, &e);
    if (!t) return NULL;
    cJSON *j = cJSON_ParseWithLength(t, n);
    free(t);
    return j;
}

/* roles/contents of a fixture conversation (caller frees the arrays, not the strings) */
static int conv(const cJSON *c, SftRole **roles, char ***contents) {
    const cJSON *msgs = cJSON_GetObjectItem(c, "messages");
    int n = cJSON_GetArraySize(msgs);
    *roles = cr_calloc((size_t)n, sizeof(SftRole));
    *contents = cr_calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        const cJSON *m = cJSON_GetArrayItem(msgs, i);
        const char *r = cJSON_GetObjectItem(m, "role")->valuestring;
        (*roles)[i] = !strcmp(r, "system") ? SFT_SYSTEM : !strcmp(r, "user") ? SFT_USER : SFT_ASSISTANT;
        (*contents)[i] = cJSON_GetObjectItem(m, "content")->valuestring;
    }
    return n;
}

TEST(data_chat_render_matches_hf_template) {
    cJSON *x = load_expected();
    CHECK(x != NULL);
    if (!x) return;
    const cJSON *c;
    int k = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(x, "chats")) {
        SftRole *roles; char **contents;
        int n = conv(c, &roles, &contents);
        char *text = chat_render(roles, contents, n, cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt")),
                                 "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>");
        CHECKF(strcmp(text, cJSON_GetObjectItem(c, "text")->valuestring) == 0, "chat %d renders differently", k);
        free(text); free(roles); free(contents);
        k++;
    }
    CHECK(k >= 8);
    cJSON_Delete(x);
}

#include "data/tokenizer.h"

static int same_seq(const TokenSeq *s, const cJSON *ids, const cJSON *loss) {
    if (s->n != cJSON_GetArraySize(ids)) return 0;
    for (int i = 0; i < s->n; i++) {
        if (s->ids[i] != cJSON_GetArrayItem(ids, i)->valueint) return 0;
        if (loss && s->loss[i] != cJSON_GetArrayItem(loss, i)->valueint) return 0;
    }
    return 1;
}

TEST(data_chat_encode_matches_hf) {
    CrError e;
    Tokenizer *t = tokenizer_load(FIX_TOK, &e);
    CHECKF(t != NULL, "%s", e.msg);
    cJSON *x = load_expected();
    CHECK(x != NULL);
    if (!t || !x) return;
    CHECK(tokenizer_bos_id(t) == cJSON_GetObjectItem(x, "bos")->valueint);
    const cJSON *c;
    int k = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(x, "chats")) {
        SftRole *roles; char **contents;
        int n = conv(c, &roles, &contents);
        TokenSeq s;
        CHECK(chat_encode(t, roles, contents, n, cJSON_IsTrue(cJSON_GetObjectItem(c, "add_generation_prompt")), &s, &e) == 0);
        CHECKF(same_seq(&s, cJSON_GetObjectItem(c, "ids"), NULL), "chat %d: ids differ from HF apply_chat_template", k);
        CHECKF(same_seq(&s, cJSON_GetObjectItem(c, "ids"), cJSON_GetObjectItem(c, "loss")), "chat %d: loss mask differs", k);
        token_seq_free(&s);
        free(roles); free(contents);
        k++;
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(x, "fims")) {
        const char *p = cJSON_GetObjectItem(c, "prefix")->valuestring, *sf = cJSON_GetObjectItem(c, "suffix")->valuestring,
                   *m = cJSON_GetObjectItem(c, "middle")->valuestring;
        TokenSeq s;
        CHECK(fim_encode(t, p, sf, m, &s, &e) == 0);
        CHECKF(same_seq(&s, cJSON_GetObjectItem(c, "ids"), cJSON_GetObjectItem(c, "loss")), "fim '%s': differs from HF", p);
        token_seq_free(&s);
        CHECK(fim_encode(t, p, sf, NULL, &s, &e) == 0);
        CHECK(same_seq(&s, cJSON_GetObjectItem(c, "prompt_ids"), NULL));
        token_seq_free(&s);
    }
    /* prompt/completion: BOS + prompt + completion + EOS, loss on completion + EOS */
    const char *sft = "{\"prompt\":\"def f():\",\"completion\":\"\\n    return 1\\n\"}\n"
                      "{\"fim_prefix\":\"a = \",\"fim_suffix\":\"\\n\",\"fim_middle\":\"1\"}\n";
    SftExample *xs; int nx;
    CHECK(sft_parse(sft, strlen(sft), "s.jsonl", &xs, &nx, &e) == 0 && nx == 2);
    TokenSeq s;
    CHECK(sft_example_encode(t, &xs[0], &s, &e) == 0);
    int nc = 0;
    int32_t *cids = tokenizer_encode(t, xs[0].completion, strlen(xs[0].completion), 0, &nc);
    int nl = 0;
    for (int i = 0; i < s.n; i++) nl += s.loss[i];
    CHECK(s.ids[0] == tokenizer_bos_id(t) && s.ids[s.n - 1] == tokenizer_eos_id(t) && nl == nc + 1);
    CHECK(s.loss[s.n - nc - 2] == 0 && s.loss[s.n - nc - 1] == 1);
    size_t dl;
    char *dec = tokenizer_decode(t, s.ids + 1, s.n - 2, &dl);
    CHECK(dec && strcmp(dec, "def f():\n    return 1\n") == 0);
    free(dec); free(cids);
    token_seq_free(&s);
    int fb, fh, fe;
    CHECK(tokenizer_fim_ids(t, &fb, &fh, &fe) == 0);
    CHECK(sft_example_encode(t, &xs[1], &s, &e) == 0 && s.ids[1] == fb);
    token_seq_free(&s);
    sft_free(xs, nx);
    cJSON_Delete(x);
    tokenizer_free(t);
}
