/* sft/train_checkpoint.c — see train_checkpoint.h */
#include "sft/train_checkpoint.h"
#include "model/checkpoint.h"
#include "core/file.h"

#include <cjson/cJSON.h>

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

int train_state_read(const char *state_json, const char *const *keys, long *const *dst, int n, long seed,
                     CrError *e) {
    cJSON *o = cJSON_Parse(state_json);
    if (!o) return cr_error_set(e, "state.json: not valid JSON");
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!cJSON_IsNumber(it)) { cJSON_Delete(o); return cr_error_set(e, "state.json: field \"%s\" missing", keys[i]); }
        *dst[i] = (long)it->valuedouble;
    }
    const cJSON *sd = cJSON_GetObjectItemCaseSensitive(o, "seed");
    if (cJSON_IsNumber(sd) && (long)sd->valuedouble != seed) {
        long saved = (long)sd->valuedouble;   /* read before the tree is freed */
        cJSON_Delete(o);
        return cr_error_set(e, "state.json: the checkpoint was made with --seed %ld, not %ld", saved, seed);
    }
    cJSON_Delete(o);
    return 0;
}
