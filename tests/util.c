/* tests/util.c — see util.h */
#include "tests/util.h"
#include "tests/test.h"
#include "core/file.h"
#include "data/tokenizer.h"
#include "model/model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

int test_run(const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

int test_make_tiny_model(const char *dir, int seed) {
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/tiny.json", dir);
    FILE *f = fopen(cfg, "w");
    if (!f) return -1;
    fprintf(f, "{\"vocab_size\": 320, \"hidden_size\": 32, \"num_hidden_layers\": 2, \"num_attention_heads\": 2,"
               " \"q_lora_rank\": null, \"kv_lora_rank\": 16, \"qk_nope_head_dim\": 8, \"qk_rope_head_dim\": 8,"
               " \"v_head_dim\": 8, \"intermediate_size\": 64, \"moe_intermediate_size\": 32, \"n_routed_experts\": 4,"
               " \"n_shared_experts\": 1, \"num_experts_per_tok\": 2, \"first_k_dense_replace\": 1,"
               " \"max_position_embeddings\": 512, \"rope_scaling\": null}\n");
    fclose(f);
    if (test_run("%s tokenizer train --corpus configs/tiny/corpus.txt --vocab-size 320 --out %s/tokenizer.json "
                 ">/dev/null 2>&1", test_crucible_bin(), dir)) return -1;
    return test_run("%s init --config %s --tokenizer %s/tokenizer.json --out %s/model --seed %d >/dev/null 2>&1",
                    test_crucible_bin(), cfg, dir, dir, seed);
}

int test_write_comment_tasks(const char *path, int n) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (int i = 0; i < n; i++)
        fprintf(f, "{\"id\": \"comment/%d\", \"language\": \"python\", \"prompt\": \"Finish the comment %d.\", "
                   "\"program_prefix\": \"def f(x):\\n    return x + %d\\n# \", "
                   "\"test_code\": \"def check(candidate):\\n    assert candidate(1) == %d\\n\", \"entry_point\": \"f\"}\n",
                i, i, i, i + 1);
    return fclose(f) == 0 ? 0 : -1;
}

int test_same_file(const char *a, const char *b) {
    size_t na, nb;
    CrError e;
    char *x = cr_read_file(a, &na, &e), *y = cr_read_file(b, &nb, &e);
    int same = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

int test_make_eos_happy(const char *dir) {
    char p[1024];
    snprintf(p, sizeof p, "%s/model/tokenizer.json", dir);
    CrError e;
    Tokenizer *tok = tokenizer_load(p, &e);
    int eos = tok ? tokenizer_eos_id(tok) : -1;
    tokenizer_free(tok);
    snprintf(p, sizeof p, "%s/model", dir);
    Model *m = eos >= 0 ? model_load(p, &e) : NULL;
    if (!m) return -1;
    const ParamTensor *w = model_find_tensor(m, "lm_head.weight");
    int rc = -1;
    if (w && w->ndim == 2 && eos < w->shape[0]) {
        float *row = m->params + w->offset + (size_t)eos * (size_t)w->shape[1];
        for (int64_t d = 0; d < w->shape[1]; d++) row[d] *= 15.0f;
        rc = model_save(m, p, &e);
    }
    model_free(m);
    return rc;
}
