/* tests/model/test_io.c — model_save / model_load: bit-exact round trip (parameters and
 * log-probs), BF16/F16 and sharded checkpoints, and every class of bad checkpoint with
 * the tensor and file named in the error; a failed save keeps what was there. */
#include "tests/test.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/safetensors.h"
#include "model/model.h"
#include "tests/model/model_tiny.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static Model *tiny_model(TinyOpts o, uint64_t seed) {
    ModelConfig c;
    if (tiny_config(&c, o)) CR_DIE("tiny config");
    CrError e;
    Model *m = model_create(&c, &e);
    if (!m) CR_DIE("%s", e.msg);
    model_init_random(m, seed);
    return m;
}

/* Two sequences packed: targets are the next token within each sequence. */
static const int32_t k_tok[9] = {3, 17, 5, 40, 2, 9, 9, 11, 30};
static const int32_t k_tgt[9] = {17, 5, 40, 2, -1, 9, 11, 30, -1};
static const int32_t k_cu[3] = {0, 5, 9};

static int forward(Model *m, float *logp, float *aux) {
    Batch b = {.n_tokens = 9, .n_seqs = 2, .tokens = k_tok, .targets = k_tgt, .cu_seqlens = k_cu};
    CrError e;
    return model_forward(m, &b, logp, aux, &e);
}

TEST(model_io_save_load_bit_exact) {
    TinyOpts variants[2] = {{.aux_alpha = 0.01f, .seq_aux = 1, .n_shared = 1, .yarn = 1},
                            {.q_lora = 12, .group_limited = 1, .n_shared = 2, .routed_scale = 2.5f}};
    for (int v = 0; v < 2; v++) {
        Model *m = tiny_model(variants[v], 11 + v);
        char *dir = test_tmpdir();
        CrError e;
        CHECKF(model_save(m, dir, &e) == 0, "%s", e.msg);
        Model *r = model_load(dir, &e);
        CHECKF(r != NULL, "%s", e.msg);
        if (!r) { model_free(m); continue; }
        CHECK(memcmp(&r->cfg, &m->cfg, sizeof m->cfg) == 0);
        CHECK(r->n_params == m->n_params && r->n_tensors == m->n_tensors);
        CHECK(memcmp(r->params, m->params, sizeof(float) * m->n_params) == 0);
        float a[9], b[9], xa, xb;
        CHECK(forward(m, a, &xa) == 0 && forward(r, b, &xb) == 0);
        CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(&xa, &xb, sizeof xa) == 0);
        /* HF names and shapes in the file, F32. */
        char *path = cr_path_join(dir, "model.safetensors");
        SafeTensors *s = st_open(path, &e);
        CHECKF(s && st_count(s) == m->n_tensors, "%s", s ? "count" : e.msg);
        const char *q = v ? "model.layers.1.self_attn.q_b_proj.weight" : "model.layers.1.self_attn.q_proj.weight";
        const StTensor *t = s ? st_find(s, q) : NULL;
        CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 4 * 12 && t->shape[1] == (v ? 12 : 32));
        CHECK(s && st_find(s, "model.layers.2.mlp.experts.7.down_proj.weight"));
        CHECK(s && st_find(s, "lm_head.weight") && st_find(s, "model.norm.weight"));
        st_close(s);
        free(path);
        model_free(m);
        model_free(r);
    }
}

/* Write m's tensors as two shards + index, alternating BF16 / F16 / F32. */
static void write_sharded(const Model *m, const char *dir, float *expect) {
    int n = m->n_tensors;
    StEntry *ent = cr_calloc((size_t)n, sizeof *ent);
    uint16_t *half = cr_malloc(sizeof(uint16_t) * m->n_params);
    for (int i = 0; i < n; i++) {
        const ParamTensor *p = &m->tensors[i];
        StDtype dt = i % 3 == 0 ? ST_BF16 : i % 3 == 1 ? ST_F16 : ST_F32;
        const float *src = m->params + p->offset;
        for (size_t j = 0; j < p->numel; j++) {
            size_t k = p->offset + j;
            if (dt == ST_BF16) half[k] = st_f32_to_bf16(src[j]), expect[k] = st_bf16_to_f32(half[k]);
            else if (dt == ST_F16) half[k] = st_f32_to_f16(src[j]), expect[k] = st_f16_to_f32(half[k]);
            else expect[k] = src[j];
        }
        ent[i] = (StEntry){.name = p->name, .dtype = dt, .ndim = p->ndim,
                           .data = dt == ST_F32 ? (const void *)src : (const void *)(half + p->offset)};
        for (int d = 0; d < p->ndim; d++) ent[i].shape[d] = p->shape[d];
    }
    int half_n = n / 2;
    CrError e;
    char *s1 = cr_path_join(dir, "model-00001-of-000002.safetensors");
    char *s2 = cr_path_join(dir, "model-00002-of-000002.safetensors");
    if (st_write(s1, ent, half_n, "{\"format\":\"pt\"}", &e) || st_write(s2, ent + half_n, n - half_n, NULL, &e))
        CR_DIE("%s", e.msg);
    size_t cap = 256 + (size_t)n * 160, k = 0;
    char *idx = cr_malloc(cap);
    k += (size_t)snprintf(idx + k, cap - k, "{\"metadata\":{\"total_size\":0},\"weight_map\":{");
    for (int i = 0; i < n; i++)
        k += (size_t)snprintf(idx + k, cap - k, "%s\"%s\":\"model-0000%d-of-000002.safetensors\"", i ? "," : "",
                              ent[i].name, i < half_n ? 1 : 2);
    snprintf(idx + k, cap - k, "}}");
    char *ip = cr_path_join(dir, "model.safetensors.index.json");
    if (cr_write_file_atomic(ip, idx, strlen(idx), &e)) CR_DIE("%s", e.msg);
    char *js = model_config_to_json(&m->cfg);
    char *cp = cr_path_join(dir, "config.json");
    if (cr_write_file_atomic(cp, js, strlen(js), &e)) CR_DIE("%s", e.msg);
    free(js), free(cp), free(ip), free(idx), free(s1), free(s2), free(half), free(ent);
}

TEST(model_io_load_sharded_bf16_f16) {
    Model *m = tiny_model((TinyOpts){.n_shared = 1}, 5);
    char *dir = test_tmpdir();
    float *expect = cr_malloc(sizeof(float) * m->n_params);
    write_sharded(m, dir, expect);
    CrError e;
    Model *r = model_load(dir, &e);
    CHECKF(r != NULL, "%s", e.msg);
    if (r) {
        CHECK(memcmp(r->params, expect, sizeof(float) * m->n_params) == 0);
        /* The conversion really happened (BF16 drops mantissa bits). */
        CHECK(memcmp(r->params, m->params, sizeof(float) * m->n_params) != 0);
        model_free(r);
    }
    free(expect);
    model_free(m);
}

/* Rewrite DIR/model.safetensors from m's tensors with one change applied by `edit`. */
typedef enum { DROP, EXTRA, RESHAPE, NAN_VALUE, INT_DTYPE, INV_FREQ } Edit;

static void write_edited(const Model *m, const char *dir, Edit edit, int which) {
    int n = m->n_tensors;
    StEntry *ent = cr_calloc((size_t)n + 1, sizeof *ent);
    float *copy = cr_malloc(sizeof(float) * m->n_params);
    memcpy(copy, m->params, sizeof(float) * m->n_params);
    int k = 0;
    for (int i = 0; i < n; i++) {
        const ParamTensor *p = &m->tensors[i];
        if (edit == DROP && i == which) continue;
        StEntry *x = &ent[k++];
        *x = (StEntry){.name = p->name, .dtype = ST_F32, .ndim = p->ndim, .data = copy + p->offset};
        for (int d = 0; d < p->ndim; d++) x->shape[d] = p->shape[d];
        if (i == which && edit == RESHAPE) {   /* 2-D: transposed; 1-D: [1, n] */
            x->ndim = 2;
            x->shape[0] = p->ndim == 2 ? p->shape[1] : 1;
            x->shape[1] = p->shape[0];
        }
        if (i == which && edit == NAN_VALUE) copy[p->offset + p->numel - 1] = NAN;
        if (i == which && edit == INT_DTYPE) x->dtype = ST_I32;
    }
    if (edit == EXTRA || edit == INV_FREQ)
        ent[k++] = (StEntry){.name = edit == EXTRA ? "model.layers.0.mlp.bias" : "model.layers.0.self_attn.rotary_emb.inv_freq",
                             .dtype = ST_F32, .ndim = 1, .shape = {2}, .data = copy};
    char *p = cr_path_join(dir, "model.safetensors");
    CrError e;
    if (st_write(p, ent, k, NULL, &e)) CR_DIE("%s", e.msg);
    free(p), free(copy), free(ent);
}

TEST(model_io_load_errors_name_tensor_and_file) {
    Model *m = tiny_model((TinyOpts){.n_shared = 1}, 9);
    char *dir = test_tmpdir();
    CrError e;
    CHECKF(model_save(m, dir, &e) == 0, "%s", e.msg);
    const char *q = "model.layers.1.self_attn.kv_b_proj.weight";
    int qi = (int)(model_find_tensor(m, q) - m->tensors);
    int ni = (int)(model_find_tensor(m, "model.layers.2.post_attention_layernorm.weight") - m->tensors);
    struct { Edit edit; int which; const char *n1, *n2; } cases[] = {
        {DROP, qi, "missing tensor", q},
        {EXTRA, -1, "unexpected tensor", "model.layers.0.mlp.bias"},
        {RESHAPE, qi, "has shape [16, 56]", "needs [56, 16]"},
        {RESHAPE, ni, "post_attention_layernorm", "needs [32]"},
        {NAN_VALUE, qi, "non-finite", q},
        {INT_DTYPE, qi, "dtype I32", q},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_edited(m, dir, cases[i].edit, cases[i].which);
        Model *r = model_load(dir, &e);
        CHECKF(!r && strstr(e.msg, cases[i].n1) && strstr(e.msg, cases[i].n2) && strstr(e.msg, "model.safetensors"),
               "case %zu: %s", i, r ? "loaded" : e.msg);
        model_free(r);
    }
    /* A config.json that does not describe the weights (hidden 1e6: GBs of floats) is a
     * shape error naming the tensor, found from the header before anything is allocated
     * (it took 28 s of allocation first; far larger configs aborted in the allocator). */
    {
        CHECK(model_save(m, dir, &e) == 0);
        char *cp = cr_path_join(dir, "config.json");
        char *js = cr_read_file(cp, NULL, &e);
        char *at = js ? strstr(js, "\"hidden_size\"") : NULL;
        CHECK(at != NULL);
        if (at) {
            char *colon = strchr(at, ':'), *end = colon ? colon + 1 : NULL;
            while (end && (*end == ' ' || *end == '\t' || (*end >= '0' && *end <= '9'))) end++;
            char *big = NULL;
            if (colon && end && asprintf(&big, "%.*s 1000000%s", (int)(colon + 1 - js), js, end) > 0) {
                CHECK(cr_write_file_atomic(cp, big, strlen(big), &e) == 0);
                Model *r = model_load(dir, &e);
                CHECKF(!r && strstr(e.msg, "has shape") && strstr(e.msg, "model.safetensors"), "%s",
                       r ? "loaded" : e.msg);
                model_free(r);
            }
            free(big);
        }
        free(js);
        free(cp);
        CHECK(model_save(m, dir, &e) == 0);
    }
    /* A stored rotary inv_freq buffer (older exporters) is tolerated. */
    write_edited(m, dir, INV_FREQ, -1);
    Model *r = model_load(dir, &e);
    CHECKF(r != NULL, "%s", e.msg);
    model_free(r);
    /* Truncated weights file. */
    CHECK(model_save(m, dir, &e) == 0);
    char *w = cr_path_join(dir, "model.safetensors");
    size_t len;
    char *bytes = cr_read_file(w, &len, &e);
    CHECK(cr_write_file_atomic(w, bytes, len - 5, &e) == 0);
    r = model_load(dir, &e);
    CHECKF(!r && strstr(e.msg, "truncated") && strstr(e.msg, "lm_head.weight") && strstr(e.msg, "model.safetensors"),
           "%s", r ? "loaded" : e.msg);
    model_free(r);
    /* No weights at all; no config. */
    unlink(w);
    r = model_load(dir, &e);
    CHECKF(!r && strstr(e.msg, "model.safetensors"), "%s", r ? "loaded" : e.msg);
    model_free(r);
    char *cfg = cr_path_join(dir, "config.json");
    unlink(cfg);
    r = model_load(dir, &e);
    CHECKF(!r && strstr(e.msg, "config.json"), "%s", r ? "loaded" : e.msg);
    model_free(r);
    free(cfg), free(w), free(bytes);
    model_free(m);
}

TEST(model_io_failed_save_keeps_previous) {
    Model *m = tiny_model((TinyOpts){.n_shared = 1}, 1);
    char *dir = test_tmpdir();
    CrError e;
    CHECKF(model_save(m, dir, &e) == 0, "%s", e.msg);
    char *w = cr_path_join(dir, "model.safetensors");
    size_t len0;
    char *before = cr_read_file(w, &len0, &e);
    /* The next save fails when renaming its weights into place (model.safetensors is made
     * a directory): the error names the file, config.json is not touched, and with the old
     * weights put back the directory loads as the first model. */
    Model *m2 = tiny_model((TinyOpts){.n_shared = 1}, 2);
    char *cfgdir = cr_path_join(dir, "model.safetensors");
    unlink(cfgdir);
    CHECK(mkdir(cfgdir, 0755) == 0);   /* rename(tmp, model.safetensors) now fails */
    CHECK(model_save(m2, dir, &e) == -1);
    CHECKF(strstr(e.msg, "model.safetensors"), "%s", e.msg);
    CHECK(rmdir(cfgdir) == 0);
    CHECK(cr_write_file_atomic(w, before, len0, &e) == 0);
    Model *r = model_load(dir, &e);   /* config.json from the first save is intact */
    CHECKF(r && memcmp(r->params, m->params, sizeof(float) * m->n_params) == 0, "%s", r ? "params differ" : e.msg);
    model_free(r);
    /* No temporary files are left behind. */
    char *tmpname = cr_malloc(strlen(w) + 32);
    snprintf(tmpname, strlen(w) + 32, "%s.tmp.%ld", w, (long)getpid());
    CHECK(!cr_file_exists(tmpname));
    free(tmpname), free(cfgdir), free(w), free(before);
    model_free(m);
    model_free(m2);
}
