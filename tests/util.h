/* tests/util.h — helpers shared by the CLI-level tests.
 * Defines: test_run, test_make_tiny_model. */
#ifndef CRUCIBLE_TESTS_UTIL_H
#define CRUCIBLE_TESTS_UTIL_H

/* Run a shell command line (printf-style); returns its exit status (-1 if it died). */
int test_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A tokenizer trained on configs/tiny/corpus.txt and a randomly initialised tiny MoE
 * (2 layers, hidden 32, 4 experts top-2, one dense lead layer) in DIR/model.
 * Returns 0 on success. */
int test_make_tiny_model(const char *dir, int seed);

#endif
