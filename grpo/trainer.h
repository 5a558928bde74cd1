/* grpo/trainer.h — GRPO with compiler-feedback rewards (spec/grpo.md).
 * Defines: GrpoConfig, grpo_config_default, grpo_train.
 *
 * One step: take B prompts (a fixed permutation of the tasks per epoch); roll out G
 * completions each with the rollout engine (which reads the policy's weights in place);
 * extract the code and judge every completion in the sandbox pool; rewards from the
 * verdicts (reward/combine.h) and optionally the reward model; group-relative
 * advantages (grpo/advantage.h: --reward-combine sum weights the functions then
 * scales, normalize z-scores each per group and standardises the sum over the batch;
 * dynamic sampling and the stored reward use the weighted sum); with --dynamic-sampling
 * groups whose rewards are all equal are dropped and more prompts are drawn (up to 4
 * rounds) to fill the batch;
 * old-policy log-probabilities are recomputed with the training path when mu > 1 (mu = 1:
 * rho = 1 exactly, nothing recomputed) and reference log-probabilities when beta > 0
 * (beta = 0: no reference model is loaded); mu optimizer steps of the clipped objective
 * (grpo/loss.h) with the MoE auxiliary loss kept; AdamW; everything logged to RUN/run.db
 * and RUN/tb/; checkpoints.
 *
 * Sampling is seeded from (seed, step), prompts from (seed, epoch): a resumed run
 * repeats the uninterrupted one bit for bit (tests/grpo/test_grpo_resume.c). The
 * reference is the initial model or, with --ref-reset-every K, the policy at the last
 * reset R = floor(step / K) K; a checkpoint taken at step s with 0 < R < s first saves
 * that reference once as RUN/reference/step-R (a complete checkpoint directory), which
 * --resume loads. state.json records the seed; resuming with another seed is an error.
 * The sandbox pool is spawned before anything else, in particular before the compute
 * backend named by c->device is opened (CUDA must not be initialised in a process that
 * still has to spawn its workers). The policy, its gradients and AdamW moments, and the
 * reference model live on that backend. */
#ifndef CRUCIBLE_GRPO_TRAINER_H
#define CRUCIBLE_GRPO_TRAINER_H

#include "core/error.h"

struct Ops;

typedef struct GrpoConfig {
    const char *model_dir, *tasks_path, *out_dir, *rm_dir;
    long steps, group, prompts_per_step, mu;
    double lr, beta, eps_low, eps_high, weight_decay, max_grad_norm, warmup, min_lr_ratio;
    double beta1, beta2; /* AdamW moments' decay (0.9, 0.99); beta above is the KL coefficient */
    const char *loss_type, *scale_rewards, *reward_combine, *reward, *reward_weights, *verdict_values, *prompt_format;
    int dynamic_sampling, dual_clip, overlong_mask;
    long overlong_buffer, max_new_tokens, ref_reset_every, sandbox_workers, save_every, seed;
    long keep_last;  /* keep only the newest N step checkpoints and the references they need (0: all) */
    long batch_tokens, cache_tokens;
    double temperature, top_p, time_limit;
    int resume;
    const char *device;        /* --device value (model/device.h); NULL = cpu */
    const struct Ops *ops;     /* the backend itself (library use, tests): overrides device */
    const char *config_json;
} GrpoConfig;

void grpo_config_default(GrpoConfig *c);
int grpo_train(const GrpoConfig *c, CrError *e);

#endif
