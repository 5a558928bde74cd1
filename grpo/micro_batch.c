/* grpo/micro_batch.c — see micro_batch.h */
#include "grpo/micro_batch.h"
#include "core/alloc.h"

#include <stdlib.h>
#include <string.h>

static int usable(const GrpoSeq *s) { return s->P > 0 && s->L > 0; }

int grpo_build_micros(const GrpoSeq *seqs, int n, long batch_tokens, GrpoMicro **out) {
    int cap = 8, nm = 0;
    GrpoMicro *ms = cr_calloc((size_t)cap, sizeof *ms);
    int i = 0;
    for (;;) {
        while (i < n && !usable(&seqs[i])) i++;
        if (i >= n) break;
        int start = i, ns = 0;
        long tok = 0;
        while (i < n) {
            if (!usable(&seqs[i])) { i++; continue; }
            long len = (long)seqs[i].P + seqs[i].L;
            if (ns > 0 && tok + len > batch_tokens) break;
            tok += len;
            ns++;
            i++;
        }
        if (nm == cap) { cap *= 2; ms = cr_realloc(ms, sizeof *ms * (size_t)cap); }
        GrpoMicro *m = &ms[nm++];
        memset(m, 0, sizeof *m);
        m->tokens = cr_malloc(sizeof(int32_t) * (size_t)tok);
        m->targets = cr_malloc(sizeof(int32_t) * (size_t)tok);
        m->cu = cr_malloc(sizeof(int32_t) * (size_t)(ns + 1));
        m->comp = cr_calloc((size_t)tok, sizeof(int));
        m->mask = cr_calloc((size_t)tok, sizeof(float));
        m->adv = cr_malloc(sizeof(float) * (size_t)ns);
        m->n_comp = ns;
        long off = 0;
        int k = 0;
        m->cu[0] = 0;
        for (int j = start; j < i; j++) {
            const GrpoSeq *s = &seqs[j];
            if (!usable(s)) continue;
            memcpy(m->tokens + off, s->prompt, sizeof(int32_t) * (size_t)s->P);
            memcpy(m->tokens + off + s->P, s->comp, sizeof(int32_t) * (size_t)s->L);
            int len = s->P + s->L;
            for (int t = 0; t < len; t++) {
                long at = off + t;
                m->comp[at] = k;
                /* position t predicts token t+1; completion tokens are P <= t+1 < len */
                if (t + 1 < len && t + 1 >= s->P) {
                    m->targets[at] = m->tokens[at + 1];
                    m->mask[at] = s->masked ? 0.0f : 1.0f;
                } else {
                    m->targets[at] = -1;
                }
            }
            m->adv[k] = s->adv;
            off += len;
            m->cu[++k] = (int32_t)off;
        }
        m->b.n_tokens = (int)tok;
        m->b.n_seqs = ns;
        m->b.tokens = m->tokens;
        m->b.targets = m->targets;
        m->b.cu_seqlens = m->cu;
        m->b.pos = NULL;
    }
    if (nm == 0) { free(ms); ms = NULL; }
    *out = ms;
    return nm;
}

GrpoNorm grpo_micro_norm(const GrpoMicro *mb, int n_mb, long max_new_tokens) {
    GrpoNorm norm = {0, 0, max_new_tokens, n_mb};
    for (int b = 0; b < n_mb; b++) {
        norm.n_completions += mb[b].n_comp;
        for (int t = 0; t < mb[b].b.n_tokens; t++) norm.n_tokens += mb[b].mask[t];
    }
    return norm;
}

float grpo_micro_aux_weight(const GrpoMicro *mb, int n_mb, int i, int seq_aux) {
    if (!seq_aux) return (float)(1.0 / n_mb);
    long total = 0;
    for (int b = 0; b < n_mb; b++) total += mb[b].n_comp;
    return total > 0 ? (float)((double)mb[i].n_comp / (double)total) : 0.0f;
}

void grpo_micro_free(GrpoMicro *mb, int n) {
    for (int i = 0; mb && i < n; i++) {
        GrpoMicro *m = &mb[i];
        free(m->tokens); free(m->targets); free(m->cu); free(m->comp); free(m->mask); free(m->adv);
        free(m->logp_old); free(m->logp_ref);
    }
    free(mb);
}
