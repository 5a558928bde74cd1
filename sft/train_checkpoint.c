/* sft/train_checkpoint.c — see train_checkpoint.h */
#include "sft/train_checkpoint.h"
#include "model/checkpoint.h"
#include "core/file.h"

#include <stdio.h>
#include <stdlib.h>

int train_checkpoint(RunLog *log, const char *who, const char *out_dir, int final, long step, const Model *m,
                     const AdamW *opt, const char *state_json, const char *tokenizer_json, CrError *e) {
    char *dir = final ? cr_path_join(out_dir, "final") : checkpoint_step_dir(out_dir, step);
    int r = checkpoint_save_with_tokenizer(dir, m, opt, state_json, tokenizer_json, e);
    if (r == 0) r = runstore_add_checkpoint(log->rs, log->run_id, step, dir, e) < 0 ? -1 : 0;
    if (r == 0 && final) fprintf(stderr, "%s: %ld steps; final model in %s\n", who, step, dir);
    free(dir);
    return r;
}
