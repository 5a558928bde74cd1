/* reward/reward_model.h — the reward model of DeepSeek-Coder-V2 §3.5.2: the policy's trunk
 * plus a scalar head on the last token, trained to predict whether a completion passes
 * its tests from the executions recorded in run stores.
 * Defines: RewardModel, RmTrainConfig, reward_model_load, reward_model_save,
 * reward_model_score, reward_model_free, rm_train_config_default, reward_model_train,
 * reward_model_load_ops.
 *
 * Input: the chat rendering of (user: prompt, assistant: completion) — the same text the
 * policy was trained on — ending with EOS; score s = w . h_last + b where h_last is the
 * final-norm hidden state of the last token; P(pass) = sigmoid(s).
 * Training: BCE on (prompt, completion) -> passed (default), or the pairwise loss
 * -log sigmoid(s_pass - s_fail) over the pass/fail pairs of each group (--pairwise;
 * a group is then never split across batches).
 * Executions with verdict IE are left out (the program is not to blame). A held-out
 * split (a fixed fraction of groups, by hash) reports AUC, the probability that a
 * passing completion outscores a failing one (ties count 1/2).
 * RM directory: a model directory (config.json, model.safetensors, tokenizer.json) plus
 * rm_head.safetensors ("head.weight" [1, D], "head.bias" [1]) and rm.json.
 * Backends: the trunk (parameters, gradients, AdamW moments) may live on any backend
 * (model/device.h); hidden states come back to the host, where the head and its AdamW
 * step run. */
#ifndef CRUCIBLE_REWARD_REWARD_MODEL_H
#define CRUCIBLE_REWARD_REWARD_MODEL_H

#include "core/error.h"
#include "model/model.h"

typedef struct Tokenizer Tokenizer;

typedef struct RewardModel {
    Model *trunk;
    float *head_w;   /* [D] */
    float head_b;
} RewardModel;

RewardModel *reward_model_load(const char *dir, CrError *e);
/* The same with the trunk on a given backend (reward_model_load uses ops_cpu()); the
 * head stays in host memory. */
RewardModel *reward_model_load_ops(const char *dir, const struct Ops *ops, CrError *e);
int reward_model_save(const RewardModel *rm, const char *dir, const char *tokenizer_json, const char *info_json,
                      CrError *e);
/* P(pass) for n completions of one prompt. */
int reward_model_score(RewardModel *rm, const Tokenizer *tok, const char *prompt, const char *const *completions,
                       int n, double *p_pass, CrError *e);
void reward_model_free(RewardModel *rm);

typedef struct RmTrainConfig {
    const char *const *dbs;
    int n_dbs;
    const char *model_dir, *out_dir;
    long epochs, batch_tokens, max_seq_len, seed;
    double lr, holdout, weight_decay;
    int pairwise;
    const char *device;   /* --device value (model/device.h); NULL = cpu: where the trunk trains */
    const struct Ops *ops;  /* the backend itself (library use, tests): overrides device */
} RmTrainConfig;

void rm_train_config_default(RmTrainConfig *c);
/* Train; *auc_out (may be NULL) gets the held-out AUC (NaN when the split has no
 * pass/fail pair). */
int reward_model_train(const RmTrainConfig *c, double *auc_out, CrError *e);

/* AUC of scores against binary labels (Mann-Whitney; ties 1/2); NaN without both classes. */
double rm_auc(const double *score, const int *label, int n);

#endif
