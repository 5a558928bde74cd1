/* tests/model/test_checkpoint.c — checkpoints: a run interrupted after step 3 and resumed
 * from its checkpoint ends bit-identical to the uninterrupted run; optimizer state and
 * state.json round-trip; DONE marks completeness; checkpoint_latest picks the newest
 * complete one; a save never destroys an older checkpoint or a foreign directory. */
#include "tests/test.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/safetensors.h"
#include "model/adamw.h"
#include "model/checkpoint.h"
#include "model/model.h"
#include "model/schedule.h"
#include "tests/model/model_tiny.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static Model *tiny_model(uint64_t seed) {
    ModelConfig c;
    if (tiny_config(&c, (TinyOpts){.n_shared = 1, .aux_alpha = 0.01f, .seq_aux = 1})) CR_DIE("tiny config");
    CrError e;
    Model *m = model_create(&c, &e);
    if (!m) CR_DIE("%s", e.msg);
    model_init_random(m, seed);
    return m;
}

static const int32_t k_tok[10] = {3, 17, 5, 40, 2, 9, 9, 11, 30, 1};
static const int32_t k_tgt[10] = {17, 5, 40, 2, -1, 9, 11, 30, 1, -1};
static const int32_t k_cu[3] = {0, 5, 10};

/* One SFT-like step: mean NLL over targets + aux loss, clip to 1.0, cosine lr, AdamW. */
static int train_step(Model *m, AdamW *opt, long step, CrError *e) {
    Batch b = {.n_tokens = 10, .n_seqs = 2, .tokens = k_tok, .targets = k_tgt, .cu_seqlens = k_cu};
    float logp[10], aux, dlogp[10];
    if (model_forward(m, &b, logp, &aux, e)) return -1;
    for (int t = 0; t < 10; t++) dlogp[t] = k_tgt[t] >= 0 ? -1.0f / 8 : 0;
    model_zero_grads(m);
    if (model_backward(m, &b, dlogp, 1.0f, e)) return -1;
    grad_clip_global_norm(m, 1.0f);
    adamw_step(opt, m, (float)lr_schedule(step, 2, 6, 3e-2, 0.1));
    return 0;
}

TEST(model_checkpoint_resume_is_bit_exact) {
    CrError e;
    AdamWConfig cfg = {.lr = 3e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    char *run = test_tmpdir();
    /* Uninterrupted: 6 steps, checkpoint after step 3. */
    Model *a = tiny_model(4);
    AdamW oa;
    CHECK(adamw_init(&oa, a, cfg, &e) == 0);
    char *ck = checkpoint_step_dir(run, 3);
    for (long s = 0; s < 6; s++) {
        CHECKF(train_step(a, &oa, s, &e) == 0, "%s", e.msg);
        if (s == 2) {
            char state[128];
            snprintf(state, sizeof state, "{\"step\": %ld, \"rng\": [1, 2, 3], \"cursor\": 17}", s + 1);
            CHECKF(checkpoint_save(ck, a, &oa, state, &e) == 0, "%s", e.msg);
        }
    }
    if (FAILED()) return;
    /* Resumed. */
    char *latest = checkpoint_latest(run, &e);
    CHECKF(latest && !strcmp(latest, ck), "latest = %s (%s)", latest ? latest : "NULL", e.msg);
    AdamW ob;
    char *state = NULL;
    Model *b = checkpoint_load(ck, &ob, &state, &e);
    CHECKF(b != NULL, "%s", e.msg);
    if (!b) return;
    CHECK(ob.step == 3 && memcmp(&ob.cfg, &cfg, sizeof cfg) == 0);
    CHECK(state && strstr(state, "\"cursor\": 17"));
    CHECK(ob.decay[0] == 1);   /* embedding (2-D) decayed */
    for (long s = 3; s < 6; s++) CHECKF(train_step(b, &ob, s, &e) == 0, "%s", e.msg);
    CHECK(ob.step == oa.step);
    CHECKF(memcmp(a->params, b->params, sizeof(float) * a->n_params) == 0, "resumed parameters differ");
    CHECK(memcmp(oa.m, ob.m, sizeof(float) * oa.n) == 0 && memcmp(oa.v, ob.v, sizeof(float) * oa.n) == 0);
    /* And they compute the same log-probs. */
    Batch bt = {.n_tokens = 10, .n_seqs = 2, .tokens = k_tok, .targets = k_tgt, .cu_seqlens = k_cu};
    float la[10], lb[10], xa, xb;
    CHECK(model_forward(a, &bt, la, &xa, &e) == 0 && model_forward(b, &bt, lb, &xb, &e) == 0);
    CHECK(memcmp(la, lb, sizeof la) == 0 && xa == xb);
    /* Training moved the weights (the comparison above is not vacuous). */
    Model *fresh = tiny_model(4);
    CHECK(memcmp(fresh->params, a->params, sizeof(float) * a->n_params) != 0);
    model_free(fresh);
    free(state);
    free(latest);
    free(ck);
    adamw_free(&oa);
    adamw_free(&ob);
    model_free(a);
    model_free(b);
}

TEST(model_checkpoint_files_and_tokenizer) {
    CrError e;
    char *dir = test_tmpdir();
    Model *m = tiny_model(1);
    AdamW opt;
    CHECK(adamw_init(&opt, m, adamw_default_config(), &e) == 0);
    opt.step = 42;
    for (size_t i = 0; i < opt.n; i++) opt.m[i] = (float)i * 0.5f, opt.v[i] = (float)i;
    char *tok = cr_path_join(dir, "src_tokenizer.json");
    CHECK(cr_write_file_atomic(tok, "{\"model\":{}}", 12, &e) == 0);
    char *ck = cr_path_join(dir, "ck");
    CHECKF(checkpoint_save_with_tokenizer(ck, m, &opt, "{\"a\":1}", tok, &e) == 0, "%s", e.msg);
    const char *files[] = {"config.json", "model.safetensors", "optimizer.safetensors", "state.json", "tokenizer.json",
                           "DONE"};
    for (int i = 0; i < 6; i++) {
        char *p = cr_path_join(ck, files[i]);
        CHECKF(cr_file_exists(p), "missing %s", files[i]);
        free(p);
    }
    char *partial = cr_malloc(strlen(ck) + 16);
    sprintf(partial, "%s.partial", ck);
    CHECK(!cr_file_exists(partial));
    /* optimizer.safetensors: names, step, hyper-parameters. */
    char *op = cr_path_join(ck, "optimizer.safetensors");
    SafeTensors *s = st_open(op, &e);
    CHECKF(s, "%s", e.msg);
    if (s) {
        CHECK(st_count(s) == 2 * m->n_tensors);
        CHECK(st_find(s, "exp_avg.model.embed_tokens.weight") && st_find(s, "exp_avg_sq.lm_head.weight"));
        CHECK(!strcmp(st_metadata(s, "step"), "42") && !strcmp(st_metadata(s, "beta2"), "0.999000013"));
        st_close(s);
    }
    /* Without the optimizer file, resuming is refused but the model loads. */
    unlink(op);
    AdamW o2;
    Model *r = checkpoint_load(ck, &o2, NULL, &e);
    CHECKF(!r && strstr(e.msg, "optimizer.safetensors"), "%s", r ? "loaded" : e.msg);
    model_free(r);
    r = checkpoint_load(ck, NULL, NULL, &e);
    CHECKF(r != NULL, "%s", e.msg);
    model_free(r);
    /* No DONE: not a checkpoint. */
    char *done = cr_path_join(ck, "DONE");
    unlink(done);
    r = checkpoint_load(ck, NULL, NULL, &e);
    CHECKF(!r && strstr(e.msg, "DONE"), "%s", r ? "loaded" : e.msg);
    /* ... and a save does not replace a directory that is not a complete checkpoint. */
    CHECK(checkpoint_save(ck, m, NULL, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "refusing"), "%s", e.msg);
    CHECK(cr_file_exists(ck) && !cr_file_exists(partial));
    /* Bad state JSON is refused before anything is written. */
    char *ck2 = cr_path_join(dir, "ck2");
    CHECK(checkpoint_save(ck2, m, NULL, "{broken", &e) == -1 && !cr_file_exists(ck2));
    free(ck2), free(done), free(op), free(partial), free(ck), free(tok);
    adamw_free(&opt);
    model_free(m);
}

TEST(model_checkpoint_latest_and_replace) {
    CrError e;
    char *run = test_tmpdir();
    CHECK(checkpoint_latest(run, &e) == NULL);
    CHECKF(strstr(e.msg, "no complete checkpoint"), "%s", e.msg);
    Model *m = tiny_model(2), *m2 = tiny_model(3);
    long steps[] = {5, 120, 40};
    for (int i = 0; i < 3; i++) {
        char *d = checkpoint_step_dir(run, steps[i]);
        CHECKF(checkpoint_save(d, m, NULL, NULL, &e) == 0, "%s", e.msg);
        free(d);
    }
    /* An incomplete newer one (crash before DONE) and junk names are ignored. */
    char *d999 = checkpoint_step_dir(run, 999);
    CHECK(checkpoint_save(d999, m, NULL, NULL, &e) == 0);
    char *done = cr_path_join(d999, "DONE");
    unlink(done);
    char *junk = cr_path_join(run, "checkpoints/step-7x");
    CHECK(mkdir(junk, 0755) == 0);
    char *latest = checkpoint_latest(run, &e);
    CHECKF(latest && strstr(latest, "checkpoints/step-000120"), "%s", latest ? latest : e.msg);
    /* Re-saving an existing complete checkpoint replaces it whole (trailing '/' or not). */
    char *slash = cr_malloc(strlen(latest) + 2);
    sprintf(slash, "%s/", latest);
    CHECKF(checkpoint_save(slash, m2, NULL, NULL, &e) == 0, "%s", e.msg);
    free(slash);
    Model *r = checkpoint_load(latest, NULL, NULL, &e);
    CHECKF(r && memcmp(r->params, m2->params, sizeof(float) * m2->n_params) == 0, "%s", r ? "old weights" : e.msg);
    model_free(r);
    free(latest), free(junk), free(done), free(d999);
    model_free(m);
    model_free(m2);
}

TEST(model_checkpoint_prune_keeps_newest) {
    CrError e;
    char *run = test_tmpdir();
    Model *m = tiny_model(5);
    long steps[] = {10, 20, 30, 40};
    for (int i = 0; i < 4; i++) {
        char *d = checkpoint_step_dir(run, steps[i]);
        CHECKF(checkpoint_save(d, m, NULL, NULL, &e) == 0, "%s", e.msg);
        free(d);
    }
    /* Step 40 loses DONE (interrupted in an older scheme): it is newer than every complete
     * one, so it is kept; leftovers of interrupted saves go. */
    char *d40 = checkpoint_step_dir(run, 40), *done40 = cr_path_join(d40, "DONE");
    unlink(done40);
    char *partial = cr_path_join(run, "checkpoints/step-000050.partial");
    CHECK(mkdir(partial, 0755) == 0);
    CHECK(checkpoint_prune(run, 0, NULL, &e) == -1 && strstr(e.msg, "keep_last"));
    long oldest = 0;
    int n = checkpoint_prune(run, 2, &oldest, &e);
    CHECKF(n == 2 && oldest == 20, "removed %d, oldest kept %ld (%s)", n, oldest, n < 0 ? e.msg : "");
    char *d10 = checkpoint_step_dir(run, 10), *d20 = checkpoint_step_dir(run, 20), *d30 = checkpoint_step_dir(run, 30);
    CHECK(!cr_file_exists(d10) && cr_file_exists(d20) && cr_file_exists(d30) && cr_file_exists(d40));
    CHECK(!cr_file_exists(partial));
    char *latest = checkpoint_latest(run, &e);
    CHECK(latest && !strcmp(latest, d30));
    /* keep 1: 20 goes; 40 (incomplete, newest) stays. */
    CHECK(checkpoint_prune(run, 1, &oldest, &e) == 1 && !cr_file_exists(d20) && cr_file_exists(d30) && oldest == 30);
    /* remove_before: strictly older step-N directories only */
    char *ck = cr_path_join(run, "checkpoints");
    CHECK(checkpoint_remove_before(ck, 40, &e) == 1 && !cr_file_exists(d30) && cr_file_exists(d40));
    CHECK(checkpoint_remove_before(ck, 40, &e) == 0 && cr_file_exists(d40));
    char *none = cr_path_join(run, "no-such-dir");
    CHECK(checkpoint_remove_before(none, 40, &e) == 0);
    free(ck), free(none);
    free(latest), free(d10), free(d20), free(d30), free(partial), free(done40), free(d40);
    model_free(m);
}
