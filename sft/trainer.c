/* sft/trainer.c — see trainer.h */
#include "sft/trainer.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/chat.h"
#include "data/provenance.h"
#include "data/run_log.h"
#include "data/sft_data.h"
#include "data/tokenizer.h"
#include "model/adamw.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/schedule.h"
#include "sft/encode.h"
#include "sft/pack.h"
#include "sft/train_checkpoint.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void sft_config_default(SftConfig *c) {
    memset(c, 0, sizeof *c);
    c->epochs = 1;
    c->lr = 1e-4;
    c->warmup = 0.03;
    c->min_lr_ratio = 0.1;
    c->weight_decay = 0.1;
    c->beta1 = 0.9;
    c->beta2 = 0.95;
    c->adam_eps = 1e-8;
    c->max_grad_norm = 1.0;
    c->batch_tokens = 4096;
    c->grad_accum = 1;
    c->max_seq_len = 2048;
    c->fim_rate = 0.0;
    c->eval_every = 0;
    c->save_every = 0;
    c->seed = 0;
}

/* Fisher-Yates with a stream keyed by (seed, epoch): the order is a pure function. */
static void epoch_order(int *order, int n, long seed, long epoch) {
    CrRng r;
    cr_rng_init(&r, (uint64_t)seed, 0x5346540000ULL, (uint64_t)epoch);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(cr_rng_u64(&r) % (uint64_t)(i + 1));
        int t = order[i]; order[i] = order[j]; order[j] = t;
    }
}

/* Mean loss over a whole dataset (no gradients). */
static int eval_loss(Model *m, const SftEncoded *d, long batch_tokens, double *loss, CrError *e) {
    int *order = cr_malloc(sizeof(int) * (size_t)(d->n ? d->n : 1));
    for (int i = 0; i < d->n; i++) order[i] = i;
    PackedBatch *pb;
    int nb = pack_batches(d->ex, order, d->n, (int)batch_tokens, &pb);
    double sum = 0;
    long cnt = 0;
    int rc = 0;
    for (int i = 0; i < nb && rc == 0; i++) {
        float *logp = cr_malloc(sizeof(float) * (size_t)pb[i].batch.n_tokens);
        float aux;
        rc = model_forward(m, &pb[i].batch, logp, &aux, e);
        for (int t = 0; rc == 0 && t < pb[i].batch.n_tokens; t++)
            if (pb[i].targets[t] >= 0) { sum -= logp[t]; cnt++; }
        free(logp);
    }
    for (int i = 0; i < nb; i++) packed_batch_free(&pb[i]);
    free(pb);
    free(order);
    *loss = cnt ? sum / (double)cnt : NAN;
    return rc;
}

/* Trainer state that a checkpoint carries (state.json). */
typedef struct {
    long step, epoch, cursor, total_steps;
} SftState;

static char *state_to_json(const SftState *s, long seed) {
    char buf[256];
    snprintf(buf, sizeof buf, "{\"trainer\":\"sft\",\"step\":%ld,\"epoch\":%ld,\"cursor\":%ld,\"total_steps\":%ld,\"seed\":%ld}",
             s->step, s->epoch, s->cursor, s->total_steps, seed);
    return cr_strdup(buf);
}

static int state_from_json(const char *js, SftState *s, long seed, CrError *e) {
    const char *const keys[4] = {"step", "epoch", "cursor", "total_steps"};
    long *const dst[4] = {&s->step, &s->epoch, &s->cursor, &s->total_steps};
    if (train_state_read(js, "sft", keys, dst, 4, seed, e)) return -1;
    if (s->total_steps < 1 || s->step > s->total_steps)
        return cr_error_set(e, "state.json: step %ld of total_steps %ld is not a point of a run", s->step,
                            s->total_steps);
    return 0;
}

int sft_train(const SftConfig *c, CrError *e) {
    if (!c->model_dir || !c->data_path || !c->out_dir) return cr_error_set(e, "sft: --model, --data and --out are required");
    /* each setting on its own, so the message names the flag */
    if (c->epochs <= 0) return cr_error_set(e, "sft: --epochs must be >= 1 (got %ld)", (long)c->epochs);
    if (c->keep_last < 0 || c->keep_last > 1000000)
        return cr_error_set(e, "sft: --keep-last must be >= 0 (0 keeps every checkpoint; got %ld)", (long)c->keep_last);
    if (c->batch_tokens < 2) return cr_error_set(e, "sft: --batch-tokens must be >= 2 (got %ld)", (long)c->batch_tokens);
    if (c->grad_accum <= 0) return cr_error_set(e, "sft: --grad-accum must be >= 1 (got %ld)", (long)c->grad_accum);
    if (c->max_seq_len < 2) return cr_error_set(e, "sft: --max-seq-len must be >= 2 (got %ld)", (long)c->max_seq_len);
    if (!(c->lr > 0)) return cr_error_set(e, "sft: --lr must be > 0 (got %g)", c->lr);
    if (!(c->fim_rate >= 0 && c->fim_rate <= 1)) return cr_error_set(e, "sft: --fim-rate must be in [0, 1] (got %g)", c->fim_rate);
    if (!(c->warmup >= 0)) return cr_error_set(e, "sft: --warmup must be >= 0 (got %g)", c->warmup);
    if (!(c->min_lr_ratio >= 0 && c->min_lr_ratio <= 1))
        return cr_error_set(e, "sft: --min-lr-ratio must be in [0, 1] (got %g)", c->min_lr_ratio);
    AdamWConfig acfg = {(float)c->lr, (float)c->beta1, (float)c->beta2, (float)c->adam_eps, (float)c->weight_decay};
    if (adamw_check_config(acfg, e)) return cr_error_prefix(e, "sft: --lr, --beta1, --beta2, --weight-decay");
    int rc = -1;
    Model *m = NULL;
    Tokenizer *tok = NULL;
    AdamW opt = {0};
    SftEncoded train = {0}, evald = {0};
    RunLog *log = NULL;
    int *order = NULL;
    PackedBatch *pb = NULL;
    int nb = 0;
    char *tok_path = NULL, *resume_from = NULL, *state_js = NULL;
    SftState st = {0, 0, 0, 0};

    int out_lock = train_out_claim("sft", c->out_dir, c->resume, e);
    if (out_lock < 0) return -1;
    const Ops *ops = c->ops ? c->ops : device_open(c->device, e);
    if (!ops) {
        train_out_release(out_lock);
        return -1;
    }
    fprintf(stderr, "sft: device %s\n", ops->name);
    if (c->resume) {
        CrError e2;
        resume_from = checkpoint_latest(c->out_dir, &e2);
    }
    if (resume_from && (provenance_check_resume(c->out_dir, "sft_data", c->data_path, "--data", e) ||
                        (c->eval_data && provenance_check_resume(c->out_dir, "eval_data", c->eval_data, "--eval-data", e)))) {
        cr_error_prefix(e, "sft");
        goto out;
    }
    const char *src_dir = resume_from ? resume_from : c->model_dir;
    tok_path = cr_path_join(src_dir, "tokenizer.json");
    if (!cr_file_exists(tok_path)) {
        free(tok_path);
        tok_path = cr_path_join(c->model_dir, "tokenizer.json");
    }
    tok = tokenizer_load(tok_path, e);
    if (!tok) { cr_error_prefix(e, "sft: the model directory needs a tokenizer.json"); goto out; }
    if (resume_from) {
        m = checkpoint_load_ops(resume_from, ops, &opt, &state_js, e);
        if (!m) goto out;
        opt.cfg = acfg;
        if (!state_js || state_from_json(state_js, &st, c->seed, e)) {
            if (!state_js) cr_error_set(e, "%s: checkpoint has no state.json", resume_from);
            goto out;
        }
        fprintf(stderr, "sft: resuming from %s (step %ld) on %s\n", resume_from, st.step, ops->name);
    } else {
        m = model_load_ops(c->model_dir, ops, e);
        if (!m) goto out;
        if (adamw_init(&opt, m, acfg, e)) goto out;
    }
    if (tokenizer_vocab_size(tok) > m->cfg.vocab_size) {
        cr_error_set(e, "sft: tokenizer %s has %d ids but the model's vocab_size is %d", tok_path,
                     tokenizer_vocab_size(tok), m->cfg.vocab_size);
        goto out;
    }
    long max_len = c->max_seq_len < m->cfg.max_position_embeddings ? c->max_seq_len : m->cfg.max_position_embeddings;
    if (sft_encode_file(c->data_path, tok, c->fim_rate, c->seed, max_len, &train, e)) goto out;
    if (c->eval_data && sft_encode_file(c->eval_data, tok, 0, c->seed, max_len, &evald, e)) goto out;

    /* Steps per epoch from this epoch's packing (the same count every epoch up to
     * packing differences; the schedule's total is fixed at the start and saved). */
    order = cr_malloc(sizeof(int) * (size_t)(train.n ? train.n : 1));
    long bt = c->batch_tokens;  /* examples are already cut to max_len */
    if (!resume_from) {
        epoch_order(order, train.n, c->seed, 0);
        nb = pack_batches(train.ex, order, train.n, (int)bt, &pb);
        long per_epoch = (nb + c->grad_accum - 1) / c->grad_accum;
        st.total_steps = per_epoch * c->epochs;
        if (c->max_steps > 0 && c->max_steps < st.total_steps) st.total_steps = c->max_steps;
        for (int i = 0; i < nb; i++) packed_batch_free(&pb[i]);
        free(pb);
        pb = NULL;
        nb = 0;
    }
    if (st.total_steps <= 0) { cr_error_set(e, "sft: %s: no example has a token to learn", c->data_path); goto out; }
    long warmup_steps = c->warmup < 1 ? (long)(c->warmup * (double)st.total_steps + 0.5) : (long)c->warmup;

    /* through cJSON: paths may hold quotes or backslashes */
    cJSON *pj = cJSON_CreateObject();
    cJSON_AddStringToObject(pj, "model", c->model_dir);
    cJSON_AddStringToObject(pj, "data", c->data_path);
    cJSON_AddNumberToObject(pj, "examples", train.n);
    char *prov = cJSON_PrintUnformatted(pj);
    cJSON_Delete(pj);
    if (!prov) { cr_error_set(e, "sft: out of memory"); goto out; }
    log = run_log_open(c->out_dir, "sft", c->config_json ? c->config_json : "{}", prov,
                       resume_from ? st.step : -1, e);
    cJSON_free(prov);
    if (!log) goto out;
    if (!resume_from) {
        /* provenance: the data files by content id, ingested repos per (repo, commit) */
        SftExample *px;
        int pn;
        if (runstore_add_source(log->rs, log->run_id, "model", c->model_dir, NULL, NULL, e) ||
            provenance_record_file(log->rs, log->run_id, "sft_data", c->data_path, e) ||
            (c->eval_data && provenance_record_file(log->rs, log->run_id, "eval_data", c->eval_data, e)))
            goto out;
        if (sft_load(c->data_path, &px, &pn, e)) goto out;
        int pr_rc = provenance_record_sft(log->rs, log->run_id, c->data_path, px, pn, e);
        sft_free(px, pn);
        if (pr_rc) goto out;
    }

    Progress pr;
    progress_init(&pr);
    long steps_this_run = 0;
    double tokens_total = 0;
    int *ord_epoch = order;
    long cur_epoch = -1;
    while (st.step < st.total_steps) {
        if (cur_epoch != st.epoch) {
            for (int i = 0; i < nb; i++) packed_batch_free(&pb[i]);
            free(pb);
            epoch_order(ord_epoch, train.n, c->seed, st.epoch);
            nb = pack_batches(train.ex, ord_epoch, train.n, (int)bt, &pb);
            cur_epoch = st.epoch;
        }
        if (st.cursor >= nb) { st.epoch++; st.cursor = 0; if (st.epoch >= c->epochs) break; continue; }
        long first = st.cursor, last = st.cursor + c->grad_accum;
        if (last > nb) last = nb;
        long T = 0, ntok = 0, nseq = 0;
        for (long i = first; i < last; i++) { T += pb[i].n_targets; ntok += pb[i].batch.n_tokens; nseq += pb[i].batch.n_seqs; }
        double t0 = progress_now();
        model_zero_grads(m);
        double loss = 0, aux_sum = 0;
        for (long i = first; i < last; i++) {
            int N = pb[i].batch.n_tokens;
            float *logp = cr_malloc(sizeof(float) * (size_t)N), *dlogp = cr_malloc(sizeof(float) * (size_t)N);
            float aux = 0;
            int r = model_forward(m, &pb[i].batch, logp, &aux, e);
            if (r == 0) {
                for (int t = 0; t < N; t++) {
                    int tgt = pb[i].targets[t] >= 0;
                    dlogp[t] = tgt ? (float)(-1.0 / (double)T) : 0.0f;
                    if (tgt) loss -= logp[t];
                }
                /* the aux loss is a mean over sequences (seq_aux): weighting each
                 * micro-batch's by its share of the step's sequences gives the aux
                 * gradient of one batch of them all */
                float aux_w = m->cfg.seq_aux ? (float)((double)pb[i].batch.n_seqs / (double)nseq)
                                             : (float)(1.0 / (double)(last - first));
                aux_sum += aux * aux_w;
                r = model_backward(m, &pb[i].batch, dlogp, aux_w, e);
            }
            free(logp);
            free(dlogp);
            if (r) goto out;
        }
        loss /= (double)T;
        if (!isfinite(loss)) {
            cr_error_set(e, "sft: loss is not finite at step %ld (diverged; try a lower --lr)", st.step + 1);
            goto out;
        }
        float gnorm = grad_clip_global_norm(m, (float)c->max_grad_norm);
        if (!isfinite(gnorm)) {
            cr_error_set(e, "sft: the gradient norm is not finite at step %ld (diverged; try a lower --lr): no update "
                            "made, the last checkpoint kept", st.step + 1);
            goto out;
        }
        double lr = lr_schedule(st.step, warmup_steps, st.total_steps, c->lr, c->min_lr_ratio);
        adamw_step(&opt, m, (float)lr);
        st.step++;
        st.cursor = last;
        if (st.cursor >= nb) { st.epoch++; st.cursor = 0; }
        double dt = progress_now() - t0;
        tokens_total += (double)ntok;
        steps_this_run++;
        if (run_log_step_begin(log, st.step, e) || run_log_metric(log, "loss", loss, e) ||
            run_log_metric(log, "aux_loss", aux_sum, e) ||
            run_log_metric(log, "lr", lr, e) || run_log_metric(log, "grad_norm", gnorm, e) ||
            run_log_metric(log, "tokens_per_s", (double)ntok / dt, e) ||
            run_log_metric(log, "epoch", (double)st.epoch, e))
            goto out;
        double ev = NAN;
        if (evald.n > 0 && ((c->eval_every > 0 && st.step % c->eval_every == 0) || st.step == st.total_steps)) {
            if (eval_loss(m, &evald, bt, &ev, e)) goto out;
            if (run_log_metric(log, "eval_loss", ev, e)) goto out;
        }
        if (run_log_step_commit(log, e)) goto out;
        char eta[16];
        double per = progress_elapsed(&pr) / (double)steps_this_run;
        char evs[32] = "";
        if (isfinite(ev)) snprintf(evs, sizeof evs, "  eval %.4f", ev);
        progress_update(&pr, "sft step %ld/%ld  loss %.4f%s  lr %.2e  gnorm %.3f  %.0f tok/s  ETA %s", st.step,
                        st.total_steps, loss, evs, lr, gnorm,
                        tokens_total / progress_elapsed(&pr), progress_eta(per * (double)(st.total_steps - st.step), eta));
        if (c->save_every > 0 && st.step % c->save_every == 0 && st.step < st.total_steps) {
            char *js = state_to_json(&st, c->seed);
            int r = train_checkpoint(log, "sft", c->out_dir, 0, st.step, m, &opt, js, tok_path, (int)c->keep_last, NULL, e);
            free(js);
            if (r) goto out;
        }
    }
    progress_done(&pr);
    {
        char *js = state_to_json(&st, c->seed);
        int r = train_checkpoint(log, "sft", c->out_dir, 1, st.step, m, &opt, js, tok_path, 0, NULL, e);
        free(js);
        if (r) goto out;
    }
    rc = 0;
out:
    for (int i = 0; i < nb; i++) packed_batch_free(&pb[i]);
    free(pb);
    free(order);
    run_log_close(log);
    sft_encoded_free(&train);
    sft_encoded_free(&evald);
    adamw_free(&opt);
    model_free(m);
    tokenizer_free(tok);
    free(tok_path);
    free(resume_from);
    free(state_js);
    train_out_release(out_lock);
    return rc;
}
