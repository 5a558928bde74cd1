/* tests/rollout/generate.h — one rollout_generate call on a fresh engine, for the tests
 * that compare two backends' samples. Defines: test_generate. */
#ifndef CRUCIBLE_TESTS_ROLLOUT_GENERATE_H
#define CRUCIBLE_TESTS_ROLLOUT_GENERATE_H

#include <stdint.h>

#include "model/model.h"
#include "rollout/rollout.h"
#include "tests/test.h"

/* n prompts pr[i] (lens[i] tokens) x G samples each with sp, on a fresh engine over m
 * whose latent cache holds cache_tokens tokens (rollout_create); *st (when given) its
 * stats afterwards. Always returns n * G samples (zeroed where the engine failed, which
 * is a test failure); the caller sample_free()s each and free()s the array. */
Sample *test_generate(TestCtx *t_, Model *m, long cache_tokens, int n, int G, const SampleParams *sp, int32_t **pr,
                      const int *lens, RolloutStats *st);

#endif
