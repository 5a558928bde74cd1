/* reward/reward_model.c — see reward_model.h */
#include "reward/reward_model.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/progress.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "data/chat.h"
#include "data/runstore.h"
#include "data/tokenizer.h"
#include "model/adamw.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/ops.h"
#include "model/schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void reward_model_free(RewardModel *rm) {
    if (!rm) return;
    model_free(rm->trunk);
    free(rm->head_w);
    free(rm);
}

RewardModel *reward_model_load(const char *dir, CrError *e) { return reward_model_load_ops(dir, ops_cpu(), e); }

RewardModel *reward_model_load_ops(const char *dir, const Ops *ops, CrError *e) {
    RewardModel *rm = cr_calloc(1, sizeof *rm);
    char *hp = cr_path_join(dir, "rm_head.safetensors");
    SafeTensors *st = NULL;
    rm->trunk = model_load_ops(dir, ops, e);
    if (!rm->trunk) goto fail;
    int D = rm->trunk->cfg.hidden_size;
    st = st_open(hp, e);
    if (!st) { cr_error_prefix(e, "%s: not a reward model directory (crucible rm train writes one)", dir); goto fail; }
    const StTensor *w = st_find(st, "head.weight"), *b = st_find(st, "head.bias");
    if (!w || !b) { cr_error_set(e, "%s: needs tensors head.weight [1, %d] and head.bias [1]", hp, D); goto fail; }
    rm->head_w = cr_malloc(sizeof(float) * (size_t)D);
    if (st_read_f32(w, rm->head_w, (size_t)D, e) || st_read_f32(b, &rm->head_b, 1, e)) goto fail;
    st_close(st);
    free(hp);
    return rm;
fail:
    st_close(st);
    free(hp);
    reward_model_free(rm);
    return NULL;
}

int reward_model_save(const RewardModel *rm, const char *dir, const char *tokenizer_json, const char *info_json,
                      CrError *e) {
    if (checkpoint_save_with_tokenizer(dir, rm->trunk, NULL, info_json, tokenizer_json, e)) return -1;
    int D = rm->trunk->cfg.hidden_size;
    StEntry ent[2] = {{"head.weight", ST_F32, 2, {1, D}, rm->head_w}, {"head.bias", ST_F32, 1, {1}, &rm->head_b}};
    char *hp = cr_path_join(dir, "rm_head.safetensors");
    int rc = st_write(hp, ent, 2, NULL, e);
    free(hp);
    if (rc == 0 && info_json) {
        char *ip = cr_path_join(dir, "rm.json");
        rc = cr_write_file_atomic(ip, info_json, strlen(info_json), e);
        free(ip);
    }
    return rc;
}

static int encode_pair(const Tokenizer *tok, const char *prompt, const char *completion, long max_len, TokenSeq *s,
                       CrError *e) {
    SftRole roles[2] = {SFT_USER, SFT_ASSISTANT};
    char *contents[2] = {(char *)prompt, (char *)completion};
    if (chat_encode(tok, roles, contents, 2, 0, s, e)) return -1;
    if (max_len > 0 && s->n > max_len) {  /* keep the tail: the scored last token is EOS */
        long cut = s->n - max_len;
        memmove(s->ids, s->ids + cut, sizeof(int32_t) * (size_t)max_len);
        memmove(s->loss, s->loss + cut, (size_t)max_len);
        s->n = (int)max_len;
    }
    return 0;
}

/* Scores (logits) of sequences packed into one batch. */
static int score_batch(RewardModel *rm, TokenSeq *seqs, int n, double *logit, float **hidden_out, Batch *bout,
                       int32_t **bufs, CrError *e) {
    long N = 0;
    for (int i = 0; i < n; i++) N += seqs[i].n;
    int32_t *tokens = cr_malloc(sizeof(int32_t) * (size_t)N), *targets = cr_malloc(sizeof(int32_t) * (size_t)N);
    int32_t *cu = cr_malloc(sizeof(int32_t) * (size_t)(n + 1));
    cu[0] = 0;
    for (int i = 0; i < n; i++) {
        memcpy(tokens + cu[i], seqs[i].ids, sizeof(int32_t) * (size_t)seqs[i].n);
        cu[i + 1] = cu[i] + seqs[i].n;
    }
    for (long t = 0; t < N; t++) targets[t] = -1;
    Batch b = {(int)N, n, tokens, targets, cu, NULL};
    int D = rm->trunk->cfg.hidden_size;
    float *hidden = cr_malloc(sizeof(float) * (size_t)N * D);
    float aux;
    int rc = model_forward_hidden(rm->trunk, &b, hidden, &aux, e);
    if (rc == 0)
        for (int i = 0; i < n; i++) {
            const float *h = hidden + (size_t)(cu[i + 1] - 1) * D;
            double s = rm->head_b;
            for (int d = 0; d < D; d++) s += (double)rm->head_w[d] * h[d];
            logit[i] = s;
        }
    if (hidden_out && rc == 0) {
        *hidden_out = hidden;
        *bout = b;
        bufs[0] = tokens; bufs[1] = targets; bufs[2] = cu;
        return 0;
    }
    free(hidden);
    free(tokens);
    free(targets);
    free(cu);
    return rc;
}

int reward_model_score(RewardModel *rm, const Tokenizer *tok, const char *prompt, const char *const *completions,
                       int n, double *p_pass, CrError *e) {
    TokenSeq *seqs = cr_calloc((size_t)(n ? n : 1), sizeof(TokenSeq));
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = encode_pair(tok, prompt, completions[i], rm->trunk->cfg.max_position_embeddings, &seqs[i], e);
    double *logit = cr_malloc(sizeof(double) * (size_t)(n ? n : 1));
    if (rc == 0 && n > 0) rc = score_batch(rm, seqs, n, logit, NULL, NULL, NULL, e);
    for (int i = 0; i < n; i++) {
        if (rc == 0) p_pass[i] = 1.0 / (1.0 + exp(-logit[i]));
        token_seq_free(&seqs[i]);
    }
    free(seqs);
    free(logit);
    return rc;
}

double rm_auc(const double *score, const int *label, int n) {
    double pos = 0, neg = 0, win = 0;
    for (int i = 0; i < n; i++) { if (label[i]) pos += 1; else neg += 1; }
    if (pos == 0 || neg == 0) return NAN;
    for (int i = 0; i < n; i++) {
        if (!label[i]) continue;
        for (int j = 0; j < n; j++) {
            if (label[j]) continue;
            win += score[i] > score[j] ? 1.0 : score[i] == score[j] ? 0.5 : 0.0;
        }
    }
    return win / (pos * neg);
}

void rm_train_config_default(RmTrainConfig *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 2;
    c->batch_tokens = 4096;
    c->max_seq_len = 1024;
    c->lr = 1e-4;
    c->holdout = 0.1;
    c->weight_decay = 0.0;
}

typedef struct {
    TokenSeq seq;
    int label;
    uint64_t group;
    int holdout;
} RmExample;

typedef struct {
    RmExample *ex;
    int n, cap;
    const Tokenizer *tok;
    long max_len;
    int db_index;
    double holdout;
    CrError *e;
    int failed;
} Collect;

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdULL; x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ULL; x ^= x >> 33;
    return x;
}

static int collect_cb(void *ctx, const RsExample *x) {
    Collect *c = ctx;
    if (!x->verdict || !strcmp(x->verdict, "IE")) return 0;
    if (c->n == c->cap) { c->cap = c->cap ? c->cap * 2 : 256; c->ex = cr_realloc(c->ex, sizeof *c->ex * (size_t)c->cap); }
    RmExample *r = &c->ex[c->n];
    memset(r, 0, sizeof *r);
    if (encode_pair(c->tok, x->prompt ? x->prompt : "", x->completion ? x->completion : "", c->max_len, &r->seq, c->e)) {
        c->failed = 1;
        return 1;
    }
    r->label = x->passed != 0;
    r->group = mix64(((uint64_t)c->db_index << 56) ^ ((uint64_t)x->run_id << 40) ^ (uint64_t)x->group_id ^
                     ((uint64_t)x->step << 20));
    r->holdout = (double)(r->group % 10000) < c->holdout * 10000.0;
    c->n++;
    return 0;
}

int reward_model_train(const RmTrainConfig *c, double *auc_out, CrError *e) {
    if (c->n_dbs < 1 || !c->model_dir || !c->out_dir) return cr_error_set(e, "rm train: --db, --model and --out are required");
    if (c->epochs < 1) return cr_error_set(e, "rm train: --epochs must be >= 1 (got %ld)", (long)c->epochs);
    if (!(c->lr > 0)) return cr_error_set(e, "rm train: --lr must be > 0 (got %g)", c->lr);
    if (c->batch_tokens < 2) return cr_error_set(e, "rm train: --batch-tokens must be >= 2 (got %ld)", (long)c->batch_tokens);
    if (!(c->holdout >= 0 && c->holdout < 1)) return cr_error_set(e, "rm train: --holdout must be in [0, 1) (got %g)", c->holdout);
    int rc = -1;
    char *tok_path = cr_path_join(c->model_dir, "tokenizer.json");
    Tokenizer *tok = tokenizer_load(tok_path, e);
    RewardModel *rm = NULL;
    AdamW opt = {0};
    Collect col = {0};
    float *hm = NULL, *hv = NULL, *hg = NULL;
    int *idx = NULL;
    if (!tok) goto out;
    const Ops *ops = c->ops ? c->ops : device_open(c->device, e);
    if (!ops) goto out;
    rm = cr_calloc(1, sizeof *rm);
    rm->trunk = model_load_ops(c->model_dir, ops, e);
    if (!rm->trunk) goto out;
    int D = rm->trunk->cfg.hidden_size;
    rm->head_w = cr_calloc((size_t)D, sizeof(float));
    rm->head_b = 0;
    AdamWConfig acfg = {(float)c->lr, 0.9f, 0.95f, 1e-8f, (float)c->weight_decay};
    if (adamw_init(&opt, rm->trunk, acfg, e)) goto out;
    col.tok = tok;
    col.max_len = c->max_seq_len < rm->trunk->cfg.max_position_embeddings ? c->max_seq_len : rm->trunk->cfg.max_position_embeddings;
    col.holdout = c->holdout;
    col.e = e;
    for (int d = 0; d < c->n_dbs; d++) {
        RunStore *rs = runstore_open_readonly(c->dbs[d], e);
        if (!rs) goto out;
        col.db_index = d;
        int r = runstore_each_execution(rs, 0, -1, -1, 0, collect_cb, &col, e);
        runstore_close(rs);
        if (col.failed || r < 0) goto out;
    }
    int n_train = 0, n_hold = 0, n_pos = 0;
    for (int i = 0; i < col.n; i++) { col.ex[i].holdout ? n_hold++ : n_train++; n_pos += col.ex[i].label; }
    if (n_train == 0) { cr_error_set(e, "rm train: the run stores hold no judged completions"); goto out; }
    if (n_pos == 0 || n_pos == col.n) {
        cr_error_set(e, "rm train: all %d judged completions %s: a pass/fail model needs both kinds", col.n,
                     n_pos ? "passed" : "failed");
        goto out;
    }
    fprintf(stderr, "rm train: %d examples (%d passed), %d train / %d held out; device %s\n", col.n, n_pos, n_train,
            n_hold, ops->name);
    hm = cr_calloc((size_t)D + 1, sizeof(float));
    hv = cr_calloc((size_t)D + 1, sizeof(float));
    hg = cr_calloc((size_t)D + 1, sizeof(float));
    idx = cr_malloc(sizeof(int) * (size_t)col.n);
    Progress pr;
    progress_init(&pr);
    long step = 0;
    for (long ep = 0; ep < c->epochs; ep++) {
        /* order: train examples shuffled by group (pairwise needs a group together) */
        int m = 0;
        for (int i = 0; i < col.n; i++) if (!col.ex[i].holdout) idx[m++] = i;
        CrRng r;
        cr_rng_init(&r, (uint64_t)c->seed, 0x524dULL, (uint64_t)ep);
        uint64_t salt = cr_rng_u64(&r);
        /* sort by (hash(group, salt), index): groups stay contiguous, group order random */
        for (int i = 1; i < m; i++) {
            int v = idx[i], j = i - 1;
            uint64_t kv = mix64(col.ex[v].group ^ salt);
            while (j >= 0 && (mix64(col.ex[idx[j]].group ^ salt) > kv ||
                              (mix64(col.ex[idx[j]].group ^ salt) == kv && idx[j] > v))) { idx[j + 1] = idx[j]; j--; }
            idx[j + 1] = v;
        }
        double ep_loss = 0;
        long ep_n = 0;
        for (int i = 0; i < m;) {
            int start = i;
            long tok_n = 0;
            /* pairwise: a group is never split across batches (its pass/fail pairs are
             * formed within a batch), even if it alone exceeds batch_tokens */
            while (i < m && (i == start || tok_n + col.ex[idx[i]].seq.n <= c->batch_tokens ||
                             (c->pairwise && col.ex[idx[i]].group == col.ex[idx[i - 1]].group)))
                tok_n += col.ex[idx[i++]].seq.n;
            int bn = i - start;
            TokenSeq *seqs = cr_malloc(sizeof(TokenSeq) * (size_t)bn);
            for (int k = 0; k < bn; k++) seqs[k] = col.ex[idx[start + k]].seq;
            double *logit = cr_malloc(sizeof(double) * (size_t)bn);
            float *hidden = NULL;
            Batch b;
            int32_t *bufs[3] = {0};
            model_zero_grads(rm->trunk);
            if (score_batch(rm, seqs, bn, logit, &hidden, &b, bufs, e)) { free(seqs); free(logit); goto out; }
            double *dlogit = cr_calloc((size_t)bn, sizeof(double));
            double loss = 0;
            int terms = 0;
            if (!c->pairwise) {
                for (int k = 0; k < bn; k++) {
                    double p = 1.0 / (1.0 + exp(-logit[k]));
                    int y = col.ex[idx[start + k]].label;
                    loss -= y ? log(fmax(p, 1e-12)) : log(fmax(1 - p, 1e-12));
                    dlogit[k] = p - y;
                    terms++;
                }
            } else {
                for (int a = 0; a < bn; a++)
                    for (int q = 0; q < bn; q++) {
                        const RmExample *xa = &col.ex[idx[start + a]], *xq = &col.ex[idx[start + q]];
                        if (xa->group != xq->group || !xa->label || xq->label) continue;
                        double d = logit[a] - logit[q], sg = 1.0 / (1.0 + exp(-d));
                        loss -= log(fmax(sg, 1e-12));
                        dlogit[a] -= 1 - sg;
                        dlogit[q] += 1 - sg;
                        terms++;
                    }
            }
            if (terms > 0) {
                for (int k = 0; k < bn; k++) dlogit[k] /= terms;
                float *dh = cr_calloc((size_t)b.n_tokens * D, sizeof(float));
                memset(hg, 0, sizeof(float) * ((size_t)D + 1));
                for (int k = 0; k < bn; k++) {
                    size_t row = (size_t)(b.cu_seqlens[k + 1] - 1) * D;
                    for (int d = 0; d < D; d++) {
                        dh[row + d] = (float)(dlogit[k] * rm->head_w[d]);
                        hg[d] += (float)(dlogit[k] * hidden[row + d]);
                    }
                    hg[D] += (float)dlogit[k];
                }
                int br = model_backward_hidden(rm->trunk, &b, dh, 1.0f, e);
                free(dh);
                if (br) { free(seqs); free(logit); free(dlogit); free(hidden); free(bufs[0]); free(bufs[1]); free(bufs[2]); goto out; }
                grad_clip_global_norm(rm->trunk, 1.0f);
                step++;
                adamw_step(&opt, rm->trunk, (float)c->lr);
                /* head: its own AdamW moments (the head is not part of the trunk's table) */
                float hp[1];
                adamw_update(&acfg, step, (float)c->lr, 0, rm->head_w, hg, hm, hv, (size_t)D);
                hp[0] = rm->head_b;
                adamw_update(&acfg, step, (float)c->lr, 0, hp, hg + D, hm + D, hv + D, 1);
                rm->head_b = hp[0];
                ep_loss += loss / terms;
                ep_n++;
            }
            free(dlogit);
            free(seqs);
            free(logit);
            free(hidden);
            free(bufs[0]); free(bufs[1]); free(bufs[2]);
            progress_update(&pr, "rm epoch %ld/%ld  batch %d/%d  loss %.4f", ep + 1, c->epochs, i, m,
                            ep_n ? ep_loss / ep_n : NAN);
        }
    }
    progress_done(&pr);
    /* held-out AUC */
    double auc = NAN;
    {
        double *sc = cr_malloc(sizeof(double) * (size_t)(n_hold ? n_hold : 1));
        int *lab = cr_malloc(sizeof(int) * (size_t)(n_hold ? n_hold : 1));
        int h = 0;
        for (int i = 0; i < col.n; i++) {
            if (!col.ex[i].holdout) continue;
            if (score_batch(rm, &col.ex[i].seq, 1, &sc[h], NULL, NULL, NULL, e)) { free(sc); free(lab); goto out; }
            lab[h++] = col.ex[i].label;
        }
        auc = rm_auc(sc, lab, h);
        free(sc);
        free(lab);
    }
    if (auc_out) *auc_out = auc;
    char info[512];
    snprintf(info, sizeof info, "{\"format\":\"crucible-rm\",\"examples\":%d,\"train\":%d,\"holdout\":%d,\"passed\":%d,"
             "\"pairwise\":%s,\"holdout_auc\":%s}", col.n, n_train, n_hold, n_pos, c->pairwise ? "true" : "false",
             isfinite(auc) ? "0" : "null");
    if (isfinite(auc)) {
        char *p = strstr(info, "\"holdout_auc\":0");
        snprintf(p, sizeof info - (size_t)(p - info), "\"holdout_auc\":%.6f}", auc);
    }
    if (reward_model_save(rm, c->out_dir, tok_path, info, e)) goto out;
    fprintf(stderr, "rm train: held-out AUC %s%.4f (%d examples); reward model in %s\n", isfinite(auc) ? "" : "n/a ",
            isfinite(auc) ? auc : 0.0, n_hold, c->out_dir);
    rc = 0;
out:
    for (int i = 0; i < col.n; i++) token_seq_free(&col.ex[i].seq);
    free(col.ex);
    free(idx);
    free(hm); free(hv); free(hg);
    adamw_free(&opt);
    reward_model_free(rm);
    tokenizer_free(tok);
    free(tok_path);
    return rc;
}
