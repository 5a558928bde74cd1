/* cli/cmd_rm.c — `crucible rm train|score`: the reward model (reward/reward_model.h).
 *   crucible rm train --db RUN/run.db [--db ...] --model DIR --out RM [--epochs --lr ...]
 *   crucible rm score --rm RM --data FILE.jsonl   (lines {"prompt","completion"})
 * score prints one JSON line per input line: {"index": i, "p_pass": x}. */
#include "cli/command.h"
#include "core/alloc.h"
#include "core/args.h"
#include "core/file.h"
#include "data/jsonl.h"
#include "model/device.h"
#include "model/ops.h"
#include "data/tokenizer.h"
#include "reward/reward_model.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cmd_rm_summary[] = "reward model: train on run stores' compiler outcomes, score completions";

static int rm_train_cmd(int argc, char **argv) {
    RmTrainConfig c;
    rm_train_config_default(&c);
    c.device = device_default();
    CrStrList dbs = {0};
    ArgSpec specs[] = {
        {"db", ARG_STR_LIST, &dbs, "run store(s) with judged completions (repeat)", 1},
        {"model", ARG_STR, &c.model_dir, "trunk initialisation (usually the policy)", 1},
        {"out", ARG_STR, &c.out_dir, "reward model directory", 1},
        {"epochs", ARG_INT, &c.epochs, "passes over the training split (2)", 0},
        {"lr", ARG_FLOAT, &c.lr, "learning rate (1e-4)", 0},
        {"batch-tokens", ARG_INT, &c.batch_tokens, "tokens per batch (4096)", 0},
        {"max-seq-len", ARG_INT, &c.max_seq_len, "truncate from the left to this many tokens (1024)", 0},
        {"holdout", ARG_FLOAT, &c.holdout, "fraction of groups held out for AUC (0.1)", 0},
        {"pairwise", ARG_BOOL, &c.pairwise, "pairwise loss within groups instead of BCE", 0},
        {"seed", ARG_INT, &c.seed, "shuffle seed (0)", 0},
        {"device", ARG_STR, &c.device, DEVICE_FLAG_HELP, 0},
        {NULL, 0, NULL, NULL, 0}};
    CrError e;
    int rc = cr_args_parse("crucible rm train --db RUN/run.db --model DIR --out RM", specs, argc, argv, NULL, NULL, &e);
    if (rc == CR_ARGS_HELP) return 0;
    if (rc) { fprintf(stderr, "crucible rm train: %s\n", e.msg); free(dbs.items); return 2; }
    c.dbs = dbs.items;
    c.n_dbs = dbs.n;
    double auc;
    int tr = reward_model_train(&c, &auc, &e);
    free(dbs.items);
    if (tr) { fprintf(stderr, "crucible rm train: %s\n", e.msg); return 1; }
    /* {"holdout_auc": x|null, "out": "RM"} through cJSON (the path may need escaping) */
    cJSON *o = cJSON_CreateObject();
    if (isfinite(auc)) cJSON_AddNumberToObject(o, "holdout_auc", auc);
    else cJSON_AddNullToObject(o, "holdout_auc");
    cJSON_AddStringToObject(o, "out", c.out_dir);
    char *js = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!js) { fprintf(stderr, "crucible rm train: out of memory\n"); return 1; }
    printf("%s\n", js);
    cJSON_free(js);
    return 0;
}

static int rm_score_cmd(int argc, char **argv) {
    const char *rm_dir = NULL, *data = NULL, *device = device_default();
    ArgSpec specs[] = {
        {"rm", ARG_STR, &rm_dir, "reward model directory", 1},
        {"data", ARG_STR, &data, "JSONL of {\"prompt\",\"completion\"}", 1},
        {"device", ARG_STR, &device, DEVICE_FLAG_HELP, 0},
        {NULL, 0, NULL, NULL, 0}};
    CrError e;
    int rc = cr_args_parse("crucible rm score --rm RM --data FILE.jsonl", specs, argc, argv, NULL, NULL, &e);
    if (rc == CR_ARGS_HELP) return 0;
    if (rc) { fprintf(stderr, "crucible rm score: %s\n", e.msg); return 2; }
    const Ops *ops = device_open(device, &e);
    if (!ops) { fprintf(stderr, "crucible rm score: %s\n", e.msg); return 1; }
    size_t len;
    char *buf = jsonl_read(data, &len, &e);
    if (!buf) { fprintf(stderr, "crucible rm score: %s\n", e.msg); return 1; }
    RewardModel *rm = reward_model_load_ops(rm_dir, ops, &e);
    char *tp = cr_path_join(rm_dir, "tokenizer.json");
    Tokenizer *tok = rm ? tokenizer_load(tp, &e) : NULL;
    free(tp);
    int status = 0;
    if (!rm || !tok) { fprintf(stderr, "crucible rm score: %s\n", e.msg); status = 1; goto done; }
    JsonlIter it;
    jsonl_iter_init(&it, buf, len, data);
    cJSON *o;
    int idx = 0, r;
    while ((r = jsonl_next(&it, &o, &e)) > 0) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "prompt"), *cpl = cJSON_GetObjectItemCaseSensitive(o, "completion");
        if (!cJSON_IsString(p) || !cJSON_IsString(cpl)) {
            fprintf(stderr, "crucible rm score: %s: line %d: fields \"prompt\" and \"completion\" must be strings\n", data, idx + 1);
            cJSON_Delete(o);
            status = 1;
            break;
        }
        double pp;
        const char *comp = cpl->valuestring;
        if (reward_model_score(rm, tok, p->valuestring, &comp, 1, &pp, &e)) {
            fprintf(stderr, "crucible rm score: %s\n", e.msg);
            cJSON_Delete(o);
            status = 1;
            break;
        }
        printf("{\"index\": %d, \"p_pass\": %.6f}\n", idx++, pp);
        cJSON_Delete(o);
    }
    if (r < 0) { fprintf(stderr, "crucible rm score: %s\n", e.msg); status = 1; }
    if (r == 0 && status == 0 && idx == 0) {  /* as sample and sft: nothing to do is an error */
        fprintf(stderr, "crucible rm score: %s: no lines to score\n", data);
        status = 1;
    }
done:
    reward_model_free(rm);
    tokenizer_free(tok);
    free(buf);
    return status;
}

int cmd_rm(int argc, char **argv) {
    if (argc >= 1 && !strcmp(argv[0], "train")) return rm_train_cmd(argc - 1, argv + 1);
    if (argc >= 1 && !strcmp(argv[0], "score")) return rm_score_cmd(argc - 1, argv + 1);
    fprintf(stderr, "usage: crucible rm train --db RUN/run.db [--db ...] --model DIR --out RM [flags]\n"
                    "       crucible rm score --rm RM --data FILE.jsonl\n"
                    "both take --device auto|cpu|cuda|cuda-fp32\n");
    return argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) ? 0 : 2;
}
