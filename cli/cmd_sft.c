/* cli/cmd_sft.c — `crucible sft`: supervised fine-tuning (sft/trainer.h). */
#include "cli/command.h"
#include "core/args.h"
#include "model/device.h"
#include "sft/trainer.h"

#include <stdio.h>
#include <stdlib.h>

const char cmd_sft_summary[] = "supervised fine-tuning on chat / prompt-completion / FIM JSONL";

int cmd_sft(int argc, char **argv) {
    SftConfig c;
    sft_config_default(&c);
    c.device = device_default();
    int resume = 0;
    ArgSpec specs[] = {
        {"model", ARG_STR, &c.model_dir, "model directory (config.json, model.safetensors, tokenizer.json)", 1},
        {"data", ARG_STR, &c.data_path, "training JSONL: {\"messages\"}, {\"prompt\",\"completion\"} or FIM", 1},
        {"out", ARG_STR, &c.out_dir, "run directory (run.db, tb/, checkpoints/, final/)", 1},
        {"epochs", ARG_INT, &c.epochs, "passes over the data (default 1)", 0},
        {"lr", ARG_FLOAT, &c.lr, "peak learning rate (default 1e-4)", 0},
        {"warmup", ARG_FLOAT, &c.warmup, "warmup: steps if >= 1, else a fraction of all steps (0.03)", 0},
        {"min-lr-ratio", ARG_FLOAT, &c.min_lr_ratio, "cosine floor as a fraction of --lr (0.1)", 0},
        {"weight-decay", ARG_FLOAT, &c.weight_decay, "AdamW decoupled weight decay on 2-D weights (0.1)", 0},
        {"beta1", ARG_FLOAT, &c.beta1, "AdamW beta1 (0.9)", 0},
        {"beta2", ARG_FLOAT, &c.beta2, "AdamW beta2 (0.95)", 0},
        {"max-grad-norm", ARG_FLOAT, &c.max_grad_norm, "global-norm clipping, <= 0 off (1.0)", 0},
        {"batch-tokens", ARG_INT, &c.batch_tokens, "tokens per packed micro-batch (4096)", 0},
        {"grad-accum", ARG_INT, &c.grad_accum, "micro-batches per optimizer step (1)", 0},
        {"max-seq-len", ARG_INT, &c.max_seq_len, "truncate examples to this many tokens (2048)", 0},
        {"fim-rate", ARG_FLOAT, &c.fim_rate, "fraction of plain documents turned into FIM examples (0)", 0},
        {"eval-data", ARG_STR, &c.eval_data, "held-out JSONL for eval loss", 0},
        {"eval-every", ARG_INT, &c.eval_every, "eval loss every N steps (0 = only at the end if --eval-data)", 0},
        {"save-every", ARG_INT, &c.save_every, "checkpoint every N steps (0 = only final)", 0},
        {"keep-last", ARG_INT, &c.keep_last, "keep only the newest N step checkpoints (0 = all)", 0},
        {"max-steps", ARG_INT, &c.max_steps, "stop after N optimizer steps (0 = epochs decide)", 0},
        {"seed", ARG_INT, &c.seed, "data order and FIM seed (0)", 0},
        {"resume", ARG_BOOL, &resume, "continue from the newest complete checkpoint in --out", 0},
        {"device", ARG_STR, &c.device, DEVICE_FLAG_HELP, 0},
        {NULL, 0, NULL, NULL, 0}};
    CrError e;
    int rc = cr_args_parse("crucible sft --model DIR --data FILE.jsonl --out RUN [flags]", specs, argc, argv, NULL, NULL, &e);
    if (rc == CR_ARGS_HELP) return 0;
    if (rc) { fprintf(stderr, "crucible sft: %s\n", e.msg); return 2; }
    c.resume = resume;
    char *cfg = cr_args_to_json(specs);
    c.config_json = cfg;
    rc = sft_train(&c, &e);
    free(cfg);
    if (rc) { fprintf(stderr, "crucible sft: %s\n", e.msg); return 1; }
    return 0;
}
