/* tests/cli/test_cmd_init_score.c — `crucible init` and `crucible score`, run as the built
 * binary: init is deterministic per seed and copies the tokenizer; score reproduces the
 * log-probs transformers computes on a checkpoint transformers wrote
 * (tests/reference/gen_model_io.py: BF16, sharded) and agrees bit for bit with an
 * in-process model_forward; bad input exits non-zero naming the file and field. */
#include "tests/test.h"
#include "core/alloc.h"
#include "core/file.h"
#include "model/model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define FIX "tests/fixtures/model_io"

/* Run `crucible ARGS`; returns the exit status, stdout and stderr (malloc'd). */
static int run(const char *args, char **out, char **err) {
    char *dir = test_tmpdir();
    char *ep = cr_path_join(dir, "stderr");
    size_t n = strlen(args) + strlen(ep) + 256;
    char *cmd = cr_malloc(n);
    snprintf(cmd, n, "%s %s 2>%s", test_crucible_bin(), args, ep);
    FILE *f = popen(cmd, "r");
    if (!f) CR_DIE("popen");
    size_t cap = 1 << 16, len = 0;
    char *buf = cr_malloc(cap);
    size_t r;
    while ((r = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += r;
        if (len + 1 >= cap) buf = cr_realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = pclose(f);
    *out = buf;
    CrError e;
    *err = cr_read_file(ep, NULL, &e);
    if (!*err) *err = cr_strdup("");
    free(cmd), free(ep), free(dir);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static char *write_tmp(const char *name, const char *text) {
    char *dir = test_tmpdir();
    char *p = cr_path_join(dir, name);
    CrError e;
    if (cr_write_file_atomic(p, text, strlen(text), &e)) CR_DIE("%s", e.msg);
    free(dir);
    return p;
}

TEST(cli_init_deterministic_and_tokenizer) {
    char *dir = test_tmpdir();
    char args[1024], *out, *err;
    /* A real tokenizer (ids < 600) and the tiny config widened to 600 tokens. */
    const char *tp = "tests/fixtures/tokenizer/crucible_trained.json";
    CrError e;
    char *tok = cr_read_file(tp, NULL, &e), *cfgtxt = cr_read_file(FIX "/tiny_config.json", NULL, &e);
    CHECKF(tok && cfgtxt && strstr(cfgtxt, "\"vocab_size\": 64,"), "fixtures");
    if (!tok || !cfgtxt) return;
    char *v = strstr(cfgtxt, "\"vocab_size\": 64,");
    memcpy(v, "\"vocab_size\":600,", 17);
    char *cfg600 = write_tmp("config600.json", cfgtxt);
    const int seeds[3] = {7, 7, 8};
    char *w[3];
    for (int i = 0; i < 3; i++) {
        snprintf(args, sizeof args, "init --config %s --out %s/m%d --seed %d --tokenizer %s", cfg600, dir, i, seeds[i],
                 tp);
        int rc = run(args, &out, &err);
        CHECKF(rc == 0, "rc %d: %s", rc, err);
        cJSON *j = cJSON_Parse(out);
        CHECKF(j && cJSON_GetObjectItem(j, "params") && cJSON_GetObjectItem(j, "params")->valuedouble == 37264 + 2 * (600 - 64) * 32,
               "output: %s", out);
        cJSON_Delete(j);
        free(out), free(err);
        char sub[64];
        snprintf(sub, sizeof sub, "m%d/model.safetensors", i);
        char *p = cr_path_join(dir, sub);
        size_t len;
        w[i] = cr_read_file(p, &len, &e);
        CHECKF(w[i] && len > 100000, "%s", e.msg);
        free(p);
        snprintf(sub, sizeof sub, "m%d/tokenizer.json", i);
        p = cr_path_join(dir, sub);
        char *copied = cr_read_file(p, NULL, &e);
        CHECK(copied && !strcmp(copied, tok));
        free(copied), free(p);
    }
    if (w[0] && w[1] && w[2]) {
        CHECK(memcmp(w[0], w[1], 100000) == 0);   /* same seed, same bytes */
        CHECK(memcmp(w[0], w[2], 100000) != 0);   /* another seed */
    }
    free(w[0]), free(w[1]), free(w[2]);
    /* The weights follow the init contract: norms 1, Linear std = initializer_range (0.1). */
    snprintf(args, sizeof args, "%s/m0", dir);
    Model *m = model_load(args, &e);
    CHECKF(m != NULL, "%s", e.msg);
    if (m) {
        const ParamTensor *n = model_find_tensor(m, "model.norm.weight");
        const ParamTensor *q = model_find_tensor(m, "model.embed_tokens.weight");
        CHECK(n && m->params[n->offset] == 1.0f && m->params[n->offset + 31] == 1.0f);
        double s = 0;
        for (size_t i = 0; q && i < q->numel; i++) s += (double)m->params[q->offset + i] * m->params[q->offset + i];
        CHECK(q && fabs(sqrt(s / (double)q->numel) - 0.1) < 0.01);
        model_free(m);
    }
    /* Errors: missing --out (usage, 2); a tokenizer with ids beyond vocab_size; bad config. */
    snprintf(args, sizeof args, "init --config %s/tiny_config.json", FIX);
    CHECK(run(args, &out, &err) == 2 && strstr(err, "--out"));
    free(out), free(err);
    /* The fixture's largest id (model.vocab and added_tokens), to be named in the error. */
    long max_id = -1;
    cJSON *tj = cJSON_Parse(tok);
    cJSON *voc = cJSON_GetObjectItem(cJSON_GetObjectItem(tj, "model"), "vocab");
    for (cJSON *x = voc ? voc->child : NULL; x; x = x->next) if (x->valuedouble > max_id) max_id = (long)x->valuedouble;
    for (cJSON *x = cJSON_GetObjectItem(tj, "added_tokens") ? cJSON_GetObjectItem(tj, "added_tokens")->child : NULL; x;
         x = x->next)
        if (cJSON_GetObjectItem(x, "id")->valuedouble > max_id) max_id = (long)cJSON_GetObjectItem(x, "id")->valuedouble;
    cJSON_Delete(tj);
    CHECK(max_id >= 64 && max_id < 600);
    char want[32];
    snprintf(want, sizeof want, "token id %ld", max_id);
    snprintf(args, sizeof args, "init --config %s/tiny_config.json --out %s/bad --tokenizer %s", FIX, dir, tp);
    CHECKF(run(args, &out, &err) == 1 && strstr(err, want) && strstr(err, "vocab_size 64"), "%s", err);
    free(out), free(err);
    char *badcfg = write_tmp("config.json", "{\"hidden_size\": \"big\"}");
    snprintf(args, sizeof args, "init --config %s --out %s/bad", badcfg, dir);
    CHECKF(run(args, &out, &err) == 1 && strstr(err, "hidden_size") && strstr(err, "config.json"), "%s", err);
    free(out), free(err);
    char *bad = cr_path_join(dir, "bad");
    CHECK(!cr_file_exists(bad));   /* nothing written on failure */
    free(bad);
    free(badcfg), free(cfg600), free(cfgtxt), free(tok);
}

/* Parse score's stdout. */
static cJSON *score(TestCtx *t_, const char *model, const char *tokens) {
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "score --model %s --tokens %s", model, tokens);
    int rc = run(args, &out, &err);
    CHECKF(rc == 0, "rc %d: %s", rc, err);
    cJSON *j = cJSON_Parse(out);
    CHECKF(j && cJSON_IsArray(cJSON_GetObjectItem(j, "logprobs")) && cJSON_IsNumber(cJSON_GetObjectItem(j, "aux_loss")),
           "stdout: %s", out);
    free(out), free(err);
    return j;
}

TEST(cli_score_matches_transformers_on_hf_checkpoint) {
    CrError e;
    char *txt = cr_read_file(FIX "/score.json", NULL, &e);
    CHECKF(txt, "%s", e.msg);
    if (!txt) return;
    cJSON *want = cJSON_Parse(txt);
    cJSON *got = score(t_, FIX "/hf_tiny", FIX "/score.json");   /* extra "logprobs" key is ignored */
    if (!got || !want) return;
    cJSON *ws = cJSON_GetObjectItem(want, "logprobs")->child, *gs = cJSON_GetObjectItem(got, "logprobs")->child;
    int n = 0;
    double worst = 0;
    for (; ws && gs; ws = ws->next, gs = gs->next) {
        CHECK(cJSON_GetArraySize(ws) == cJSON_GetArraySize(gs));
        for (cJSON *a = ws->child, *b = gs->child; a && b; a = a->next, b = b->next, n++)
            worst = fmax(worst, fabs(a->valuedouble - b->valuedouble));
    }
    CHECK(!ws && !gs && n == 4 + 0 + 1 + 23);
    CHECKF(worst < 1e-5, "max |logp - transformers| = %.3g", worst);   /* both fp32; measured 5e-7 */
    cJSON_Delete(want);
    cJSON_Delete(got);
    free(txt);
}

TEST(cli_score_equals_model_forward) {
    char *dir = test_tmpdir();
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "init --config %s/tiny_config.json --out %s/m --seed 3", FIX, dir);
    CHECK(run(args, &out, &err) == 0);
    free(out), free(err);
    char *tok = write_tmp("t.json", "{\"sequences\": [[1,2,3,4],[5],[7,8,63,0,12]]}");
    snprintf(args, sizeof args, "%s/m", dir);
    cJSON *got = score(t_, args, tok);
    CrError e;
    Model *m = model_load(args, &e);
    CHECKF(m, "%s", e.msg);
    if (!m || !got) return;
    const int32_t toks[10] = {1, 2, 3, 4, 5, 7, 8, 63, 0, 12}, tg[10] = {2, 3, 4, -1, -1, 8, 63, 0, 12, -1};
    const int32_t cu[4] = {0, 4, 5, 10};
    Batch b = {.n_tokens = 10, .n_seqs = 3, .tokens = toks, .targets = tg, .cu_seqlens = cu};
    float lp[10], aux;
    CHECKF(model_forward(m, &b, lp, &aux, &e) == 0, "%s", e.msg);
    cJSON *s = cJSON_GetObjectItem(got, "logprobs")->child;
    for (int q = 0; q < 3 && s; q++, s = s->next) {
        CHECK(cJSON_GetArraySize(s) == cu[q + 1] - cu[q] - 1);
        int t = cu[q];
        for (cJSON *x = s->child; x; x = x->next, t++) CHECK((float)x->valuedouble == lp[t]);   /* %.9g round trip */
    }
    CHECK((float)cJSON_GetObjectItem(got, "aux_loss")->valuedouble == aux && aux > 0);
    model_free(m);
    cJSON_Delete(got);
    free(tok);
}

TEST(cli_score_bad_input) {
    char *dir = test_tmpdir();
    char args[1024], *out, *err;
    snprintf(args, sizeof args, "init --config %s/tiny_config.json --out %s/m", FIX, dir);
    CHECK(run(args, &out, &err) == 0);
    free(out), free(err);
    struct { const char *json, *n1, *n2; } cases[] = {
        {"{\"sequences\": [[1, 2], [3, 64]]}", "sequences[1][1]", "[0, 64)"},
        {"{\"sequences\": [[1, -1]]}", "sequences[0][1]", "token id"},
        {"{\"sequences\": [[1, 2.5]]}", "sequences[0][1]", "token id"},
        {"{\"sequences\": [[1, \"a\"]]}", "sequences[0][1]", "token id"},
        {"{\"sequences\": []}", "\"sequences\" is empty", NULL},
        {"{\"sequences\": [[1], []]}", "sequences[1] is empty", NULL},
        {"{\"sequences\": [5]}", "sequences[0]", "not an array"},
        {"{\"seqs\": [[1]]}", "\"sequences\"", "missing"},
        {"{\"sequences\": [[1, 2]", "not a JSON object", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *p = write_tmp("bad.json", cases[i].json);
        snprintf(args, sizeof args, "score --model %s/m --tokens %s", dir, p);
        int rc = run(args, &out, &err);
        CHECKF(rc == 1 && strstr(err, "bad.json") && strstr(err, cases[i].n1) && (!cases[i].n2 || strstr(err, cases[i].n2))
               && !*out, "case %zu: rc %d, stderr %s", i, rc, err);
        free(out), free(err), free(p);
    }
    /* Longer than max_position_embeddings (64). */
    char js[1024] = "{\"sequences\": [[";
    for (int i = 0; i < 65; i++) sprintf(js + strlen(js), "%s%d", i ? "," : "", i % 60);
    strcat(js, "]]}");
    char *p = write_tmp("long.json", js);
    snprintf(args, sizeof args, "score --model %s/m --tokens %s", dir, p);
    CHECKF(run(args, &out, &err) == 1 && strstr(err, "max_position_embeddings") && strstr(err, "long.json"), "%s", err);
    free(out), free(err), free(p);
    /* NaN in the weights: refused at load, naming tensor and file. */
    char *w = cr_path_join(dir, "m/model.safetensors");
    size_t len;
    CrError e;
    char *bytes = cr_read_file(w, &len, &e);
    const float nan = NAN;
    memcpy(bytes + len - 4, &nan, 4);   /* the last float of the last tensor (lm_head) */
    CHECK(cr_write_file_atomic(w, bytes, len, &e) == 0);
    p = write_tmp("ok.json", "{\"sequences\": [[1, 2]]}");
    snprintf(args, sizeof args, "score --model %s/m --tokens %s", dir, p);
    CHECKF(run(args, &out, &err) == 1 && strstr(err, "non-finite") && strstr(err, "lm_head.weight") &&
           strstr(err, "model.safetensors"), "%s", err);
    free(out), free(err), free(p), free(bytes), free(w);
    /* Missing model dir / flags. */
    snprintf(args, sizeof args, "score --model %s/nope --tokens x.json", dir);
    CHECK(run(args, &out, &err) == 1 && strstr(err, "nope"));
    free(out), free(err);
    CHECK(run("score --model x", &out, &err) == 2 && strstr(err, "--tokens"));
    free(out), free(err);
}
