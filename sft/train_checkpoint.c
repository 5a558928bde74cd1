/* sft/train_checkpoint.c — see train_checkpoint.h */
#include "sft/train_checkpoint.h"
#include "model/checkpoint.h"

int train_checkpoint(RunLog *log, const char *dir, long step, const Model *m, const AdamW *opt,
                     const char *state_json, const char *tokenizer_json, CrError *e) {
    if (checkpoint_save_with_tokenizer(dir, m, opt, state_json, tokenizer_json, e)) return -1;
    return runstore_add_checkpoint(log->rs, log->run_id, step, dir, e);
}
