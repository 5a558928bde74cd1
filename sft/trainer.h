/* sft/trainer.h — supervised fine-tuning: chat / prompt-completion / FIM JSONL ->
 * packed batches -> loss on assistant/completion tokens only -> AdamW.
 * Defines: SftConfig, sft_config_default, sft_train.
 *
 * Run directory RUN: run.db (metrics per step), tb/ (TensorBoard), checkpoints/step-N
 * (every save_every steps; complete ones hold DONE), final/ (a model directory with
 * tokenizer.json). Resume (--resume): the newest complete checkpoint is loaded (model,
 * AdamW moments, data cursor) and the run continues bit for bit as if uninterrupted
 * on the same machine and thread count: the data order is a pure function of
 * (seed, epoch) and nothing else carries random state.
 *
 * Eval (eval_data): the mean loss over all its target tokens, after every eval_every-th
 * step and after the last one (eval_every 0: the last one only), logged as eval_loss.
 * Data: sft/encode.h (FIM at fim_rate on plain documents), sft/pack.h (packing).
 *
 * Loss: mean over the target tokens of one optimizer step (all grad_accum micro-batches):
 * dL/dlogp_t = -1/T; the MoE auxiliary loss is added with weight 1 (spec §6.4): each
 * micro-batch's (a mean over its sequences when seq_aux) weighted by its share of the
 * step's sequences, so that --grad-accum gives the gradient of one batch of them all
 * (tests/sft/test_sft_options.c).
 * Device: the model, gradients and AdamW moments live on the backend named by
 * c->device (model/device.h); the loop is the same on every backend. */
#ifndef CRUCIBLE_SFT_TRAINER_H
#define CRUCIBLE_SFT_TRAINER_H

#include "core/error.h"

struct Ops;

typedef struct SftConfig {
    const char *model_dir, *data_path, *out_dir, *eval_data;
    long epochs;
    double lr, warmup, min_lr_ratio, weight_decay, beta1, beta2, adam_eps, max_grad_norm;
    long batch_tokens, grad_accum, max_seq_len;
    double fim_rate;
    long eval_every, save_every, seed, max_steps;
    long keep_last;  /* keep only the newest N step checkpoints (0: all) */
    int resume;
    const char *device;        /* --device value (model/device.h); NULL = cpu */
    const struct Ops *ops;     /* the backend itself (library use, tests): overrides device */
    const char *config_json;   /* the effective flags, recorded in the run store */
} SftConfig;

void sft_config_default(SftConfig *c);
/* Returns 0 when training finished; -1 with e set on bad input or I/O failure. */
int sft_train(const SftConfig *c, CrError *e);

#endif
