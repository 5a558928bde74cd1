/* tests/rollout/ref_model.h — test-only helpers for the rollout tests:
 *  - ref_model_new: model_create + random weights of a chosen scale (larger than the
 *    initializer's, so that greedy choices have clear margins);
 *  - ref_forward: an independent, double-precision, NON-absorbed forward over a whole
 *    sequence (spec §4.2: explicit per-head K/V), giving every position's logits and
 *    the routing, against which the absorbed latent-cache engine is checked. */
#ifndef CRUCIBLE_TESTS_ROLLOUT_REF_MODEL_H
#define CRUCIBLE_TESTS_ROLLOUT_REF_MODEL_H

#include <stdint.h>

#include "model/model.h"

/* json: a config.json text. init_std: weight scale (larger -> sharper distributions). */
Model *ref_model_new(const char *json, uint64_t seed, float init_std);
void ref_model_free(Model *m);
/* logits [T][V] (double), experts [T][n_moe][K] (may be NULL; ascending expert id). */
void ref_forward(const Model *m, const int32_t *tokens, int T, double *logits, int32_t *experts);
/* log softmax(row)[tok] */
double ref_logprob(const double *row, int V, int tok, double temperature);
int ref_argmax(const double *row, int V);

#endif
