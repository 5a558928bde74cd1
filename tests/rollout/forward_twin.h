/* tests/rollout/forward_twin.h — forward_ops_run on two models side by side: k = 0 the
 * reference (ops_cpu()), k = 1 the backend under test (guarded CPU, CUDA), each with its
 * own latent cache, fed the same rows; each call leaves the reference's logits in host[]
 * and the tested backend's, downloaded, in back[] for the test to compare (bit for bit,
 * or within a tolerance). Defines: FwdTwin, fwd_twin_open, fwd_twin_run, fwd_twin_close. */
#ifndef CRUCIBLE_TESTS_ROLLOUT_FORWARD_TWIN_H
#define CRUCIBLE_TESTS_ROLLOUT_FORWARD_TWIN_H

#include <stdint.h>

#include "core/error.h"
#include "model/model.h"
#include "rollout/forward_ops.h"
#include "rollout/kv_cache.h"

enum { FWD_TWIN_MAX_SEQ = 4 };

typedef struct FwdTwin {
    Model *m[2];
    ForwardOps *f[2];
    LatentCache *c[2];
    CacheSeq s[2][FWD_TWIN_MAX_SEQ];
    int reserved[2], n_seq, max_rows;
    float *host, *back, *dlog;  /* reference logits, tested logits downloaded, tested logits */
    int calls;                  /* fwd_twin_run calls so far */
} FwdTwin;

/* Engines on ref and test (same config and weights: the caller's), attention form mode on
 * both, caches of n_blocks blocks of 8 positions, all reserved; up to n_seq (<=
 * FWD_TWIN_MAX_SEQ) sequences and max_rows logit rows a call. 0, or -1 with e set (then
 * fwd_twin_close frees what was made). */
int fwd_twin_open(FwdTwin *w, Model *ref, Model *test, int n_seq, int max_rows, int n_blocks,
                  ForwardOpsAttention mode, CrError *e);
/* One call of both engines: rows (seq[i], pos[i], tok[i]) for i < n (each sequence's
 * length grown to cover pos), logits of rows lr[0..nl) (nl <= max_rows). The tested
 * backend's logits buffer is NaN-poisoned first. */
void fwd_twin_run(FwdTwin *w, int n, const int *seq, const int32_t *pos, const int32_t *tok, const int *lr,
                  int nl);
/* Releases the sequences, caches, engines and buffers (not the models). */
void fwd_twin_close(FwdTwin *w);

#endif
