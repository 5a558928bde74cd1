/* cli/cmd_init.c — `crucible init`: a randomly initialised checkpoint from a model
 * config.json (deterministic for a seed) — the way tests and demos get models.
 *
 *   crucible init --config CONFIG.json --out DIR [--seed N] [--tokenizer T.json]
 *
 * Here --config names the MODEL config (Hugging Face DeepseekV2 config.json keys), not a
 * flags file as for the other commands. DIR receives config.json, model.safetensors (F32,
 * HF names), tokenizer.json (copied) and DONE. An existing DIR is replaced only if it is
 * a complete checkpoint. Prints one JSON line: {"out", "params", "tensors", "seed"}. */
#include "cli/command.h"
#include "data/tokenizer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/args.h"
#include "core/file.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/model.h"

const char cmd_init_summary[] = "write a randomly initialised model checkpoint from a config.json";

/* The largest token id a tokenizer.json can produce (model.vocab and added_tokens). */
static int tokenizer_max_id(const char *path, long *max_id, CrError *e) {
    char *text = cr_read_file(path, NULL, e);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    cJSON *model = root ? cJSON_GetObjectItemCaseSensitive(root, "model") : NULL;
    cJSON *vocab = model ? cJSON_GetObjectItemCaseSensitive(model, "vocab") : NULL;
    if (!cJSON_IsObject(vocab)) {
        cJSON_Delete(root);
        return cr_error_set(e, "%s: not a tokenizer.json (no model.vocab object)", path);
    }
    *max_id = -1;
    for (cJSON *v = vocab->child; v; v = v->next)
        if (cJSON_IsNumber(v) && v->valuedouble > *max_id) *max_id = (long)v->valuedouble;
    cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    for (cJSON *a = cJSON_IsArray(added) ? added->child : NULL; a; a = a->next) {
        cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        if (cJSON_IsNumber(id) && id->valuedouble > *max_id) *max_id = (long)id->valuedouble;
    }
    cJSON_Delete(root);
    return 0;
}

int cmd_init(int argc, char **argv) {
    static const char usage[] =
        "crucible init --config CONFIG.json --out DIR [--seed N] [--tokenizer T.json] [--device auto|cpu|cuda|cuda-fp32]";
    const char *config = NULL, *out = NULL, *tokenizer = NULL, *device = device_default();
    long seed = 0;
    /* --config is the model config here: take it out before the shared flag parser. */
    char **rest = cr_calloc((size_t)argc + 1, sizeof *rest);
    int nrest = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "crucible init: --config: missing value\n");
                free(rest);
                return 2;
            }
            config = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            config = argv[i] + 9;
        } else {
            rest[nrest++] = argv[i];
        }
    }
    const ArgSpec specs[] = {
        {"out", ARG_STR, &out, "output checkpoint directory", 1},
        {"seed", ARG_INT, &seed, "random seed (same seed, same weights)", 0},
        {"tokenizer", ARG_STR, &tokenizer, "tokenizer.json to copy into DIR", 0},
        {"device", ARG_STR, &device, DEVICE_FLAG_HELP " (the weights are drawn on the host: same bytes on every device)", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    CrError e;
    int rc = cr_args_parse(usage, specs, nrest, rest, NULL, NULL, &e);
    free(rest);
    if (rc == CR_ARGS_HELP) {
        fprintf(stderr, "  --config FILE.json  the model config.json (required)\n");
        return 0;
    }
    if (rc == 0 && !config) rc = cr_error_set(&e, "--config is required (the model config.json)");
    if (rc) {
        fprintf(stderr, "crucible init: %s\n", e.msg);
        return 2;
    }
    /* never over an existing checkpoint: its weights (and tokenizer) would be lost */
    static const char *const kept[3] = {"model.safetensors", "model.safetensors.index.json", "config.json"};
    for (int i = 0; i < 3; i++) {
        char *p = cr_path_join(out, kept[i]);
        int there = cr_file_exists(p);
        free(p);
        if (there) {
            fprintf(stderr, "crucible init: %s already holds a checkpoint (%s): remove it or choose another --out\n",
                    out, kept[i]);
            return 1;
        }
    }
    ModelConfig cfg;
    if (model_config_load(&cfg, config, &e)) {
        fprintf(stderr, "crucible init: %s\n", e.msg);
        return 1;
    }
    if (tokenizer) {
        long max_id = -1;
        if (tokenizer_max_id(tokenizer, &max_id, &e)) {
            fprintf(stderr, "crucible init: --tokenizer %s\n", e.msg);
            return 1;
        }
        if (max_id >= cfg.vocab_size) {
            fprintf(stderr, "crucible init: %s: token id %ld does not fit vocab_size %d of %s\n", tokenizer, max_id,
                    cfg.vocab_size, config);
            return 1;
        }
        /* The config's bos/eos ids follow the tokenizer the model is made for. */
        Tokenizer *tk = tokenizer_load(tokenizer, &e);
        if (!tk) {
            fprintf(stderr, "crucible init: --tokenizer %s\n", e.msg);
            return 1;
        }
        if (tokenizer_bos_id(tk) >= 0) cfg.bos_token_id = tokenizer_bos_id(tk);
        if (tokenizer_eos_id(tk) >= 0) cfg.eos_token_id = tokenizer_eos_id(tk);
        tokenizer_free(tk);
    }
    const struct Ops *ops = device_open(device, &e);
    if (!ops) {
        fprintf(stderr, "crucible init: %s\n", e.msg);
        return 1;
    }
    Model *m = model_create_ops(&cfg, ops, &e);
    if (!m) {
        fprintf(stderr, "crucible init: %s: %s\n", config, e.msg);
        return 1;
    }
    model_init_random(m, (uint64_t)seed);
    rc = checkpoint_save_with_tokenizer(out, m, NULL, NULL, tokenizer, &e);
    if (rc) {
        fprintf(stderr, "crucible init: %s\n", e.msg);
    } else {
        cJSON *js = cJSON_CreateString(out);
        char *q = js ? cJSON_PrintUnformatted(js) : NULL;
        printf("{\"out\":%s,\"params\":%zu,\"tensors\":%d,\"seed\":%ld}\n", q ? q : "null", m->n_params,
               m->n_tensors, seed);
        free(q);
        cJSON_Delete(js);
    }
    model_free(m);
    return rc ? 1 : 0;
}
