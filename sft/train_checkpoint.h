/* sft/train_checkpoint.h — a trainer's checkpoint: written (model/checkpoint.h) and then
 * recorded in the run's store, so that `crucible report` and resume see the same set.
 * Used by the SFT and GRPO trainers. Defines: train_checkpoint. */
#ifndef CRUCIBLE_SFT_TRAIN_CHECKPOINT_H
#define CRUCIBLE_SFT_TRAIN_CHECKPOINT_H

#include "core/error.h"
#include "data/run_log.h"
#include "model/adamw.h"
#include "model/model.h"

/* Save DIR (model, optimizer, state_json, a copy of tokenizer_json) and add it to the
 * store's checkpoints at STEP. 0 or -1 with e set. */
int train_checkpoint(RunLog *log, const char *dir, long step, const Model *m, const AdamW *opt,
                     const char *state_json, const char *tokenizer_json, CrError *e);

#endif
