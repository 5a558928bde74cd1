/* sft/train_checkpoint.h — a trainer's checkpoint: written (model/checkpoint.h) and then
 * recorded in the run's store, so that `crucible report` and resume see the same set.
 * Used by the SFT and GRPO trainers. Defines: train_checkpoint, train_state_read. */
#ifndef CRUCIBLE_SFT_TRAIN_CHECKPOINT_H
#define CRUCIBLE_SFT_TRAIN_CHECKPOINT_H

#include "core/error.h"
#include "data/run_log.h"
#include "model/adamw.h"
#include "model/model.h"

/* Save the checkpoint of STEP (model, optimizer, state_json, a copy of tokenizer_json)
 * under OUT_DIR — OUT_DIR/final when final, else the step's directory
 * (checkpoint_step_dir) — and add it to the store's checkpoints. final also says so on
 * stderr ("WHO: N steps; final model in DIR"). 0 or -1 with e set. */
int train_checkpoint(RunLog *log, const char *who, const char *out_dir, int final, long step, const Model *m,
                     const AdamW *opt, const char *state_json, const char *tokenizer_json, CrError *e);

/* A trainer's state.json: *dst[i] = the integer field keys[i] (each required), and the
 * run's seed must equal "seed" when the file records one (a resume with another --seed
 * would not continue the same run). 0 or -1 with e set, naming the field. */
int train_state_read(const char *state_json, const char *const *keys, long *const *dst, int n, long seed,
                     CrError *e);

#endif
