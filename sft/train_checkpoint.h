/* sft/train_checkpoint.h — a trainer's checkpoint: written (model/checkpoint.h) and then
 * recorded in the run's store, so that `crucible report` and resume see the same set.
 * Used by the SFT and GRPO trainers. Defines: train_checkpoint, train_state_read,
 * train_out_claim, train_out_release. */
#ifndef CRUCIBLE_SFT_TRAIN_CHECKPOINT_H
#define CRUCIBLE_SFT_TRAIN_CHECKPOINT_H

#include "core/error.h"
#include "data/run_log.h"
#include "model/adamw.h"
#include "model/model.h"

/* Save the checkpoint of STEP (model, optimizer, state_json, a copy of tokenizer_json)
 * under OUT_DIR — OUT_DIR/final when final, else the step's directory
 * (checkpoint_step_dir) — and add it to the store's checkpoints. final also says so on
 * stderr ("WHO: N steps; final model in DIR"). keep_last > 0 (a step checkpoint): only the
 * newest keep_last complete step checkpoints stay (checkpoint_prune), the store forgets the
 * deleted ones, and *oldest_kept (when not NULL) is the oldest kept step (else -1); a failed
 * prune is a warning on stderr. 0 or -1 with e set. */
int train_checkpoint(RunLog *log, const char *who, const char *out_dir, int final, long step, const Model *m,
                     const AdamW *opt, const char *state_json, const char *tokenizer_json, int keep_last,
                     long *oldest_kept, CrError *e);

/* A trainer's state.json: *dst[i] = the field keys[i] (each required, an integer >= 0),
 * "trainer" (when present) must be `who`, and the run's seed must equal "seed" when the
 * file records one (a resume with another --seed would not continue the same run). 0 or
 * -1 with e set, naming the field. */
int train_state_read(const char *state_json, const char *who, const char *const *keys, long *const *dst, int n,
                     long seed, CrError *e);

/* The run directory OUT_DIR for a run of WHO, claimed before anything is written there:
 * created if missing; locked (an exclusive flock on OUT_DIR/.lock, held until
 * train_out_release or exit) so two runs cannot interleave their checkpoints and store;
 * and, for a new run (resume 0), refused when it already holds one — a run.db, final/ or
 * a step-N checkpoint — whose results the new run would replace or mix with its own (the
 * error says to pass --resume or another --out). The lock's fd, or -1 with e set. */
int train_out_claim(const char *who, const char *out_dir, int resume, CrError *e);
void train_out_release(int fd);

#endif
