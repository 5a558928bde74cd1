/* model/checkpoint.h — training checkpoints: what a run needs to resume bit for bit.
 * Defines: checkpoint_save, checkpoint_save_with_tokenizer, checkpoint_load,
 * checkpoint_load_ops, checkpoint_latest, checkpoint_step_dir, checkpoint_prune,
 * checkpoint_remove_before.
 * Models and optimizers on any backend are saved (moments downloaded to the host).
 *
 * A checkpoint is a directory that is also a Hugging Face model directory:
 *   config.json, model.safetensors        (model_save: HF names, F32)
 *   optimizer.safetensors                 (when an optimizer is given) F32 tensors
 *                                         "exp_avg.<name>" and "exp_avg_sq.<name>" per
 *                                         parameter; __metadata__ holds "step", "lr",
 *                                         "beta1", "beta2", "eps", "weight_decay"
 *   state.json                            the trainer's opaque JSON (step, RNG state,
 *                                         data cursor ...), when given
 *   tokenizer.json                        copied from the source, when there is one
 *   DONE                                  written last: only a directory with DONE is a
 *                                         complete checkpoint
 * Saving builds everything in DIR.partial and renames it to DIR at the end (replacing an
 * existing DIR only then), so a crash never leaves a half-written DIR nor loses an older
 * complete one. An existing DIR without DONE is not replaced (it is not ours): error. */
#ifndef CRUCIBLE_MODEL_CHECKPOINT_H
#define CRUCIBLE_MODEL_CHECKPOINT_H

#include "core/error.h"
#include "model/adamw.h"
#include "model/model.h"

/* opt and state_json may be NULL. state_json must be valid JSON text. */
int checkpoint_save(const char *dir, const Model *m, const AdamW *opt, const char *state_json, CrError *e);
/* Same, also copying tokenizer_json (e.g. "<source model dir>/tokenizer.json") into the
 * checkpoint when that file exists (NULL or a missing file: nothing is copied). */
int checkpoint_save_with_tokenizer(const char *dir, const Model *m, const AdamW *opt, const char *state_json,
                                   const char *tokenizer_json, CrError *e);
/* Load a complete checkpoint (DONE present). When opt is given it is initialised from the
 * saved hyper-parameters, step and moments (the caller may then change opt->cfg); a
 * checkpoint without optimizer state is then an error. *state_json (when asked) is the
 * malloc'd text of state.json or NULL if the checkpoint has none. */
Model *checkpoint_load(const char *dir, AdamW *opt, char **state_json, CrError *e);
/* The same onto a given backend (checkpoint_load uses ops_cpu()): the model and the
 * optimizer moments are uploaded into ops' memory. */
Model *checkpoint_load_ops(const char *dir, const struct Ops *ops, AdamW *opt, char **state_json, CrError *e);
/* The newest complete checkpoint: among RUN/checkpoints/step-<N> (or RUN/step-<N> when
 * RUN has no checkpoints/ folder) holding DONE, the one with the largest N. malloc'd
 * path, or NULL (e says why: no such directory / none complete). */
char *checkpoint_latest(const char *run_dir, CrError *e);
/* malloc'd "RUN/checkpoints/step-%06ld" — the name checkpoint_latest looks for. */
char *checkpoint_step_dir(const char *run_dir, long step);
/* Keep the keep_last (>= 1) newest complete step-N checkpoints under RUN/checkpoints (or
 * RUN, as checkpoint_latest) and delete older complete ones; incomplete step-N directories
 * older than the newest complete one and leftover "*.partial" / "*.old.*" directories of
 * interrupted saves are deleted too. Returns the number of directories removed, or -1;
 * *oldest_kept (when not NULL) = the step of the oldest complete checkpoint kept, -1 if none. */
int checkpoint_prune(const char *run_dir, int keep_last, long *oldest_kept, CrError *e);
/* Delete the step-N directories directly under DIR with N < step (complete or not); a
 * missing DIR is no error. Returns the number removed, or -1. */
int checkpoint_remove_before(const char *dir, long step, CrError *e);

#endif
