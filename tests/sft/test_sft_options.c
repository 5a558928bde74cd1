/* tests/sft/test_sft_options.c — SFT flags:
 *  - --fim-rate turns plain documents (and only them) into PSM FIM examples whose
 *    prefix + middle + suffix is the document, with the loss on middle + EOS exactly;
 *  - --grad-accum 2 over micro-batches of one example each gives the same losses and
 *    gradient norms at every step as one micro-batch of both examples (the loss is a
 *    mean over all target tokens of the step, whatever the micro-batches hold);
 *  - --eval-data / --eval-every record eval_loss at the right steps, and its value is the
 *    mean NLL of the data under the model of that step (checked against the training
 *    loss of the next step when train = eval data = one batch). */
#include "tests/test.h"
#include "tests/util.h"
#include "core/file.h"
#include "data/chat.h"
#include "data/runstore.h"
#include "data/sft_data.h"
#include "data/tokenizer.h"
#include "sft/encode.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *k_docs[] = {
    "def add(a, b):\n    return a + b\n",
    "int main(void) { return 0; }\n",
    "caf\xc3\xa9 = '\xe2\x82\xac' * 3  # unicode\n",
    "for i in range(10):\n    print(i)\n",
};

static int write_fim_data(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (int i = 0; i < 40; i++) {
        const char *d = k_docs[i % 4];
        fprintf(f, "{\"prompt\": \"\", \"completion\": \"");
        for (const char *p = d; *p; p++) {
            if (*p == '\n') fputs("\\n", f);
            else if (*p == '"') fputs("\\\"", f);
            else fputc(*p, f);
        }
        fprintf(f, "\"}\n");
    }
    fprintf(f, "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}, {\"role\": \"assistant\", \"content\": \"hello\"}]}\n");
    fprintf(f, "{\"prompt\": \"x = \", \"completion\": \"1\"}\n");
    return fclose(f);
}

static int find(const int32_t *ids, int n, int id) {
    for (int i = 0; i < n; i++) if (ids[i] == id) return i;
    return -1;
}

static char *decode(const Tokenizer *tok, const int32_t *ids, int n) {
    size_t len;
    return tokenizer_decode(tok, ids, n, &len);
}

TEST(sft_fim_rate_turns_plain_documents_into_fim) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 3) == 0);
    char data[1024], tp[1024];
    snprintf(data, sizeof data, "%s/docs.jsonl", d);
    snprintf(tp, sizeof tp, "%s/model/tokenizer.json", d);
    CHECK(write_fim_data(data) == 0);
    CrError e;
    Tokenizer *tok = tokenizer_load(tp, &e);
    CHECKF(tok != NULL, "%s", e.msg);
    if (FAILED()) return;
    int fb, fh, fe, bos = tokenizer_bos_id(tok), eos = tokenizer_eos_id(tok);
    CHECK(tokenizer_fim_ids(tok, &fb, &fh, &fe) == 0);
    SftExample *raw;
    int nraw;
    CHECK(sft_load(data, &raw, &nraw, &e) == 0 && nraw == 42);
    if (FAILED()) return;
    SftEncoded all, half, none, again;
    CHECK(sft_encode_file(data, tok, 1.0, 7, 4096, &all, &e) == 0 && all.n == 42);
    CHECK(sft_encode_file(data, tok, 0.5, 7, 4096, &half, &e) == 0 && half.n == 42);
    CHECK(sft_encode_file(data, tok, 0.0, 7, 4096, &none, &e) == 0 && none.n == 42);
    CHECK(sft_encode_file(data, tok, 0.5, 7, 4096, &again, &e) == 0 && again.n == 42);
    if (FAILED()) return;
    int nontrivial = 0;
    for (int i = 0; i < 40; i++) {
        const SeqExample *x = &all.ex[i];
        int ib = find(x->ids, x->n, fb), ih = find(x->ids, x->n, fh), ie = find(x->ids, x->n, fe);
        CHECKF(x->ids[0] == bos && ib == 1 && ih > ib && ie > ih && x->ids[x->n - 1] == eos, "doc %d is not PSM", i);
        if (ib != 1 || ih < 0 || ie < 0) continue;
        char *pre = decode(tok, x->ids + 2, ih - 2), *suf = decode(tok, x->ids + ih + 1, ie - ih - 1);
        char *mid = decode(tok, x->ids + ie + 1, x->n - ie - 2);
        char whole[256];
        snprintf(whole, sizeof whole, "%s%s%s", pre, mid, suf);
        CHECKF(strcmp(whole, raw[i].completion) == 0, "doc %d: prefix+middle+suffix = '%s'", i, whole);
        nontrivial += pre[0] && mid[0] && suf[0];
        free(pre); free(suf); free(mid);
        for (int t = 0; t < x->n; t++)
            CHECKF(x->mask[t] == (t > ie), "doc %d token %d: mask %d", i, t, x->mask[t]);
    }
    CHECKF(nontrivial >= 10, "only %d of 40 splits have a prefix, middle and suffix", nontrivial);
    /* rate 0.5: some documents, decided per line by the seed; rate 0: none */
    int n_half = 0;
    for (int i = 0; i < 40; i++) {
        n_half += half.ex[i].n > 1 && half.ex[i].ids[1] == fb;
        CHECK(none.ex[i].ids[1] != fb && find(none.ex[i].ids, none.ex[i].n, fh) < 0);
        CHECK(again.ex[i].n == half.ex[i].n && memcmp(again.ex[i].ids, half.ex[i].ids, sizeof(int32_t) * (size_t)half.ex[i].n) == 0);
    }
    CHECKF(n_half >= 10 && n_half <= 30, "fim-rate 0.5 made %d of 40 FIM examples", n_half);
    /* chat and prompt/completion with a prompt are never transformed */
    for (int i = 40; i < 42; i++) {
        TokenSeq s;
        CHECK(sft_example_encode(tok, &raw[i], &s, &e) == 0);
        CHECK(all.ex[i].n == s.n && memcmp(all.ex[i].ids, s.ids, sizeof(int32_t) * (size_t)s.n) == 0 &&
              memcmp(all.ex[i].mask, s.loss, (size_t)s.n) == 0);
        token_seq_free(&s);
    }
    sft_encoded_free(&all);
    sft_encoded_free(&half);
    sft_encoded_free(&none);
    sft_encoded_free(&again);
    sft_free(raw, nraw);
    tokenizer_free(tok);
    free(d);
}

/* 16 prompt/completion pairs of two kinds (see sft_grad_accum_equals_one_big_batch). */
static int write_pairs(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (int i = 0; i < 16; i++)
        fprintf(f, i % 3 ? "{\"prompt\": \"a\", \"completion\": \"b\"}\n" : "{\"prompt\": \"\", \"completion\": \"bcd\"}\n");
    return fclose(f);
}

static int series(const char *run_dir, const char *name, double *v, int64_t *steps, int max) {
    char p[1024];
    snprintf(p, sizeof p, "%s/run.db", run_dir);
    CrError e;
    RunStore *rs = runstore_open_readonly(p, &e);
    if (!rs) return -1;
    int64_t *st;
    double *val;
    int n;
    int rc = runstore_metric_series(rs, runstore_latest_run(rs, &e), name, &st, &val, &n, &e);
    runstore_close(rs);
    if (rc) return -1;
    for (int i = 0; i < n && i < max; i++) { v[i] = val[i]; if (steps) steps[i] = st[i]; }
    free(st);
    free(val);
    return n;
}

TEST(sft_grad_accum_equals_one_big_batch) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 4) == 0);
    char data[1024], tp[1024];
    snprintf(data, sizeof data, "%s/pairs.jsonl", d);
    snprintf(tp, sizeof tp, "%s/model/tokenizer.json", d);
    /* two kinds: [BOS a b EOS] (4 tokens, 2 targets) and [BOS b c d EOS] (5, 4 targets):
     * micro-batches of <= 5 tokens hold one example, <= 10 tokens exactly two
     * consecutive ones, so both runs see the same pairs per step */
    CHECK(write_pairs(data) == 0);
    CrError e;
    Tokenizer *tok = tokenizer_load(tp, &e);
    SftEncoded enc;
    CHECK(tok && sft_encode_file(data, tok, 0, 0, 4096, &enc, &e) == 0);
    if (FAILED()) return;
    CHECKF(enc.ex[0].n == 5 && enc.ex[1].n == 4, "example lengths %d %d (test assumes 5 and 4)", enc.ex[0].n, enc.ex[1].n);
    sft_encoded_free(&enc);
    tokenizer_free(tok);
    if (FAILED()) return;
    const char *bin = test_crucible_bin();
    const char *common = "--lr 3e-3 --warmup 0 --weight-decay 0.1 --max-grad-norm 100 --seed 5";
    CHECK(test_run("%s sft --model %s/model --data %s --out %s/big --batch-tokens 10 --grad-accum 1 %s 2>/dev/null", bin, d,
                   data, d, common) == 0);
    CHECK(test_run("%s sft --model %s/model --data %s --out %s/acc --batch-tokens 5 --grad-accum 2 %s 2>/dev/null", bin, d,
                   data, d, common) == 0);
    char big[1024], acc[1024];
    snprintf(big, sizeof big, "%s/big", d);
    snprintf(acc, sizeof acc, "%s/acc", d);
    const char *names[3] = {"loss", "grad_norm", "aux_loss"};
    for (int k = 0; k < 3; k++) {
        double a[16], b[16];
        int na = series(big, names[k], a, NULL, 16), nb = series(acc, names[k], b, NULL, 16);
        CHECKF(na == 8 && nb == 8, "%s: %d and %d steps", names[k], na, nb);
        for (int i = 0; i < na && i < nb; i++)
            CHECKF(fabs(a[i] - b[i]) <= 1e-5 * fmax(1e-3, fabs(a[i])), "%s step %d: one batch %.9g, accumulated %.9g",
                   names[k], i + 1, a[i], b[i]);
    }
    free(d);
}

TEST(sft_eval_loss_recorded_and_exact) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 6) == 0);
    if (FAILED()) return;
    const char *bin = test_crucible_bin();
    char data[1024];
    snprintf(data, sizeof data, "%s/pairs.jsonl", d);
    CHECK(write_pairs(data) == 0);
    /* all the data in one batch per step: epoch = step, and the training loss of step
     * s+1 is the NLL of the same data under the model after step s */
    CHECK(test_run("%s sft --model %s/model --data %s --eval-data %s --out %s/r --batch-tokens 4096 --epochs 5 "
                   "--eval-every 2 --lr 1e-3 --warmup 0 2>/dev/null", bin, d, data, data, d) == 0);
    char r[1024];
    snprintf(r, sizeof r, "%s/r", d);
    double ev[8], loss[8];
    int64_t st[8];
    int ne = series(r, "eval_loss", ev, st, 8), nl = series(r, "loss", loss, NULL, 8);
    CHECKF(nl == 5, "%d steps", nl);
    /* after steps 2 and 4 (every 2) and after the last one */
    CHECKF(ne == 3 && st[0] == 2 && st[1] == 4 && st[2] == 5, "eval_loss at %d steps", ne);
    if (ne == 3 && nl == 5) {
        CHECK_NEAR(ev[0], loss[2], 2e-5);
        CHECK_NEAR(ev[1], loss[4], 2e-5);
        CHECK(ev[2] < loss[0]);
    }
    /* --eval-every 0: only after the last step */
    CHECK(test_run("%s sft --model %s/model --data %s --eval-data %s --out %s/r0 --batch-tokens 4096 --epochs 3 "
                   "--lr 1e-3 2>/dev/null", bin, d, data, data, d) == 0);
    snprintf(r, sizeof r, "%s/r0", d);
    ne = series(r, "eval_loss", ev, st, 8);
    CHECKF(ne == 1 && st[0] == 3, "eval_loss at %d steps (step %lld)", ne, ne > 0 ? (long long)st[0] : -1LL);
    free(d);
}

TEST(sft_data_path_with_quotes_is_recorded) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 6) == 0);
    if (FAILED()) return;
    char data[1024];
    snprintf(data, sizeof data, "%s/we\"ird\\name.jsonl", d);
    CHECK(write_pairs(data) == 0);
    /* the provenance JSON names the path: quotes and backslashes must be escaped */
    CHECK(test_run("%s sft --model %s/model --data '%s' --out %s/r --max-steps 1 2>/dev/null", test_crucible_bin(), d, data,
                   d) == 0);
    char r[1024];
    double loss[2];
    snprintf(r, sizeof r, "%s/r", d);
    CHECK(series(r, "loss", loss, NULL, 2) == 1);
    free(d);
}
