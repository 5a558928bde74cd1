/* rollout/rollout.c — see rollout.h. */
#include "rollout/rollout.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "data/tokenizer.h"
#include "model/ops.h"
#include "rollout/forward.h"
#include "rollout/forward_ops.h"
#include "rollout/kv_cache.h"
#include "rollout/sampler.h"
#include "rollout/stop.h"


/* Prompt rows per forward call: PREFILL_CHUNK on the host path (forward.c's scratch);
 * the Ops path takes up to OPS_PREFILL_CHUNK at once, so that forward_ops prefills a
 * prompt in the MHA form in one pass instead of re-expanding the earlier chunks as
 * context for each later one (forward_ops.h; kept <= FORWARD_OPS_MHA_MAX_KEYS). */
enum { BLOCK_TOKENS = 16, PREFILL_CHUNK = 256, OPS_PREFILL_CHUNK = 4096 };
_Static_assert((int)OPS_PREFILL_CHUNK <= (int)FORWARD_OPS_MHA_MAX_KEYS, "an Ops prefill chunk from position 0 takes the MHA form");

struct RolloutEngine {
    Model *m;
    const Tokenizer *tok;
    RolloutWeights w;
    Forward *fwd;               /* the host path (forward.c), or */
    ForwardOps *fops;           /* the Ops path (forward_ops.c): exactly one is set */
    const Ops *ops;             /* m->ops: where the cache and, on the Ops path, logits live */
    LatentCache *cache;
    SamplerScratch **scratch;   /* one per OpenMP thread */
    int n_scratch;
    FILE *progress;
    RolloutStats stats;
};

/* A prompt being served: its prefilled cache and the logits of its last position. */
typedef struct Group {
    CacheSeq prefix;
    int reserved;               /* prefix blocks still promised */
    int prefilled, next_sample, released;
    float *logits;              /* [V]; backend memory on the Ops path */
    int32_t *experts;           /* [n_moe][K] of the last prompt position */
} Group;

/* A sample being generated. */
typedef struct Live {
    int p, g, n_max;
    CacheSeq seq;
    int reserved;
    CrRng rng;
    StopText st;
    int32_t *tokens;
    float *lp, *lpm;
    int32_t *experts;
    int n, cap;
} Live;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* The host path needs host weights; CRUCIBLE_ROLLOUT_OPS=1 sends the CPU backend down the
 * Ops path too (tests compare the two). */
static int use_ops_path(const Model *m) {
    if (m->ops != ops_cpu()) return 1;
    const char *s = getenv("CRUCIBLE_ROLLOUT_OPS");
    return s && strcmp(s, "1") == 0;
}

RolloutEngine *rollout_create(Model *m, const Tokenizer *tok, long cache_token_budget, CrError *e) {
    RolloutEngine *r = cr_calloc(1, sizeof *r);
    r->m = m;
    r->tok = tok;
    r->ops = m->ops;
    /* binds views only (pointer arithmetic, no reads): shapes checked on every backend */
    if (rollout_weights_bind(&r->w, m, e) != 0) {
        free(r);
        return NULL;
    }
    const ModelConfig *c = &m->cfg;
    r->cache = latent_cache_create_ops(m->ops, c->num_hidden_layers, c->kv_lora_rank + c->qk_rope_head_dim,
                                       BLOCK_TOKENS, cache_token_budget, e);
    if (!r->cache) {
        rollout_weights_release(&r->w);
        free(r);
        return NULL;
    }
    if (use_ops_path(m))
        r->fops = forward_ops_new(m);
    else
        r->fwd = forward_new(&r->w);
    r->n_scratch = omp_get_max_threads();
    r->scratch = cr_calloc((size_t)r->n_scratch, sizeof *r->scratch);
    for (int i = 0; i < r->n_scratch; i++) r->scratch[i] = sampler_scratch_new(c->vocab_size);
    return r;
}

void rollout_free(RolloutEngine *r) {
    if (!r) return;
    for (int i = 0; i < r->n_scratch; i++) sampler_scratch_free(r->scratch[i]);
    free(r->scratch);
    forward_free(r->fwd);
    forward_ops_free(r->fops);
    latent_cache_free(r->cache);
    rollout_weights_release(&r->w);
    free(r);
}

void rollout_set_progress(RolloutEngine *r, FILE *f) { r->progress = f; }
RolloutStats rollout_stats(const RolloutEngine *r) {
    RolloutStats s = r->stats;
    if (r->fops) {
        ForwardOpsStats f = forward_ops_stats(r->fops);
        s.attn_mha_rows = f.mha_rows;
        s.attn_absorbed_rows = f.absorbed_rows;
        s.step_records = f.step_records;
        s.step_replays = f.step_replays;
        s.step_shapes = f.step_shapes;
    }
    return s;
}
long rollout_cache_tokens(const RolloutEngine *r) {
    return (long)r->cache->n_blocks * r->cache->block_tokens;
}

void sample_free(Sample *s) {
    if (!s) return;
    free(s->token_ids);
    free(s->logprobs);
    free(s->logprobs_model);
    free(s->text);
    free(s->expert_ids);
    memset(s, 0, sizeof *s);
}

/* ---- one generation ----------------------------------------------------------------- */

typedef struct Run {
    RolloutEngine *r;
    const int32_t *const *prompts;
    const int *lens;
    int n_prompts, G;
    const SampleParams *sp;
    long base;
    SamplerCfg scfg;
    int32_t *stop_ids;
    int n_stop_ids;
    int n_moe, K, V;
    Group *groups;
    Live **live;
    int n_live;
    Sample *out;
    long done;
    /* Ops path: device sampling buffers [cap], or host logits for the host sampler.
     * d_out holds a call's n tokens, then n sampled and n model log-probs (4-byte words),
     * so that one download (a host sync on CUDA) brings all three back into h_out. */
    double *h_uni, *d_uni;
    int32_t *d_out, *h_out;
    float *h_logits;
} Run;

/* Blocks one sample may need beyond the prompt's full blocks (the copied partial block
 * and every block its new tokens can reach). */
static int sample_blocks(const LatentCache *c, int P, int n_max) {
    return cache_blocks_for(c, (long)P + n_max) - P / c->block_tokens;
}

static int is_stop_id(const Run *u, int32_t t) {
    for (int i = 0; i < u->n_stop_ids; i++)
        if (u->stop_ids[i] == t) return 1;
    return 0;
}

static void live_push(Run *u, Live *s, int32_t tok, float lp, float lpm, const int32_t *experts) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 32;
        s->tokens = cr_realloc(s->tokens, (size_t)s->cap * sizeof *s->tokens);
        s->lp = cr_realloc(s->lp, (size_t)s->cap * sizeof *s->lp);
        s->lpm = cr_realloc(s->lpm, (size_t)s->cap * sizeof *s->lpm);
        if (u->sp->record_experts && u->n_moe)
            s->experts = cr_realloc(s->experts, (size_t)s->cap * u->n_moe * u->K * sizeof *s->experts);
    }
    s->tokens[s->n] = tok;
    s->lp[s->n] = lp;
    s->lpm[s->n] = lpm;
    if (s->experts)
        memcpy(s->experts + (size_t)s->n * u->n_moe * u->K, experts,
               (size_t)u->n_moe * u->K * sizeof *s->experts);
    s->n++;
}

/* After appending a token: 1 when the sample is finished (finish reason in *reason). */
static int live_check_stop(Run *u, Live *s, int *reason) {
    int32_t tok = s->tokens[s->n - 1];
    if (is_stop_id(u, tok)) {
        *reason = 0;
        return 1;
    }
    if (u->r->tok) {
        size_t len = 0;
        char *bytes = tokenizer_decode(u->r->tok, &tok, 1, &len);
        int hit = stop_text_append(&s->st, bytes ? bytes : "", bytes ? len : 0);
        free(bytes);
        if (hit) {
            *reason = 0;
            return 1;
        }
    }
    if (s->n >= s->n_max) {
        *reason = 1;
        return 1;
    }
    return 0;
}

static void live_finish(Run *u, int li, int reason) {
    Live *s = u->live[li];
    Sample *o = &u->out[(size_t)s->p * u->G + s->g];
    o->n_tokens = s->n;
    o->token_ids = s->tokens;
    o->logprobs = s->lp;
    o->logprobs_model = s->lpm;
    o->expert_ids = s->experts;
    o->finish_reason = reason;
    if (u->r->tok) {
        o->text = cr_malloc(s->st.len + 1);
        memcpy(o->text, s->st.buf, s->st.len + 1);
        o->text_len = s->st.len;
    }
    stop_text_free(&s->st);
    cache_seq_release(u->r->cache, &s->seq);
    cache_unreserve(u->r->cache, s->reserved);
    free(s);
    u->live[li] = u->live[--u->n_live];
    u->done++;
}

static void group_release(Run *u, Group *g) {
    if (g->released) return;
    cache_seq_release(u->r->cache, &g->prefix);
    cache_unreserve(u->r->cache, g->reserved);
    g->reserved = 0;
    if (u->r->fops)
        u->r->ops->free(g->logits);
    else
        free(g->logits);
    free(g->experts);
    g->logits = NULL;
    g->experts = NULL;
    g->released = 1;
}

static void prefill(Run *u, int p) {
    RolloutEngine *r = u->r;
    Group *g = &u->groups[p];
    int P = u->lens[p];
    double t0 = now_s();
    g->logits = r->fops ? r->ops->alloc((size_t)u->V * sizeof *g->logits)
                        : cr_malloc((size_t)u->V * sizeof *g->logits);
    int chunk = r->fops ? OPS_PREFILL_CHUNK : PREFILL_CHUNK;
    if (chunk > P) chunk = P;
    if (u->sp->record_experts && u->n_moe)
        g->experts = cr_malloc((size_t)chunk * u->n_moe * u->K * sizeof *g->experts);
    int32_t *pos = cr_malloc((size_t)chunk * sizeof *pos);
    CacheSeq **seqs = cr_malloc((size_t)chunk * sizeof *seqs);
    for (int s0 = 0; s0 < P; s0 += chunk) {
        int n = P - s0 < chunk ? P - s0 : chunk;
        for (int i = 0; i < n; i++) {
            pos[i] = s0 + i;
            seqs[i] = &g->prefix;
            cache_seq_prepare_write(r->cache, &g->prefix, s0 + i, &g->reserved);
        }
        g->prefix.len = s0 + n;
        int last = n - 1, want = s0 + n == P;
        if (r->fops)
            forward_ops_run(r->fops, r->cache, n, u->prompts[p] + s0, pos, seqs, &last, want, g->logits,
                            g->experts);
        else
            forward_run(r->fwd, r->cache, n, u->prompts[p] + s0, pos, seqs, &last, want, g->logits,
                        g->experts);
    }
    free(pos);
    free(seqs);
    if (g->experts) /* keep the last position's routing only */
        memmove(g->experts, g->experts + (size_t)((P - 1) % chunk) * u->n_moe * u->K,
                (size_t)u->n_moe * u->K * sizeof *g->experts);
    g->prefilled = 1;
    r->stats.prefill_tokens += P;
    r->stats.prefill_s += now_s() - t0;
}

/* The device sampler's draws for n rows (row i from rows[i]'s stream, one uniform per
 * token, none when greedy) to the backend; nothing without a device sampler. Drawing them
 * before the forward changes no value (nothing else draws from the rows' streams in
 * between) and puts the upload's host sync where the GPU is idle anyway, not after the
 * LM head is queued. */
static void upload_draws(Run *u, int n, Live *const *rows) {
    RolloutEngine *r = u->r;
    if (!(r->fops && r->ops->sample_rows)) return;
    for (int i = 0; i < n; i++) u->h_uni[i] = u->scfg.temperature > 0 ? cr_rng_uniform(&rows[i]->rng) : 0.0;
    r->ops->upload(u->d_uni, u->h_uni, sizeof(double) * (size_t)n);
}

/* One token for each of n rows of logits ([n, V]: host memory on the host path, backend
 * memory on the Ops path); row i draws from rows[i]'s stream, one uniform per token
 * (none when greedy), whichever sampler runs. drawn: upload_draws(u, n, rows) ran
 * already for these rows. */
static void sample_batch(Run *u, const float *logits, int n, Live *const *rows, int32_t *next, float *lp,
                         float *lpm, int drawn) {
    RolloutEngine *r = u->r;
    const Ops *o = r->ops;
    if (r->fops && o->sample_rows) {
        /* on the device: only the draws go up, only tokens and log-probs come back */
        if (!drawn) upload_draws(u, n, rows);
        OpsSampler oc = {u->scfg.temperature, u->scfg.top_k, u->scfg.top_p, u->scfg.min_p};
        int32_t *d_tok = u->d_out;
        float *d_lp = (float *)(u->d_out + n), *d_lpm = (float *)(u->d_out + 2 * (size_t)n);
        o->sample_rows(d_tok, d_lp, d_lpm, logits, n, u->V, &oc, u->d_uni);
        o->download(u->h_out, u->d_out, sizeof(int32_t) * 3 * (size_t)n);
        memcpy(next, u->h_out, sizeof(int32_t) * (size_t)n);
        memcpy(lp, u->h_out + n, sizeof(float) * (size_t)n);
        memcpy(lpm, u->h_out + 2 * (size_t)n, sizeof(float) * (size_t)n);
        return;
    }
    if (r->fops) { /* a backend without a sampler: the logits come to the host sampler */
        o->download(u->h_logits, logits, sizeof(float) * (size_t)n * u->V);
        logits = u->h_logits;
    }
#pragma omp parallel for schedule(dynamic, 1) if ((long)n * u->V > (1L << 16))
    for (int i = 0; i < n; i++) {
        SamplerScratch *sc = r->scratch[omp_get_thread_num() % r->n_scratch];
        next[i] = sampler_sample(&u->scfg, logits + (size_t)i * u->V, u->V, sc, &rows[i]->rng, &lp[i], &lpm[i]);
    }
}

/* Start as many waiting samples as the cache can promise. */
static void admit(Run *u, int *next_group) {
    RolloutEngine *r = u->r;
    LatentCache *c = r->cache;
    while (*next_group < u->n_prompts) {
        int p = *next_group;
        Group *g = &u->groups[p];
        int P = u->lens[p];
        int n_max = u->sp->max_new_tokens;
        if (n_max > r->m->cfg.max_position_embeddings - P) n_max = r->m->cfg.max_position_embeddings - P;
        int need = sample_blocks(c, P, n_max);
        if (!g->prefilled) {
            int pre = cache_blocks_for(c, P);
            if (c->n_free - c->n_reserved < pre + need) return;  /* wait for space */
            CR_CHECK(cache_reserve(c, pre) == 0);
            g->reserved = pre;
            prefill(u, p);
        }
        if (cache_reserve(c, need) != 0) return;
        Live *s = cr_calloc(1, sizeof *s);
        s->p = p;
        s->g = g->next_sample++;
        s->n_max = n_max;
        s->reserved = need;
        cr_rng_init(&s->rng, u->sp->seed, (uint64_t)(u->base + p), (uint64_t)s->g);
        stop_text_init(&s->st, u->sp->stop_strings, u->sp->n_stop_strings);
        cache_seq_fork(c, &s->seq, &g->prefix);
        float lp, lpm;
        int32_t tok;
        sample_batch(u, g->logits, 1, &s, &tok, &lp, &lpm, 0);
        u->live[u->n_live++] = s;
        live_push(u, s, tok, lp, lpm, g->experts);
        r->stats.generated_tokens++;
        int reason;
        if (live_check_stop(u, s, &reason)) live_finish(u, u->n_live - 1, reason);
        if (g->next_sample == u->G) {
            group_release(u, g);
            (*next_group)++;
        }
    }
}

static void decode_step(Run *u, int32_t *tokens, int32_t *pos, CacheSeq **seqs, int *rows,
                        float *logits, int32_t *experts, int32_t *next, float *lp, float *lpm) {
    RolloutEngine *r = u->r;
    int n = u->n_live;
    double t0 = now_s();
    for (int i = 0; i < n; i++) {
        Live *s = u->live[i];
        tokens[i] = s->tokens[s->n - 1];
        pos[i] = u->lens[s->p] + s->n - 1;
        seqs[i] = &s->seq;
        rows[i] = i;
        cache_seq_prepare_write(r->cache, &s->seq, pos[i], &s->reserved);
        s->seq.len = pos[i] + 1;
    }
    upload_draws(u, n, u->live);
    if (r->fops)
        forward_ops_run(r->fops, r->cache, n, tokens, pos, seqs, rows, n, logits, experts);
    else
        forward_run(r->fwd, r->cache, n, tokens, pos, seqs, rows, n, logits, experts);
    sample_batch(u, logits, n, u->live, next, lp, lpm, 1);
    /* bookkeeping in a fixed order; finishing swaps the last live into slot i */
    Live **snapshot = cr_malloc((size_t)n * sizeof *snapshot);
    memcpy(snapshot, u->live, (size_t)n * sizeof *snapshot);
    for (int i = 0; i < n; i++) {
        Live *s = snapshot[i];
        live_push(u, s, next[i], lp[i], lpm[i], experts ? experts + (size_t)i * u->n_moe * u->K : NULL);
        int reason;
        if (live_check_stop(u, s, &reason)) {
            int li = 0;
            while (u->live[li] != s) li++;
            live_finish(u, li, reason);
        }
    }
    free(snapshot);
    r->stats.generated_tokens += n;
    r->stats.decode_steps++;
    if (n > r->stats.max_live) r->stats.max_live = n;
    r->stats.decode_s += now_s() - t0;
}

static int validate(const RolloutEngine *r, const int32_t *const *prompts, const int *lens,
                    int n_prompts, int G, const SampleParams *sp, CrError *e) {
    const ModelConfig *c = &r->m->cfg;
    if (n_prompts < 0 || G < 1) return cr_error_set(e, "rollout: need n_prompts >= 0 and G >= 1 (got %d, %d)", n_prompts, G);
    SamplerCfg sc = {sp->temperature, sp->top_k, sp->top_p, sp->min_p};
    if (sampler_cfg_check(&sc, e)) return cr_error_prefix(e, "rollout: sampling settings"), -1;
    if (sp->max_new_tokens < 1) return cr_error_set(e, "rollout: max_new_tokens must be >= 1 (got %d)", sp->max_new_tokens);
    if (sp->n_stop_strings > 0 && !r->tok)
        return cr_error_set(e, "rollout: stop strings need a tokenizer");
    for (int i = 0; i < sp->n_stop_strings; i++)
        if (!sp->stop_strings[i] || !sp->stop_strings[i][0])
            return cr_error_set(e, "--stop: stop string %d is empty (it would match before any text)", i + 1);
    for (int i = 0; i < sp->n_stop_ids; i++)
        if (sp->stop_ids[i] < 0 || sp->stop_ids[i] >= c->vocab_size)
            return cr_error_set(e, "rollout: stop token id %d out of range [0, %d)", sp->stop_ids[i], c->vocab_size);
    for (int p = 0; p < n_prompts; p++) {
        int P = lens[p];
        if (P < 1 || !prompts[p]) return cr_error_set(e, "rollout: prompt %d is empty", p);
        if (P >= c->max_position_embeddings)
            return cr_error_set(e, "rollout: prompt %d has %d tokens; the model's context is %d positions "
                                "(max_position_embeddings), leaving no room to generate",
                                p, P, c->max_position_embeddings);
        for (int t = 0; t < P; t++)
            if (prompts[p][t] < 0 || prompts[p][t] >= c->vocab_size)
                return cr_error_set(e, "rollout: prompt %d token %d is id %d, outside [0, %d)", p, t,
                                    prompts[p][t], c->vocab_size);
        int n_max = sp->max_new_tokens < c->max_position_embeddings - P ? sp->max_new_tokens
                                                                          : c->max_position_embeddings - P;
        long need = cache_blocks_for(r->cache, P) + sample_blocks(r->cache, P, n_max);
        if (need > r->cache->n_blocks)
            return cr_error_set(e, "rollout: prompt %d (%d tokens) plus %d new tokens needs %ld cache "
                                "tokens; the cache budget holds %ld",
                                p, P, n_max, need * r->cache->block_tokens, rollout_cache_tokens(r));
    }
    return 0;
}

int rollout_generate(RolloutEngine *r, const int32_t *const *prompts, const int *prompt_lens,
                     int n_prompts, int G, const SampleParams *sp, long prompt_index_base,
                     Sample *out, CrError *e) {
    if (validate(r, prompts, prompt_lens, n_prompts, G, sp, e) != 0) return -1;
    const ModelConfig *c = &r->m->cfg;
    Run u = {0};
    u.r = r;
    u.prompts = prompts;
    u.lens = prompt_lens;
    u.n_prompts = n_prompts;
    u.G = G;
    u.sp = sp;
    u.base = prompt_index_base;
    u.scfg = (SamplerCfg){sp->temperature, sp->top_k, sp->top_p, sp->min_p};
    u.V = c->vocab_size;
    u.n_moe = r->w.n_moe_layers;
    u.K = c->num_experts_per_tok;
    u.out = out;
    memset(out, 0, (size_t)n_prompts * G * sizeof *out);
    /* stop ids: given, plus the default EOS unless ignore_eos */
    u.stop_ids = cr_malloc((size_t)(sp->n_stop_ids + 1) * sizeof *u.stop_ids);
    for (int i = 0; i < sp->n_stop_ids; i++) u.stop_ids[u.n_stop_ids++] = sp->stop_ids[i];
    if (!sp->ignore_eos && sp->n_stop_ids == 0) {
        int eos = c->eos_token_id;
        if (r->tok && tokenizer_eos_id(r->tok) >= 0) eos = tokenizer_eos_id(r->tok);
        if (eos >= 0 && eos < c->vocab_size) u.stop_ids[u.n_stop_ids++] = eos;
    }
    u.groups = cr_calloc((size_t)n_prompts + 1, sizeof *u.groups);
    long total = (long)n_prompts * G;
    /* live can never exceed what the cache can hold: at least one block per sample */
    long cap = total < r->cache->n_blocks ? total : r->cache->n_blocks;
    u.live = cr_calloc((size_t)cap + 1, sizeof *u.live);
    int32_t *tokens = cr_malloc((size_t)(cap + 1) * sizeof *tokens);
    int32_t *pos = cr_malloc((size_t)(cap + 1) * sizeof *pos);
    int32_t *next = cr_malloc((size_t)(cap + 1) * sizeof *next);
    int *rows = cr_malloc((size_t)(cap + 1) * sizeof *rows);
    float *lp = cr_malloc((size_t)(cap + 1) * sizeof *lp), *lpm = cr_malloc((size_t)(cap + 1) * sizeof *lpm);
    CacheSeq **seqs = cr_malloc((size_t)(cap + 1) * sizeof *seqs);
    /* logits of a decode step: host memory on the host path, backend memory on the Ops
     * path (plus host copies only when the backend has no sampler) */
    size_t logit_bytes = (size_t)(cap + 1) * u.V * sizeof(float);
    float *logits = r->fops ? r->ops->alloc(logit_bytes) : cr_malloc(logit_bytes);
    if (r->fops && r->ops->sample_rows) {
        u.h_uni = cr_malloc((size_t)(cap + 1) * sizeof *u.h_uni);
        u.d_uni = r->ops->alloc((size_t)(cap + 1) * sizeof *u.d_uni);
        _Static_assert(sizeof(float) == sizeof(int32_t), "d_out packs int32 tokens and float log-probs");
        u.d_out = r->ops->alloc(3 * (size_t)(cap + 1) * sizeof *u.d_out);
        u.h_out = cr_malloc(3 * (size_t)(cap + 1) * sizeof *u.h_out);
    } else if (r->fops) {
        u.h_logits = cr_malloc(logit_bytes);
    }
    int32_t *experts = (sp->record_experts && u.n_moe)
                           ? cr_malloc((size_t)(cap + 1) * u.n_moe * u.K * sizeof *experts) : NULL;
    int next_group = 0;
    double t_start = now_s(), t_last = t_start;
    long tok_start = r->stats.generated_tokens;
    while (u.done < total) {
        admit(&u, &next_group);
        if (u.n_live == 0) {
            /* validate() guaranteed each prompt fits an empty pool; nothing live means
             * the next prompt was admitted and finished at once, so loop again. */
            CR_CHECK(next_group < n_prompts || u.done == total);
            continue;
        }
        CR_CHECK(u.n_live <= cap);
        decode_step(&u, tokens, pos, seqs, rows, logits, experts, next, lp, lpm);
        double t = now_s();
        if (r->progress && t - t_last > 2.0) {
            long gen = r->stats.generated_tokens - tok_start;
            fprintf(r->progress, "rollout: %ld/%ld samples done, %d live, %ld tokens, %.1f tok/s\n",
                    u.done, total, u.n_live, gen, gen / (t - t_start));
            t_last = t;
        }
    }
    for (int p = 0; p < n_prompts; p++) group_release(&u, &u.groups[p]);
    free(u.groups);
    free(u.live);
    free(u.stop_ids);
    free(tokens);
    free(pos);
    free(next);
    free(rows);
    free(lp);
    free(lpm);
    free(seqs);
    if (r->fops) {
        r->ops->free(logits);
        r->ops->free(u.d_uni);
        r->ops->free(u.d_out);
    } else {
        free(logits);
    }
    free(u.h_uni);
    free(u.h_out);
    free(u.h_logits);
    free(experts);
    return 0;
}
