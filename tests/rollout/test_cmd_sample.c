/* tests/rollout/test_cmd_sample.c — `crucible sample` end to end on the tiny config with a
 * trained tokenizer, and stop strings on real decoded text (split across tokens). */
#include "tests/test.h"
#include "tests/util.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "data/tokenizer.h"
#include "model/model.h"
#include "rollout/rollout.h"

/* DIR/model (tiny config, random weights, trained tokenizer whose ids fill the model's
 * whole vocabulary, so that every sampled id decodes to bytes); 0 on success. */
static int make_tiny(const char *dir) {
    if (test_make_tiny_model(dir, 7)) return -1;
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp %s/tokenizer.json %s/tok.json", dir, dir);
    return system(cmd);
}

static char *run_capture(const char *cmd, int *status) {
    FILE *f = popen(cmd, "r");
    if (!f) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t k;
    while ((k = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += k;
        if (n + 1 >= cap) buf = realloc(buf, cap *= 2);
    }
    buf[n] = 0;
    *status = pclose(f);
    return buf;
}

TEST(rollout_cmd_sample_jsonl) {
    char *dir = test_tmpdir();
    if (make_tiny(dir) != 0) SKIP("could not build the tiny model with the CLI (%s)", test_crucible_bin());
    char path[512], cmd[2048];
    snprintf(path, sizeof path, "%s/p.jsonl", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"prompt\": \"int main(void) {\"}\n\n{\"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"},"
          " {\"role\": \"user\", \"content\": \"Sum two ints in C.\"}]}\n{\"prompt\": \"x\"}\n", f);
    fclose(f);
    int st;
    snprintf(cmd, sizeof cmd, "%s sample --model %s/model --prompts %s -n 3 --temperature 0.8 --top-p 0.9 "
             "--max-new-tokens 9 --seed 5 --batch-prompts 2 2>/dev/null", test_crucible_bin(), dir, path);
    char *out = run_capture(cmd, &st);
    CHECKF(st == 0, "exit status %d", st);
    /* same seed, different serving batch: identical output */
    snprintf(cmd, sizeof cmd, "%s sample --model %s/model --prompts %s -n 3 --temperature 0.8 --top-p 0.9 "
             "--max-new-tokens 9 --seed 5 --batch-prompts 3 2>/dev/null", test_crucible_bin(), dir, path);
    char *out2 = run_capture(cmd, &st);
    CHECK(st == 0 && out && out2 && strcmp(out, out2) == 0);
    int lines = 0;
    for (char *line = strtok(out, "\n"); line; line = strtok(NULL, "\n"), lines++) {
        cJSON *j = cJSON_Parse(line);
        CHECKF(j != NULL, "not JSON: %.80s", line);
        if (!j) continue;
        cJSON *pi = cJSON_GetObjectItem(j, "prompt_index"), *ss = cJSON_GetObjectItem(j, "samples");
        CHECK(cJSON_IsNumber(pi) && pi->valueint == lines);
        CHECK(cJSON_IsArray(ss) && cJSON_GetArraySize(ss) == 3);
        for (cJSON *s = ss ? ss->child : NULL; s; s = s->next) {
            cJSON *ids = cJSON_GetObjectItem(s, "token_ids"), *lp = cJSON_GetObjectItem(s, "logprobs");
            cJSON *fr = cJSON_GetObjectItem(s, "finish_reason");
            CHECK(cJSON_IsString(cJSON_GetObjectItem(s, "text")));
            int n = cJSON_GetArraySize(ids);
            CHECK(n >= 1 && n <= 9 && cJSON_GetArraySize(lp) == n);
            CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(s, "logprobs_model")) == n);
            CHECK(cJSON_IsString(fr) && (!strcmp(fr->valuestring, "length") ? n == 9 : !strcmp(fr->valuestring, "stop")));
            for (cJSON *x = lp ? lp->child : NULL; x; x = x->next) CHECK(x->valuedouble <= 0);
        }
        cJSON_Delete(j);
    }
    CHECK(lines == 3);
    free(out);
    free(out2);
    /* bad input: a malformed line is an error naming file and line, nothing on stdout */
    f = fopen(path, "w");
    fputs("{\"prompt\": \"ok\"}\n{\"prompt\": 3}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s sample --model %s/model --prompts %s -n 2 2>&1 >/dev/null", test_crucible_bin(), dir, path);
    char *err = run_capture(cmd, &st);
    CHECK(st != 0 && err && strstr(err, "p.jsonl:2") && strstr(err, "prompt"));
    free(err);
    snprintf(cmd, sizeof cmd, "%s sample --model %s/model --prompts %s/none.jsonl 2>&1", test_crucible_bin(), dir, dir);
    err = run_capture(cmd, &st);
    CHECK(st != 0 && err && strstr(err, "none.jsonl"));
    free(err);
    /* a prompt longer than the context (512) */
    f = fopen(path, "w");
    fputs("{\"prompt\": \"", f);
    for (int i = 0; i < 800; i++) fputs("int x; ", f);
    fputs("\"}\n", f);
    fclose(f);
    snprintf(cmd, sizeof cmd, "%s sample --model %s/model --prompts %s 2>&1 >/dev/null", test_crucible_bin(), dir, path);
    err = run_capture(cmd, &st);
    CHECKF(st != 0 && err && strstr(err, "max_position_embeddings"), "%s", err ? err : "");
    free(err);
    free(dir);
}

TEST(rollout_stop_strings_on_decoded_text) {
    char *dir = test_tmpdir();
    if (make_tiny(dir) != 0) SKIP("could not build the tiny model with the CLI");
    char p[512];
    CrError e;
    snprintf(p, sizeof p, "%s/model", dir);
    Model *m = model_load(p, &e);
    snprintf(p, sizeof p, "%s/tok.json", dir);
    Tokenizer *tok = tokenizer_load(p, &e);
    CHECK(m && tok);
    if (!m || !tok) return;
    RolloutEngine *r = rollout_create(m, tok, 2048, &e);
    int n = 0;
    int32_t *ids = tokenizer_encode(tok, "int main", 8, 1, &n);
    const int32_t *pp[1] = {ids};
    SampleParams sp = {0};
    sp.max_new_tokens = 40;
    sp.ignore_eos = 1;
    Sample a, b;
    CHECK(rollout_generate(r, pp, &n, 1, 1, &sp, 0, &a, &e) == 0);
    CHECK(a.text && a.text_len > 0);
    /* a stop string straddling a token boundary: the last byte of token k and the first of k+1 */
    size_t off = 0, cut = 0;
    int k_split = -1;
    for (int k = 0; k + 1 < a.n_tokens && k_split < 0; k++) {
        size_t l1, l2;
        tokenizer_token_bytes(tok, a.token_ids[k], &l1);
        tokenizer_token_bytes(tok, a.token_ids[k + 1], &l2);
        off += l1;
        if (l1 >= 1 && l2 >= 1 && off >= 2) {
            k_split = k + 1;
            cut = off - 1;
        }
    }
    CHECK(k_split > 0);
    if (k_split > 0) {
        char stop[3] = {a.text[cut], a.text[cut + 1], 0};
        /* the earliest occurrence decides where text is cut */
        char *first = memmem(a.text, a.text_len, stop, 2);
        size_t want_cut = (size_t)(first - a.text);
        const char *stops[1] = {stop};
        sp.stop_strings = stops;
        sp.n_stop_strings = 1;
        CHECK(rollout_generate(r, pp, &n, 1, 1, &sp, 0, &b, &e) == 0);
        CHECK(b.finish_reason == 0 && b.text_len == want_cut && !memcmp(b.text, a.text, want_cut));
        /* tokens stop at the one completing the stop string */
        size_t bytes = 0;
        int k_end = 0;
        while (bytes < want_cut + 2) {
            size_t l;
            tokenizer_token_bytes(tok, a.token_ids[k_end++], &l);
            bytes += l;
        }
        CHECKF(b.n_tokens == k_end, "tokens %d, expected %d", b.n_tokens, k_end);
        CHECK(!memcmp(b.token_ids, a.token_ids, sizeof(int32_t) * b.n_tokens));
        sample_free(&b);
    }
    /* EOS default: make EOS the first greedy token's id and it stops there, kept in ids */
    sp.n_stop_strings = 0;
    sp.ignore_eos = 0;
    sp.stop_ids = &a.token_ids[2];
    sp.n_stop_ids = 1;
    CHECK(rollout_generate(r, pp, &n, 1, 1, &sp, 0, &b, &e) == 0);
    int first_hit = 0;
    while (a.token_ids[first_hit] != a.token_ids[2]) first_hit++;
    CHECK(b.finish_reason == 0 && b.n_tokens == first_hit + 1 && b.token_ids[first_hit] == a.token_ids[2]);
    size_t tl;
    char *dec = tokenizer_decode(tok, a.token_ids, first_hit, &tl);
    CHECK(b.text_len == tl && !memcmp(b.text, dec, tl));  /* stop token not in text */
    free(dec);
    sample_free(&b);
    sample_free(&a);
    free(ids);
    rollout_free(r);
    tokenizer_free(tok);
    model_free(m);
    free(dir);
}
