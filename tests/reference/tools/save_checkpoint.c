/* tests/reference/tools/save_checkpoint.c — helper for tests/reference/check_saved_checkpoint.py
 * (built by that script, not by make): load a parity fixture, train it 2 AdamW steps so the
 * weights differ from anything Python wrote, model_save it to OUT, then write what the C model
 * computes on the fixture batch: OUT/crucible_logits.f32 ([N, vocab] from model_forward_hidden
 * and lm_head) and OUT/crucible_logp.f32 ([N] from model_forward), raw little-endian fp32.
 *   save_checkpoint FIXTURE_DIR OUT_DIR */
#include "core/safetensors.h"
#include "model/adamw.h"
#include "model/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int32_t *read_i32(SafeTensors *s, const char *name, size_t *n, CrError *e) {
    const StTensor *t = st_find(s, name);
    if (!t) { cr_error_set(e, "tensor %s missing", name); return NULL; }
    *n = st_numel(t->ndim, t->shape);
    int64_t *tmp = malloc(*n * sizeof *tmp);
    int32_t *out = malloc(*n * sizeof *out);
    if (!tmp || !out || st_read_i64(t, tmp, *n, e)) { free(tmp); free(out); return NULL; }
    for (size_t i = 0; i < *n; i++) out[i] = (int32_t)tmp[i];
    free(tmp);
    return out;
}

static int write_raw(const char *dir, const char *name, const float *x, size_t n) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) { perror(path); return -1; }
    int ok = fwrite(x, sizeof *x, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 3) { fprintf(stderr, "usage: save_checkpoint FIXTURE_DIR OUT_DIR\n"); return 2; }
    CrError e = {{0}};
    char path[1200];
    snprintf(path, sizeof path, "%s/data.safetensors", argv[1]);
    Model *m = model_load(argv[1], &e);
    SafeTensors *d = m ? st_open(path, &e) : NULL;
    if (!d) { fprintf(stderr, "save_checkpoint: %s\n", e.msg); return 1; }
    size_t n, ns, k;
    int32_t *tok = read_i32(d, "tokens", &n, &e), *tgt = read_i32(d, "targets", &k, &e);
    int32_t *pos = read_i32(d, "pos", &k, &e), *cu = read_i32(d, "cu_seqlens", &ns, &e);
    float *dlogp = malloc(n * sizeof *dlogp), *logp = malloc(n * sizeof *logp);
    size_t V = (size_t)m->cfg.vocab_size, D = (size_t)m->cfg.hidden_size;
    float *hid = malloc(n * D * sizeof *hid), *logits = malloc(n * V * sizeof *logits);
    const StTensor *dt = st_find(d, "dlogp");
    if (!tok || !tgt || !pos || !cu || !dlogp || !logp || !hid || !logits || !dt ||
        st_read_f32(dt, dlogp, n, &e)) {
        fprintf(stderr, "save_checkpoint: %s\n", e.msg);
        return 1;
    }
    Batch b = {.n_tokens = (int)n, .n_seqs = (int)ns - 1, .tokens = tok, .targets = tgt, .cu_seqlens = cu, .pos = pos};
    AdamW opt;
    AdamWConfig cfg = {.lr = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-5f, .weight_decay = 0.1f};
    float aux;
    if (adamw_init(&opt, m, cfg, &e)) { fprintf(stderr, "save_checkpoint: %s\n", e.msg); return 1; }
    for (int s = 0; s < 2; s++) {
        model_zero_grads(m);
        if (model_forward(m, &b, logp, &aux, &e) || model_backward(m, &b, dlogp, 1.0f, &e)) {
            fprintf(stderr, "save_checkpoint: %s\n", e.msg);
            return 1;
        }
        adamw_step(&opt, m, cfg.lr);
    }
    if (model_save(m, argv[2], &e) || model_forward(m, &b, logp, &aux, &e) ||
        model_forward_hidden(m, &b, hid, &aux, &e)) {
        fprintf(stderr, "save_checkpoint: %s\n", e.msg);
        return 1;
    }
    const ParamTensor *lm = model_find_tensor(m, "lm_head.weight");
    if (!lm) { fprintf(stderr, "save_checkpoint: no lm_head.weight\n"); return 1; }
    const float *W = m->params + lm->offset;
    for (size_t t = 0; t < n; t++)
        for (size_t v = 0; v < V; v++) {
            double acc = 0;
            for (size_t j = 0; j < D; j++) acc += (double)hid[t * D + j] * W[v * D + j];
            logits[t * V + v] = (float)acc;
        }
    if (write_raw(argv[2], "crucible_logp.f32", logp, n) || write_raw(argv[2], "crucible_logits.f32", logits, n * V))
        return 1;
    printf("saved %s after 2 AdamW steps; %zu tokens\n", argv[2], n);
    adamw_free(&opt);
    st_close(d);
    model_free(m);
    return 0;
}
