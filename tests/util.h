/* tests/util.h — helpers shared by the CLI-level tests.
 * Defines: test_run, test_make_tiny_model, test_make_eos_happy, test_write_comment_tasks,
 * test_same_file, test_write_rm_runstore, test_gpu_visible. */
#ifndef CRUCIBLE_TESTS_UTIL_H
#define CRUCIBLE_TESTS_UTIL_H

/* Run a shell command line (printf-style); returns its exit status (-1 if it died). */
int test_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A tokenizer trained on configs/tiny/corpus.txt and a randomly initialised tiny MoE
 * (2 layers, hidden 32, 4 experts top-2, one dense lead layer) in DIR/model.
 * Returns 0 on success. */
int test_make_tiny_model(const char *dir, int seed);
/* Scale the lm_head row of the tokenizer's EOS in DIR/model by 15, so that EOS is a
 * likely next token at some positions: completions of the random tiny model then end at
 * varied lengths (1 to 3 tokens with max_new_tokens 3) instead of always at the cap.
 * Returns 0 on success. */
int test_make_eos_happy(const char *dir);
/* n Python code-style tasks whose program_prefix ends in an open comment ("# "), so a
 * completion passes exactly when it stays on that line as valid UTF-8 text: with a
 * random tiny model and 2-3 new tokens, some completions of a group pass and some fail
 * (RE), which gives GRPO non-zero advantages and a mix of zero-variance groups.
 * Returns 0 on success. */
int test_write_comment_tasks(const char *path, int n);
/* 1 when both files exist and have identical bytes. */
int test_same_file(const char *a, const char *b);
/* A run store DB (created) holding one GRPO run of `steps` steps of one prompt each with
 * `group` rollouts: each passes with probability 1/2 (its completion one of good[0..n),
 * verdict OK) or fails (one of bad[0..n), verdict WA), drawn from the stream (11, 0, 0)
 * — the reward model's training data. Returns 0, or -1 with a message on stderr. */
int test_write_rm_runstore(const char *db, int steps, int group, const char *const *good, const char *const *bad,
                           int n);

/* 1 when the build has the CUDA backend and a CUDA device is visible. */
int test_gpu_visible(void);

#endif
