/* tests/util.c — see util.h */
#include "tests/util.h"
#include "tests/test.h"
#include "core/file.h"
#include "core/rng.h"
#include "data/runstore.h"
#include "data/tokenizer.h"
#include "model/model.h"

#ifdef CRUCIBLE_CUDA
#include "model/cuda/ops_cuda.h"
#endif

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

int test_write_rm_runstore(const char *db, int steps, int group, const char *const *good, const char *const *bad,
                           int n) {
    CrError e = {0};
    RunStore *rs = runstore_open(db, &e);
    if (!rs) {
        fprintf(stderr, "    %s\n", e.msg);
        return -1;
    }
    int64_t run = runstore_begin_run(rs, "grpo", "{}", "test", NULL, &e);
    int rc = run < 0 ? -1 : 0;
    CrRng rng;
    cr_rng_init(&rng, 11, 0, 0);
    for (int s = 0; s < steps && rc == 0; s++) {
        int64_t pid = -1;
        if (runstore_step_begin(rs, run, s, &e) != 0 ||
            (pid = runstore_add_prompt(rs, "t", "Write a Python program that reads n.", &e)) < 0) {
            rc = -1;
            break;
        }
        for (int g = 0; g < group && rc == 0; g++) {
            int pass = cr_rng_uniform(&rng) < 0.5, k = (int)(cr_rng_u64(&rng) % (uint64_t)n);
            RsRollout r = {pid, s, g, pass ? good[k] : bad[k], 6, pass, 0};
            int64_t rid = runstore_add_rollout(rs, &r, &e);
            RsExecution x = {rid, pass ? "OK" : "WA", pass, 1, pass, NULL, NULL, 1, 100, 0};
            if (rid < 0 || runstore_add_execution(rs, &x, &e) <= 0) rc = -1;
        }
        if (rc == 0 && runstore_step_commit(rs, &e) != 0) rc = -1;
    }
    if (rc) fprintf(stderr, "    %s: %s\n", db, e.msg);
    runstore_close(rs);
    return rc;
}

int test_gpu_visible(void) {
#ifdef CRUCIBLE_CUDA
    return crucible_cuda_device_count() > 0;
#else
    return 0;
#endif
}
