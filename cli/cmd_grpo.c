/* cli/cmd_grpo.c — `crucible grpo`: reinforcement learning with compiler feedback
 * (grpo/trainer.h). */
#include "cli/command.h"
#include "core/args.h"
#include "model/device.h"
#include "grpo/trainer.h"

#include <stdio.h>
#include <stdlib.h>

const char cmd_grpo_summary[] = "GRPO with sandbox (compiler-feedback) rewards on a task set";

int cmd_grpo(int argc, char **argv) {
    GrpoConfig c;
    grpo_config_default(&c);
    c.device = device_default();
    int resume = 0;
    ArgSpec specs[] = {
        {"model", ARG_STR, &c.model_dir, "policy model directory (with tokenizer.json)", 1},
        {"tasks", ARG_STR, &c.tasks_path, "tasks JSONL(.gz): ours, HumanEval, MBPP, EvalPlus, APPS", 1},
        {"out", ARG_STR, &c.out_dir, "run directory (run.db, tb/, checkpoints/, final/)", 1},
        {"steps", ARG_INT, &c.steps, "optimizer steps (20)", 0},
        {"group", ARG_INT, &c.group, "completions per prompt G (8)", 0},
        {"prompts-per-step", ARG_INT, &c.prompts_per_step, "prompts per step B (8)", 0},
        {"mu", ARG_INT, &c.mu, "optimizer passes over each rollout batch (1)", 0},
        {"lr", ARG_FLOAT, &c.lr, "learning rate (1e-6)", 0},
        {"warmup", ARG_FLOAT, &c.warmup, "warmup steps (>= 1) or fraction (0)", 0},
        {"min-lr-ratio", ARG_FLOAT, &c.min_lr_ratio, "cosine floor; 1 = constant lr (1)", 0},
        {"weight-decay", ARG_FLOAT, &c.weight_decay, "AdamW weight decay (0)", 0},
        {"max-grad-norm", ARG_FLOAT, &c.max_grad_norm, "global-norm clipping (1.0)", 0},
        {"beta1", ARG_FLOAT, &c.beta1, "AdamW beta1 (0.9)", 0},
        {"beta2", ARG_FLOAT, &c.beta2, "AdamW beta2 (0.99)", 0},
        {"beta", ARG_FLOAT, &c.beta, "k3 KL coefficient to the frozen reference; 0 = no reference (0.04)", 0},
        {"eps-low", ARG_FLOAT, &c.eps_low, "clip 1 - eps_low (0.2)", 0},
        {"eps-high", ARG_FLOAT, &c.eps_high, "clip 1 + eps_high (0.2; DAPO 0.28)", 0},
        {"dual-clip", ARG_BOOL, &c.dual_clip, "dual clip (c = 3) for negative advantages", 0},
        {"loss-type", ARG_STR, &c.loss_type, "grpo | dapo | dr_grpo | bnpo (grpo)", 0},
        {"scale-rewards", ARG_STR, &c.scale_rewards, "group | batch | none (group)", 0},
        {"reward-combine", ARG_STR, &c.reward_combine, "sum (weighted sum, then scale) | normalize (z-score each function per group) (sum)", 0},
        {"dynamic-sampling", ARG_BOOL, &c.dynamic_sampling, "drop all-equal-reward groups and sample more", 0},
        {"overlong-buffer", ARG_INT, &c.overlong_buffer, "DAPO overlong shaping buffer L_c in tokens (0 = off)", 0},
        {"overlong-mask", ARG_BOOL, &c.overlong_mask, "mask truncated completions out of the loss", 0},
        {"max-new-tokens", ARG_INT, &c.max_new_tokens, "completion length cap (256)", 0},
        {"temperature", ARG_FLOAT, &c.temperature, "sampling temperature (1.0)", 0},
        {"top-p", ARG_FLOAT, &c.top_p, "nucleus sampling (1.0)", 0},
        {"ref-reset-every", ARG_INT, &c.ref_reset_every, "reset the reference to the policy every K steps (0 = never)", 0},
        {"reward", ARG_STR, &c.reward, "comma list of compile,tests,format,rm,overlong (tests)", 0},
        {"reward-weights", ARG_STR, &c.reward_weights, "comma list of weights (all 1)", 0},
        {"verdict-values", ARG_STR, &c.verdict_values, "failure reward per verdict, e.g. CE=-1,RE=-0.5", 0},
        {"rm", ARG_STR, &c.rm_dir, "reward model directory for --reward rm", 0},
        {"prompt-format", ARG_STR, &c.prompt_format, "chat | raw (chat)", 0},
        {"sandbox-workers", ARG_INT, &c.sandbox_workers, "sandbox worker processes (2)", 0},
        {"device", ARG_STR, &c.device, DEVICE_FLAG_HELP, 0},
        {"time-limit", ARG_FLOAT, &c.time_limit, "CPU seconds per test run (10)", 0},
        {"batch-tokens", ARG_INT, &c.batch_tokens, "tokens per training micro-batch (8192)", 0},
        {"cache-tokens", ARG_INT, &c.cache_tokens, "rollout latent-cache budget in tokens (auto)", 0},
        {"save-every", ARG_INT, &c.save_every, "checkpoint every N steps (0 = only final)", 0},
        {"keep-last", ARG_INT, &c.keep_last, "keep only the newest N step checkpoints and the references they resume with (0 = all)", 0},
        {"seed", ARG_INT, &c.seed, "seed for prompt order and sampling (0)", 0},
        {"resume", ARG_BOOL, &resume, "continue from the newest complete checkpoint in --out", 0},
        {NULL, 0, NULL, NULL, 0}};
    CrError e;
    int rc = cr_args_parse("crucible grpo --model DIR --tasks FILE.jsonl --out RUN [flags]", specs, argc, argv, NULL, NULL, &e);
    if (rc == CR_ARGS_HELP) return 0;
    if (rc) { fprintf(stderr, "crucible grpo: %s\n", e.msg); return 2; }
    c.resume = resume;
    char *cfg = cr_args_to_json(specs);
    c.config_json = cfg;
    rc = grpo_train(&c, &e);
    free(cfg);
    if (rc) { fprintf(stderr, "crucible grpo: %s\n", e.msg); return 1; }
    return 0;
}
