/* tests/rollout/generate.c — see generate.h */
#include "tests/rollout/generate.h"

#include <stdlib.h>

#include "core/alloc.h"

Sample *test_generate(TestCtx *t_, Model *m, long cache_tokens, int n, int G, const SampleParams *sp, int32_t **pr,
                      const int *lens, RolloutStats *st) {
    CrError e;
    Sample *out = cr_calloc((size_t)n * G, sizeof *out);
    RolloutEngine *r = rollout_create(m, NULL, cache_tokens, &e);
    CHECKF(r != NULL, "%s", e.msg);
    if (!r) return out;
    CHECKF(rollout_generate(r, (const int32_t *const *)pr, lens, n, G, sp, 0, out, &e) == 0, "%s", e.msg);
    if (st) *st = rollout_stats(r);
    rollout_free(r);
    return out;
}
