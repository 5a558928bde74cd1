/* tests/rollout/forward_twin.c — see forward_twin.h */
#include "tests/rollout/forward_twin.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "model/ops.h"

int fwd_twin_open(FwdTwin *w, Model *ref, Model *test, int n_seq, int max_rows, int n_blocks,
                  ForwardOpsAttention mode, CrError *e) {
    memset(w, 0, sizeof *w);
    if (n_seq < 1 || n_seq > FWD_TWIN_MAX_SEQ) return cr_error_set(e, "fwd_twin_open: n_seq %d", n_seq);
    w->m[0] = ref, w->m[1] = test;
    w->n_seq = n_seq, w->max_rows = max_rows;
    const ModelConfig *c = &ref->cfg;
    int rw = c->kv_lora_rank + c->qk_rope_head_dim;
    for (int k = 0; k < 2; k++) {
        w->f[k] = forward_ops_new(w->m[k]);
        forward_ops_set_attention(w->f[k], mode);
        w->c[k] = latent_cache_create_ops(w->m[k]->ops, c->num_hidden_layers, rw, 8, n_blocks, e);
        if (!w->c[k]) return -1;
        if (cache_reserve(w->c[k], w->c[k]->n_blocks)) return cr_error_set(e, "fwd_twin_open: cache_reserve");
        w->reserved[k] = w->c[k]->n_blocks;
    }
    size_t nl = (size_t)max_rows * c->vocab_size;
    w->host = cr_malloc(sizeof(float) * nl);
    w->back = cr_malloc(sizeof(float) * nl);
    w->dlog = test->ops->alloc(sizeof(float) * nl);
    return 0;
}

void fwd_twin_run(FwdTwin *w, int n, const int *seq, const int32_t *pos, const int32_t *tok, const int *lr,
                  int nl) {
    CacheSeq **sp[2] = {cr_malloc(sizeof(CacheSeq *) * (size_t)(n ? n : 1)),
                        cr_malloc(sizeof(CacheSeq *) * (size_t)(n ? n : 1))};
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < n; i++) {
            CacheSeq *q = &w->s[k][seq[i]];
            cache_seq_prepare_write(w->c[k], q, pos[i], &w->reserved[k]);
            if (pos[i] + 1 > q->len) q->len = pos[i] + 1;
            sp[k][i] = q;
        }
    size_t nf = (size_t)nl * w->m[0]->cfg.vocab_size;
    for (size_t i = 0; i < nf; i++) w->back[i] = NAN;
    w->m[1]->ops->upload(w->dlog, w->back, sizeof(float) * nf); /* poisoned */
    forward_ops_run(w->f[0], w->c[0], n, tok, pos, sp[0], lr, nl, w->host, NULL);
    forward_ops_run(w->f[1], w->c[1], n, tok, pos, sp[1], lr, nl, w->dlog, NULL);
    w->m[1]->ops->download(w->back, w->dlog, sizeof(float) * nf);
    free(sp[0]);
    free(sp[1]);
    w->calls++;
}

void fwd_twin_close(FwdTwin *w) {
    for (int k = 0; k < 2; k++) {
        if (w->c[k]) {
            for (int q = 0; q < w->n_seq; q++) cache_seq_release(w->c[k], &w->s[k][q]);
            cache_unreserve(w->c[k], w->reserved[k]);
            latent_cache_free(w->c[k]);
        }
        if (w->f[k]) forward_ops_free(w->f[k]);
    }
    if (w->dlog) w->m[1]->ops->free(w->dlog);
    free(w->host);
    free(w->back);
    memset(w, 0, sizeof *w);
}
