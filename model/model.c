/* model/model.c — the orchestration: parameter table, activation buffers, the layer loop
 * of the forward and backward passes (spec §3, §4, §6, §7), written once against the
 * backend table in model/ops.h. Implements model/model.h and model/layers.h (except
 * model_load/model_save, which live in model/io.c).
 *
 * Activations of the last forward live in one arena (ModelState) that grows to the
 * largest batch seen; nothing is allocated per step after that. */
#include "model/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/rng.h"
#include "model/layers.h"
#include "model/ops.h"
#include "model/params.h"

/* Saved activations of one layer (backend memory). [N, X] = n_tokens rows. */
typedef struct LayerAct {
    float *x_in;                      /* [N, D] layer input (residual stream) */
    float *xn1, *rstd1;               /* [N, D], [N] input_layernorm */
    float *cq, *cq_rstd, *cqn;        /* [N, ql], [N], [N, ql] (q-LoRA) */
    float *q;                         /* [N, H*dqk] queries, q_pe rotated */
    float *ckv, *c_rstd, *cn;         /* [N, r+dr] (c pre-norm | k_pe rotated), [N], [N, r] */
    float *kv;                        /* [N, H*(dn+dv)] */
    float *K, *V, *O, *lse;           /* [N, H*dqk], [N, H*dv], [N, H*dv], [N, H] */
    float *h;                         /* [N, D] residual after attention */
    float *xn2, *rstd2;               /* [N, D], [N] post_attention_layernorm */
    float *g, *u, *hm;                /* [N, I] dense MLP or [N, Is] shared experts */
    float *logits, *probs, *w;        /* [N, E], [N, E], [N, K] */
    int32_t *idx, *seg, *ros, *sor, *offsets;  /* [N, K], [N], [N*K], [N*K], [E+1] */
    float *aux_coef, *aux_loss;       /* [S, E], [1] */
    float *Xp, *G, *U, *Hm, *Yp;      /* [N*K, D], [N*K, Ie] x3, [N*K, D] */
    int32_t *offsets_host;            /* host [E+1] */
} LayerAct;

/* Scratch of model_ffn_forward_infer (separate from training activations). */
typedef struct InferScratch {
    int cap;
    void *arena;
    float *logits, *probs, *w, *Xp, *Yp, *G, *U, *Hm, *g, *u, *hm;
    int32_t *idx, *ros, *sor, *offsets, *offsets_host;
} InferScratch;

struct ModelState {
    ModelWeights w, gw;               /* views of params / grads */
    float *inv_freq;                  /* [dr/2] backend */
    float cs_factor, scale;
    int Imax;                         /* max(dense I, shared Is) */
    int cap_N, cap_S;
    void *arena;
    LayerAct *la;                     /* [L] */
    int32_t *tokens, *targets, *pos, *cu;   /* backend copies of the batch */
    float *xs;                        /* [(L+1), N, D]: xs[l] = input of layer l */
    float *yf, *rstdf;                /* [N, D], [N] final norm */
    float *logp, *lse, *dlogp, *lm_scratch;
    float *dres, *dxn, *dQ, *dK, *dV, *dO, *dkv, *dckv, *dcn, *dcq, *dcqn;
    float *dg, *du, *dh, *dw, *dlogits, *dYp, *dXp, *dG, *dU, *dHm;
    int32_t *host_pos, *host_targets; /* host [cap_N] */
    int32_t *offsets_host;            /* host [L * (E+1)] */
    int fwd_N, fwd_S, fwd_ok;         /* the batch of the last successful forward */
    int infer_only;                   /* model_create_infer: no grads, no training passes */
    InferScratch inf;
};

/* ---- arena carving ---------------------------------------------------------------- */

typedef struct Carver {
    char *base;  /* NULL: only count */
    size_t off;
} Carver;

/* n 4-byte elements, 64-byte aligned. */
static void *take(Carver *c, size_t n) {
    size_t bytes = (n * 4 + 63) & ~(size_t)63;
    void *p = c->base ? c->base + c->off : NULL;
    c->off += bytes;
    return p;
}

static void carve_state(Model *m, Carver *cv, int N, int S) {
    const ModelConfig *c = &m->cfg;
    ModelState *st = m->state;
    size_t D = c->hidden_size, H = c->num_attention_heads, dn = c->qk_nope_head_dim,
           dr = c->qk_rope_head_dim, dv = c->v_head_dim, r = c->kv_lora_rank, ql = c->q_lora_rank;
    size_t dqk = dn + dr, E = c->n_routed_experts, K = c->num_experts_per_tok, Ie = c->moe_intermediate_size;
    size_t n = (size_t)N, L = c->num_hidden_layers, Imax = st->Imax;
    st->tokens = take(cv, n);
    st->targets = take(cv, n);
    st->pos = take(cv, n);
    st->cu = take(cv, (size_t)S + 1);
    st->xs = take(cv, (L + 1) * n * D);
    int any_moe = 0;
    for (size_t l = 0; l < L; l++) {
        LayerAct *a = &st->la[l];
        int32_t *oh = a->offsets_host;
        memset(a, 0, sizeof *a);
        a->offsets_host = oh;  /* x_in is pointed into xs per batch (forward_trunk) */
        a->xn1 = take(cv, n * D);
        a->rstd1 = take(cv, n);
        if (ql) {
            a->cq = take(cv, n * ql);
            a->cq_rstd = take(cv, n);
            a->cqn = take(cv, n * ql);
        }
        a->q = take(cv, n * H * dqk);
        a->ckv = take(cv, n * (r + dr));
        a->c_rstd = take(cv, n);
        a->cn = take(cv, n * r);
        a->kv = take(cv, n * H * (dn + dv));
        a->K = take(cv, n * H * dqk);
        a->V = take(cv, n * H * dv);
        a->O = take(cv, n * H * dv);
        a->lse = take(cv, n * H);
        a->h = take(cv, n * D);
        a->xn2 = take(cv, n * D);
        a->rstd2 = take(cv, n);
        if (model_layer_is_moe(c, (int)l)) {
            any_moe = 1;
            size_t Is = Ie * c->n_shared_experts;
            if (Is) {
                a->g = take(cv, n * Is);
                a->u = take(cv, n * Is);
                a->hm = take(cv, n * Is);
            }
            a->logits = take(cv, n * E);
            a->probs = take(cv, n * E);
            a->w = take(cv, n * K);
            a->idx = take(cv, n * K);
            a->seg = take(cv, n);
            a->ros = take(cv, n * K);
            a->sor = take(cv, n * K);
            a->offsets = take(cv, E + 1);
            a->aux_coef = take(cv, (size_t)S * E);
            a->aux_loss = take(cv, 1);
            a->Xp = take(cv, n * K * D);
            a->G = take(cv, n * K * Ie);
            a->U = take(cv, n * K * Ie);
            a->Hm = take(cv, n * K * Ie);
            a->Yp = take(cv, n * K * D);
        } else {
            size_t I = c->intermediate_size;
            a->g = take(cv, n * I);
            a->u = take(cv, n * I);
            a->hm = take(cv, n * I);
        }
    }
    st->yf = take(cv, n * D);
    st->rstdf = take(cv, n);
    st->logp = take(cv, n);
    st->lse = take(cv, n);
    st->dlogp = take(cv, n);
    st->lm_scratch = take(cv, ops_lmhead_scratch_floats());
    st->dres = take(cv, n * D);
    st->dxn = take(cv, n * D);
    st->dQ = take(cv, n * H * dqk);
    st->dK = take(cv, n * H * dqk);
    st->dV = take(cv, n * H * dv);
    st->dO = take(cv, n * H * dv);
    st->dkv = take(cv, n * H * (dn + dv));
    st->dckv = take(cv, n * (r + dr));
    st->dcn = take(cv, n * r);
    if (ql) {
        st->dcq = take(cv, n * ql);
        st->dcqn = take(cv, n * ql);
    }
    st->dg = take(cv, n * Imax);
    st->du = take(cv, n * Imax);
    st->dh = take(cv, n * Imax);
    if (any_moe) {
        st->dw = take(cv, n * K);
        st->dlogits = take(cv, n * E);
        st->dYp = take(cv, n * K * D);
        st->dXp = take(cv, n * K * D);
        st->dG = take(cv, n * K * Ie);
        st->dU = take(cv, n * K * Ie);
        st->dHm = take(cv, n * K * Ie);
    }
}

static void ensure_capacity(Model *m, int N, int S) {
    ModelState *st = m->state;
    if (N <= st->cap_N && S <= st->cap_S) return;
    int nN = N > st->cap_N ? N : st->cap_N, nS = S > st->cap_S ? S : st->cap_S;
    Carver cv = {NULL, 0};
    carve_state(m, &cv, nN, nS);
    m->ops->free(st->arena);
    st->arena = m->ops->alloc(cv.off);
    cv.base = st->arena;
    cv.off = 0;
    carve_state(m, &cv, nN, nS);
    st->cap_N = nN;
    st->cap_S = nS;
    st->host_pos = cr_realloc(st->host_pos, sizeof(int32_t) * (size_t)nN);
    st->host_targets = cr_realloc(st->host_targets, sizeof(int32_t) * (size_t)nN);
    st->fwd_ok = 0;
}

/* ---- create / free / init ----------------------------------------------------------- */

Model *model_create(const ModelConfig *cfg, CrError *e) { return model_create_ops(cfg, ops_cpu(), e); }

/* train = 0: no gradient buffer (m->grads NULL, grad views NULL) and the training entry
 * points refuse the model, so no training activations are ever allocated. */
static Model *create(const ModelConfig *cfg, const Ops *ops, int train, CrError *e) {
    if (model_config_validate(cfg, "model config", e)) return NULL;
    int n_tab = 0;
    size_t n_par = 0;
    ParamTensor *tab = model_params_layout(cfg, &n_tab, &n_par);
    if (ops == ops_cpu()) {
        /* host memory: a config that cannot fit is an error, not an abort in the allocator */
        double need = (double)n_par * sizeof(float) * (train ? 2 : 1);
        long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
        double have = pages > 0 && psize > 0 ? (double)pages * (double)psize : 0;
        if (have > 0 && need > have) {
            free(tab);
            cr_error_set(e, "model config: %zu parameters need %.1f GB (weights%s in fp32), more than this machine's "
                            "%.1f GB of memory", n_par, need / 1e9, train ? " and gradients" : "", have / 1e9);
            return NULL;
        }
    }
    Model *m = cr_calloc(1, sizeof *m);
    m->cfg = *cfg;
    m->ops = ops;
    m->tensors = tab;
    m->n_tensors = n_tab;
    m->n_params = n_par;
    m->params = m->ops->alloc(sizeof(float) * m->n_params);
    if (train) m->grads = m->ops->alloc(sizeof(float) * m->n_params);
    if (m->ops->declare_params) m->ops->declare_params(m->params, m->n_params);
    ModelState *st = cr_calloc(1, sizeof *st);
    m->state = st;
    st->infer_only = !train;
    int L = cfg->num_hidden_layers, E = cfg->n_routed_experts;
    st->w.layers = cr_calloc((size_t)L, sizeof(LayerWeights));
    st->gw.layers = cr_calloc((size_t)L, sizeof(LayerWeights));
    model_params_views(cfg, m->tensors, m->n_tensors, m->params, &st->w);
    if (train) model_params_views(cfg, m->tensors, m->n_tensors, m->grads, &st->gw);
    int dr2 = cfg->qk_rope_head_dim / 2;
    float *inv = cr_malloc(sizeof(float) * (size_t)dr2);
    model_rope_inv_freq(cfg, inv, &st->cs_factor);
    st->inv_freq = m->ops->alloc(sizeof(float) * (size_t)dr2);
    m->ops->upload(st->inv_freq, inv, sizeof(float) * (size_t)dr2);
    free(inv);
    st->scale = (float)model_softmax_scale(cfg);
    st->Imax = 1;
    for (int l = 0; l < L; l++) {
        int I = model_layer_is_moe(cfg, l) ? cfg->moe_intermediate_size * cfg->n_shared_experts
                                           : cfg->intermediate_size;
        if (I > st->Imax) st->Imax = I;
    }
    st->la = cr_calloc((size_t)L, sizeof(LayerAct));
    st->offsets_host = cr_calloc((size_t)L * (size_t)(E + 1), sizeof(int32_t));
    for (int l = 0; l < L; l++) st->la[l].offsets_host = st->offsets_host + (size_t)l * (E + 1);
    return m;
}

Model *model_create_ops(const ModelConfig *cfg, const Ops *ops, CrError *e) { return create(cfg, ops, 1, e); }

Model *model_create_infer(const ModelConfig *cfg, const Ops *ops, CrError *e) { return create(cfg, ops, 0, e); }

int model_is_infer_only(const Model *m) { return m->state->infer_only; }

void model_free(Model *m) {
    if (!m) return;
    ModelState *st = m->state;
    if (st) {
        m->ops->free(st->arena);
        m->ops->free(st->inv_freq);
        m->ops->free(st->inf.arena);
        free(st->inf.offsets_host);
        free(st->w.layers);
        free(st->gw.layers);
        free(st->la);
        free(st->offsets_host);
        free(st->host_pos);
        free(st->host_targets);
        free(st);
    }
    m->ops->free(m->params);
    m->ops->free(m->grads);
    free(m->tensors);
    free(m);
}

static int is_norm_weight(const char *name) {
    size_t n = strlen(name);
    return n >= 11 && strcmp(name + n - 11, "norm.weight") == 0;
}

/* Fill one tensor's values into p (its own stream: independent of grouping and threads). */
static void init_tensor(const ParamTensor *t, int index, uint64_t seed, float std, float *p) {
    if (is_norm_weight(t->name)) {
        for (size_t j = 0; j < t->numel; j++) p[j] = 1.0f;
        return;
    }
    CrRng r;
    cr_rng_init(&r, seed, (uint64_t)index, 0x1a17);
    for (size_t j = 0; j < t->numel; j++) p[j] = (float)(cr_rng_normal(&r) * std);
}

/* Tensor indices by size, largest first (ties: lower index first). */
static int cmp_numel_desc(const void *a, const void *b, void *ctx) {
    const ParamTensor *t = ctx;
    int i = *(const int *)a, j = *(const int *)b;
    size_t x = t[i].numel, y = t[j].numel;
    return x < y ? 1 : x > y ? -1 : (i > j) - (i < j);
}

/* Upload tensors order[0..k) from their packed places in buf (at[] offsets). */
static void init_upload(Model *m, const int *order, int k, const size_t *at, const float *buf) {
    for (int j = 0; j < k; j++) {
        const ParamTensor *t = &m->tensors[order[j]];
        m->ops->upload(m->params + t->offset, buf + at[j], sizeof(float) * t->numel);
    }
}

void model_init_random(Model *m, uint64_t seed) { model_init_random_chunked(m, seed, (size_t)1 << 28); }

void model_init_random_chunked(Model *m, uint64_t seed, size_t chunk_floats) {
    float std = m->cfg.initializer_range;
    /* Tensors are generated largest first: in place on ops_cpu(); else into a host staging
     * buffer of chunk_floats (at least twice the largest tensor, at most the model) and
     * uploaded one by one: a device model of 15.7 B parameters does not need a host copy of
     * all of them. Two
     * buffers: while the worker threads fill one chunk, the calling thread uploads the
     * previous one (then joins them). Largest first, two per chunk at least: the embedding
     * and the LM head (a fifth of Lite's non-expert bytes, one thread each) are generated
     * side by side, and the many expert matrices spread evenly over the threads. The
     * values do not depend on the grouping or the threads: each tensor has its own stream. */
    int T = m->n_tensors;
    int *order = cr_malloc(sizeof(int) * (size_t)(T > 0 ? T : 1));
    for (int i = 0; i < T; i++) order[i] = i;
    qsort_r(order, (size_t)T, sizeof *order, cmp_numel_desc, m->tensors);
    if (m->ops == ops_cpu()) {  /* host memory: generated in place, no staging */
#pragma omp parallel for schedule(dynamic, 1)
        for (int j = 0; j < T; j++)
            init_tensor(&m->tensors[order[j]], order[j], seed, std, m->params + m->tensors[order[j]].offset);
        free(order);
        return;
    }
    size_t cap = chunk_floats;
    for (int i = 0; i < T; i++)
        if (2 * m->tensors[i].numel > cap) cap = 2 * m->tensors[i].numel;
    if (cap > m->n_params) cap = m->n_params ? m->n_params : 1;
    size_t *at = cr_malloc(sizeof(size_t) * (size_t)(T > 0 ? T : 1));
    float *host[2] = {cr_malloc(sizeof(float) * cap), NULL};
    int prev_first = 0, prev_k = 0, cur = 0;  /* the previous chunk, waiting in host[cur ^ 1] */
    for (int first = 0; first < T;) {
        size_t used = 0;
        int last = first;
        while (last < T && (last == first || used + m->tensors[order[last]].numel <= cap)) {
            at[last] = used;
            used += m->tensors[order[last++]].numel;
        }
        if (last < T && !host[1]) host[1] = cr_malloc(sizeof(float) * cap);  /* more than one chunk */
        float *buf = host[cur], *prev = host[cur ^ 1];
        int k = last - first;
#pragma omp parallel
        {
#pragma omp master
            if (prev_k) init_upload(m, order + prev_first, prev_k, at + prev_first, prev);
#pragma omp for schedule(dynamic, 1)
            for (int j = 0; j < k; j++)
                init_tensor(&m->tensors[order[first + j]], order[first + j], seed, std, buf + at[first + j]);
        }
        prev_first = first, prev_k = k, cur ^= 1;
        first = last;
    }
    if (prev_k) init_upload(m, order + prev_first, prev_k, at + prev_first, host[cur ^ 1]);
    free(order);
    free(at);
    free(host[0]);
    free(host[1]);
}

const ParamTensor *model_find_tensor(const Model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

void model_zero_grads(Model *m) {
    if (m->grads) m->ops->zero(m->grads, sizeof(float) * m->n_params);
}

const ModelWeights *model_weights(const Model *m) { return &m->state->w; }
const ModelWeights *model_grad_weights(const Model *m) { return &m->state->gw; }

int model_check_finite(const Model *m, CrError *e) {
    for (int i = 0; i < m->n_tensors; i++) {
        size_t bad = 0;
        m->ops->count_nonfinite(m->params + m->tensors[i].offset, m->tensors[i].numel, &bad);
        if (bad)
            return cr_error_set(e, "parameter %s: %zu non-finite value(s) (NaN/Inf)", m->tensors[i].name, bad);
    }
    return 0;
}

void model_rope_apply(const Model *m, float *x, int ld, int head_stride, int n_heads, int N, const int32_t *pos) {
    m->ops->rope_forward(x, ld, head_stride, n_heads, N, m->cfg.qk_rope_head_dim, pos, m->state->inv_freq,
                         m->state->cs_factor);
}

/* ---- batch validation ----------------------------------------------------------------- */

static int validate_batch(Model *m, const Batch *b, int need_targets, CrError *e) {
    const ModelConfig *c = &m->cfg;
    if (!b || b->n_tokens <= 0) return cr_error_set(e, "batch: empty batch (n_tokens must be > 0)");
    if (b->n_seqs <= 0) return cr_error_set(e, "batch: n_seqs must be > 0 (got %d)", b->n_seqs);
    if (!b->tokens || !b->cu_seqlens) return cr_error_set(e, "batch: tokens and cu_seqlens are required");
    if (need_targets && !b->targets) return cr_error_set(e, "batch: targets are required");
    if (b->n_seqs > b->n_tokens)
        return cr_error_set(e, "batch: n_seqs (%d) exceeds n_tokens (%d)", b->n_seqs, b->n_tokens);
    if (b->n_tokens > (1 << 30) / (c->num_experts_per_tok > 0 ? c->num_experts_per_tok : 1))
        return cr_error_set(e, "batch: n_tokens %d is too large", b->n_tokens);
    const int32_t *cu = b->cu_seqlens;
    if (cu[0] != 0) return cr_error_set(e, "batch: cu_seqlens[0] must be 0 (got %d)", cu[0]);
    for (int s = 0; s < b->n_seqs; s++)
        if (cu[s + 1] <= cu[s] || cu[s + 1] > b->n_tokens)
            return cr_error_set(e, "batch: cu_seqlens not strictly increasing within 0..n_tokens at index %d (%d -> %d)",
                                s + 1, cu[s], cu[s + 1]);
    if (cu[b->n_seqs] != b->n_tokens)
        return cr_error_set(e, "batch: cu_seqlens[n_seqs] = %d but n_tokens = %d (n_seqs/cu_seqlens inconsistent)",
                            cu[b->n_seqs], b->n_tokens);
    for (int t = 0; t < b->n_tokens; t++) {
        if (b->tokens[t] < 0 || b->tokens[t] >= c->vocab_size)
            return cr_error_set(e, "batch: token id %d at position %d out of range [0, %d)", b->tokens[t], t,
                                c->vocab_size);
        if (b->targets && b->targets[t] >= c->vocab_size)
            return cr_error_set(e, "batch: target id %d at position %d out of range [0, %d) (use -1 to skip)",
                                b->targets[t], t, c->vocab_size);
    }
    return 0;
}

/* Fill st->host_pos (given or 0..len-1 per sequence) and check the range. */
static int batch_positions(Model *m, const Batch *b, CrError *e) {
    int32_t *p = m->state->host_pos;
    for (int s = 0; s < b->n_seqs; s++)
        for (int t = b->cu_seqlens[s]; t < b->cu_seqlens[s + 1]; t++) {
            p[t] = b->pos ? b->pos[t] : t - b->cu_seqlens[s];
            if (p[t] < 0 || p[t] >= m->cfg.max_position_embeddings)
                return cr_error_set(e, "batch: position %d of token %d outside [0, max_position_embeddings=%d)", p[t],
                                    t, m->cfg.max_position_embeddings);
        }
    return 0;
}

/* ---- forward -------------------------------------------------------------------------- */

static OpsMoeRoute route_cfg(const ModelConfig *c) {
    OpsMoeRoute r = {.E = c->n_routed_experts, .K = c->num_experts_per_tok,
                     .group_limited = c->topk_method == TOPK_GROUP_LIMITED_GREEDY, .n_group = c->n_group,
                     .topk_group = c->topk_group, .norm_topk_prob = c->norm_topk_prob,
                     .routed_scale = c->routed_scaling_factor};
    return r;
}

static void attention_forward(Model *m, int l, int N, int S) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    ModelState *st = m->state;
    LayerAct *a = &st->la[l];
    const LayerWeights *w = &st->w.layers[l];
    int D = c->hidden_size, H = c->num_attention_heads, dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim;
    int dv = c->v_head_dim, r = c->kv_lora_rank, ql = c->q_lora_rank, dqk = dn + dr;
    float eps = c->rms_norm_eps;
    o->rmsnorm_forward(a->xn1, D, a->rstd1, a->x_in, D, w->attn_norm, N, D, eps);
    if (ql) {
        o->gemm(0, 1, N, ql, D, 1.0f, a->xn1, D, w->wq_a, D, 0.0f, a->cq, ql);
        o->rmsnorm_forward(a->cqn, ql, a->cq_rstd, a->cq, ql, w->q_a_norm, N, ql, MODEL_LATENT_NORM_EPS);
        o->gemm(0, 1, N, H * dqk, ql, 1.0f, a->cqn, ql, w->wq_b, ql, 0.0f, a->q, H * dqk);
    } else {
        o->gemm(0, 1, N, H * dqk, D, 1.0f, a->xn1, D, w->wq, D, 0.0f, a->q, H * dqk);
    }
    o->rope_forward(a->q + dn, H * dqk, dqk, H, N, dr, st->pos, st->inv_freq, st->cs_factor);
    o->gemm(0, 1, N, r + dr, D, 1.0f, a->xn1, D, w->wkv_a, D, 0.0f, a->ckv, r + dr);
    o->rmsnorm_forward(a->cn, r, a->c_rstd, a->ckv, r + dr, w->kv_a_norm, N, r, MODEL_LATENT_NORM_EPS);
    o->rope_forward(a->ckv + r, r + dr, dr, 1, N, dr, st->pos, st->inv_freq, st->cs_factor);
    o->gemm(0, 1, N, H * (dn + dv), r, 1.0f, a->cn, r, w->wkv_b, r, 0.0f, a->kv, H * (dn + dv));
    o->mla_kv_assemble_forward(a->K, a->V, a->kv, a->ckv + r, r + dr, N, H, dn, dr, dv);
    o->attention_forward(a->O, a->lse, a->q, a->K, a->V, st->cu, S, N, H, dqk, dv, st->scale);
    o->copy(a->h, a->x_in, sizeof(float) * (size_t)N * D);
    o->gemm(0, 1, N, D, H * dv, 1.0f, a->O, H * dv, w->wo, H * dv, 1.0f, a->h, D);
}

/* SwiGLU MLP rows x [N, D] -> out += down(silu(x Wg^T) * x Wu^T) (beta = 1: adds). */
static void mlp_forward(const Ops *o, const float *x, int N, int D, int I, const float *Wg, const float *Wu,
                        const float *Wd, float *g, float *u, float *hm, float *out, float beta) {
    o->gemm(0, 1, N, I, D, 1.0f, x, D, Wg, D, 0.0f, g, I);
    o->gemm(0, 1, N, I, D, 1.0f, x, D, Wu, D, 0.0f, u, I);
    o->swiglu_forward(hm, g, u, (size_t)N * I);
    o->gemm(0, 1, N, D, I, 1.0f, hm, I, Wd, I, beta, out, D);
}

static void ffn_forward(Model *m, int l, int N, int S, float *out) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    ModelState *st = m->state;
    LayerAct *a = &st->la[l];
    const LayerWeights *w = &st->w.layers[l];
    int D = c->hidden_size;
    o->rmsnorm_forward(a->xn2, D, a->rstd2, a->h, D, w->ffn_norm, N, D, c->rms_norm_eps);
    o->copy(out, a->h, sizeof(float) * (size_t)N * D);
    if (!model_layer_is_moe(c, l)) {
        mlp_forward(o, a->xn2, N, D, c->intermediate_size, w->mlp_gate, w->mlp_up, w->mlp_down, a->g, a->u,
                    a->hm, out, 1.0f);
        return;
    }
    int E = c->n_routed_experts, K = c->num_experts_per_tok, Ie = c->moe_intermediate_size;
    OpsMoeRoute rc = route_cfg(c);
    o->gemm(0, 1, N, E, D, 1.0f, a->xn2, D, w->router, D, 0.0f, a->logits, E);
    o->moe_route_forward(a->probs, a->idx, a->w, a->logits, N, &rc);
    if (c->aux_loss_alpha > 0) {
        int nseg = c->seq_aux ? S : 1;
        o->moe_aux_forward(a->aux_loss, a->aux_coef, a->seg, a->probs, a->idx, st->cu, nseg, N, E, K,
                           c->aux_loss_alpha);
    }
    o->moe_permute(a->Xp, a->ros, a->sor, a->offsets, a->xn2, a->idx, N, D, E, K);
    o->download(a->offsets_host, a->offsets, sizeof(int32_t) * (size_t)(E + 1));
    o->moe_experts_forward(a->Yp, a->G, a->U, a->Hm, a->Xp, w->exp_gate, w->exp_up, w->exp_down, a->offsets_host,
                           E, D, Ie);
    /* routed output into the dXp scratch (free during forward), then added */
    o->moe_unpermute(st->dxn, a->Yp, a->w, a->ros, N, D, K);
    o->add(out, st->dxn, (size_t)N * D);
    int Is = Ie * c->n_shared_experts;
    if (Is > 0) mlp_forward(o, a->xn2, N, D, Is, w->sh_gate, w->sh_up, w->sh_down, a->g, a->u, a->hm, out, 1.0f);
}

/* The training passes keep activations for a backward and write gradients: an
 * inference-only model (model_create_infer) has neither. */
static int infer_only_error(const Model *m, const char *fn, CrError *e) {
    if (!m->state->infer_only) return 0;
    return cr_error_set(e, "%s: the model was created by model_create_infer (inference only: no gradients, "
                           "no training activations); use model_create_ops for training", fn);
}

/* Everything up to the final norm (st->yf); aux loss summed into *aux (host). */
static int forward_trunk(Model *m, const Batch *b, int need_targets, float *aux, CrError *e) {
    ModelState *st = m->state;
    st->fwd_ok = 0;
    if (infer_only_error(m, need_targets ? "model_forward" : "model_forward_hidden", e)) return -1;
    if (validate_batch(m, b, need_targets, e)) return -1;
    int N = b->n_tokens, S = b->n_seqs;
    ensure_capacity(m, N, S);
    if (batch_positions(m, b, e)) return -1;
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    int D = c->hidden_size, L = c->num_hidden_layers;
    o->upload(st->tokens, b->tokens, sizeof(int32_t) * (size_t)N);
    if (b->targets) {
        o->upload(st->targets, b->targets, sizeof(int32_t) * (size_t)N);
    } else {
        for (int t = 0; t < N; t++) st->host_targets[t] = -1;
        o->upload(st->targets, st->host_targets, sizeof(int32_t) * (size_t)N);
    }
    o->upload(st->pos, st->host_pos, sizeof(int32_t) * (size_t)N);
    o->upload(st->cu, b->cu_seqlens, sizeof(int32_t) * (size_t)(S + 1));
    /* xs is laid out for cap_N rows per layer; re-point the layer inputs for this N. */
    for (int l = 0; l < L; l++) st->la[l].x_in = st->xs + (size_t)l * N * D;
    o->embedding_forward(st->xs, st->w.embed, st->tokens, N, D);
    double aux_sum = 0;
    for (int l = 0; l < L; l++) {
        attention_forward(m, l, N, S);
        ffn_forward(m, l, N, S, st->xs + (size_t)(l + 1) * N * D);
        if (model_layer_is_moe(c, l) && c->aux_loss_alpha > 0) {
            float v = 0;
            o->download(&v, st->la[l].aux_loss, sizeof v);
            aux_sum += v;
        }
    }
    o->rmsnorm_forward(st->yf, D, st->rstdf, st->xs + (size_t)L * N * D, D, st->w.final_norm, N, D,
                       c->rms_norm_eps);
    if (aux) *aux = (float)aux_sum;
    st->fwd_N = N;
    st->fwd_S = S;
    return 0;
}

/* Non-finite outputs: name the first bad parameter tensor if there is one. */
static int nonfinite_error(Model *m, const char *what, CrError *e) {
    if (model_check_finite(m, e)) return cr_error_prefix(e, "non-finite %s", what);
    return cr_error_set(e, "non-finite %s although all parameters are finite (activation overflow)", what);
}

int model_forward(Model *m, const Batch *b, float *logp, float *aux_loss, CrError *e) {
    float aux = 0;
    if (forward_trunk(m, b, 1, &aux, e)) return -1;
    ModelState *st = m->state;
    const ModelConfig *c = &m->cfg;
    int N = b->n_tokens;
    m->ops->lmhead_logprob_forward(st->logp, st->lse, st->yf, st->w.lm_head, st->targets, N, c->vocab_size,
                                   c->hidden_size, st->lm_scratch);
    m->ops->download(logp, st->logp, sizeof(float) * (size_t)N);
    size_t bad = 0;
    m->ops->count_nonfinite(st->lse, (size_t)N, &bad);
    if (bad || !isfinite(aux)) return nonfinite_error(m, "log-probabilities", e);
    if (aux_loss) *aux_loss = aux;
    st->fwd_ok = 1;
    return 0;
}

int model_forward_hidden(Model *m, const Batch *b, float *hidden, float *aux_loss, CrError *e) {
    float aux = 0;
    if (forward_trunk(m, b, 0, &aux, e)) return -1;
    ModelState *st = m->state;
    size_t n = (size_t)b->n_tokens * m->cfg.hidden_size, bad = 0;
    m->ops->count_nonfinite(st->yf, n, &bad);
    if (bad || !isfinite(aux)) return nonfinite_error(m, "hidden states", e);
    m->ops->download(hidden, st->yf, sizeof(float) * n);
    if (aux_loss) *aux_loss = aux;
    st->fwd_ok = 2;
    return 0;
}

/* ---- backward ------------------------------------------------------------------------- */

/* dout [N, D] -> dx (overwrite, [N, D]) through a SwiGLU MLP; weight grads accumulate. */
static void mlp_backward(const Ops *o, ModelState *st, const float *x, const float *dout, int N, int D, int I,
                         const float *Wg, const float *Wu, const float *Wd, float *dWg, float *dWu, float *dWd,
                         const float *g, const float *u, const float *hm, float *dx, float beta_dx) {
    o->gemm(0, 0, N, I, D, 1.0f, dout, D, Wd, I, 0.0f, st->dh, I);
    o->gemm(1, 0, D, I, N, 1.0f, dout, D, hm, I, 1.0f, dWd, I);
    o->swiglu_backward(st->dg, st->du, st->dh, g, u, (size_t)N * I);
    o->gemm(0, 0, N, D, I, 1.0f, st->dg, I, Wg, D, beta_dx, dx, D);
    o->gemm(0, 0, N, D, I, 1.0f, st->du, I, Wu, D, 1.0f, dx, D);
    o->gemm(1, 0, I, D, N, 1.0f, st->dg, I, x, D, 1.0f, dWg, D);
    o->gemm(1, 0, I, D, N, 1.0f, st->du, I, x, D, 1.0f, dWu, D);
}

/* st->dres holds dL/d(layer output); on return dL/d(layer input). */
static void layer_backward(Model *m, int l, int N, int S, float aux_weight) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    ModelState *st = m->state;
    LayerAct *a = &st->la[l];
    const LayerWeights *w = &st->w.layers[l];
    const LayerWeights *gw = &st->gw.layers[l];
    int D = c->hidden_size, H = c->num_attention_heads, dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim;
    int dv = c->v_head_dim, r = c->kv_lora_rank, ql = c->q_lora_rank, dqk = dn + dr;
    float *dres = st->dres, *dxn = st->dxn;

    /* FFN: dres is dL/dout; dxn = dL/dxn2 */
    if (!model_layer_is_moe(c, l)) {
        mlp_backward(o, st, a->xn2, dres, N, D, c->intermediate_size, w->mlp_gate, w->mlp_up, w->mlp_down,
                     gw->mlp_gate, gw->mlp_up, gw->mlp_down, a->g, a->u, a->hm, dxn, 0.0f);
    } else {
        int E = c->n_routed_experts, K = c->num_experts_per_tok, Ie = c->moe_intermediate_size;
        int Is = Ie * c->n_shared_experts;
        OpsMoeRoute rc = route_cfg(c);
        if (Is > 0)
            mlp_backward(o, st, a->xn2, dres, N, D, Is, w->sh_gate, w->sh_up, w->sh_down, gw->sh_gate, gw->sh_up,
                         gw->sh_down, a->g, a->u, a->hm, dxn, 0.0f);
        else
            o->zero(dxn, sizeof(float) * (size_t)N * D);
        o->moe_unpermute_backward(st->dYp, st->dw, dres, a->Yp, a->w, a->ros, a->sor, N, D, K);
        o->moe_experts_backward(st->dXp, gw->exp_gate, gw->exp_up, gw->exp_down, st->dYp, st->dG, st->dU, st->dHm,
                                a->Xp, a->G, a->U, a->Hm, w->exp_gate, w->exp_up, w->exp_down, a->offsets_host, E,
                                D, Ie);
        o->moe_permute_backward(dxn, st->dXp, a->ros, N, D, K);
        int aux_on = c->aux_loss_alpha > 0 && aux_weight != 0;
        o->moe_route_backward(st->dlogits, st->dw, a->probs, a->idx, a->w, aux_on ? a->aux_coef : NULL, aux_weight,
                              a->seg, N, &rc);
        o->gemm(1, 0, E, D, N, 1.0f, st->dlogits, E, a->xn2, D, 1.0f, gw->router, D);
        o->gemm(0, 0, N, D, E, 1.0f, st->dlogits, E, w->router, D, 1.0f, dxn, D);
    }
    o->rmsnorm_backward(dres, D, gw->ffn_norm, dxn, D, a->h, D, w->ffn_norm, a->rstd2, N, D);

    /* attention: dres is dL/dh */
    o->gemm(0, 0, N, H * dv, D, 1.0f, dres, D, w->wo, H * dv, 0.0f, st->dO, H * dv);
    o->gemm(1, 0, D, H * dv, N, 1.0f, dres, D, a->O, H * dv, 1.0f, gw->wo, H * dv);
    o->attention_backward(st->dQ, st->dK, st->dV, st->dO, a->O, a->lse, a->q, a->K, a->V, st->cu, S, N, H, dqk, dv,
                          st->scale);
    o->zero(st->dckv, sizeof(float) * (size_t)N * (r + dr));
    o->mla_kv_assemble_backward(st->dkv, st->dckv + r, r + dr, st->dK, st->dV, N, H, dn, dr, dv);
    o->rope_backward(st->dckv + r, r + dr, dr, 1, N, dr, st->pos, st->inv_freq, st->cs_factor);
    o->rope_backward(st->dQ + dn, H * dqk, dqk, H, N, dr, st->pos, st->inv_freq, st->cs_factor);
    o->gemm(1, 0, H * (dn + dv), r, N, 1.0f, st->dkv, H * (dn + dv), a->cn, r, 1.0f, gw->wkv_b, r);
    o->gemm(0, 0, N, r, H * (dn + dv), 1.0f, st->dkv, H * (dn + dv), w->wkv_b, r, 0.0f, st->dcn, r);
    o->rmsnorm_backward(st->dckv, r + dr, gw->kv_a_norm, st->dcn, r, a->ckv, r + dr, w->kv_a_norm, a->c_rstd, N, r);
    o->gemm(1, 0, r + dr, D, N, 1.0f, st->dckv, r + dr, a->xn1, D, 1.0f, gw->wkv_a, D);
    o->gemm(0, 0, N, D, r + dr, 1.0f, st->dckv, r + dr, w->wkv_a, D, 0.0f, dxn, D);
    if (ql) {
        o->gemm(1, 0, H * dqk, ql, N, 1.0f, st->dQ, H * dqk, a->cqn, ql, 1.0f, gw->wq_b, ql);
        o->gemm(0, 0, N, ql, H * dqk, 1.0f, st->dQ, H * dqk, w->wq_b, ql, 0.0f, st->dcqn, ql);
        o->zero(st->dcq, sizeof(float) * (size_t)N * ql);
        o->rmsnorm_backward(st->dcq, ql, gw->q_a_norm, st->dcqn, ql, a->cq, ql, w->q_a_norm, a->cq_rstd, N, ql);
        o->gemm(1, 0, ql, D, N, 1.0f, st->dcq, ql, a->xn1, D, 1.0f, gw->wq_a, D);
        o->gemm(0, 0, N, D, ql, 1.0f, st->dcq, ql, w->wq_a, D, 1.0f, dxn, D);
    } else {
        o->gemm(1, 0, H * dqk, D, N, 1.0f, st->dQ, H * dqk, a->xn1, D, 1.0f, gw->wq, D);
        o->gemm(0, 0, N, D, H * dqk, 1.0f, st->dQ, H * dqk, w->wq, D, 1.0f, dxn, D);
    }
    o->rmsnorm_backward(dres, D, gw->attn_norm, dxn, D, a->x_in, D, w->attn_norm, a->rstd1, N, D);
}

/* From dL/dyf in st->dxn down to the embedding. */
static void backward_trunk(Model *m, int N, int S, float aux_weight) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    ModelState *st = m->state;
    int D = c->hidden_size, L = c->num_hidden_layers;
    o->zero(st->dres, sizeof(float) * (size_t)N * D);
    o->rmsnorm_backward(st->dres, D, st->gw.final_norm, st->dxn, D, st->xs + (size_t)L * N * D, D, st->w.final_norm,
                        st->rstdf, N, D);
    for (int l = L - 1; l >= 0; l--) layer_backward(m, l, N, S, aux_weight);
    o->embedding_backward(st->gw.embed, st->dres, st->tokens, N, D);
}

static int check_follows(Model *m, const Batch *b, int kind, CrError *e) {
    ModelState *st = m->state;
    if (infer_only_error(m, kind == 2 ? "model_backward_hidden" : "model_backward", e)) return -1;
    if (!b || st->fwd_ok != kind || b->n_tokens != st->fwd_N || b->n_seqs != st->fwd_S)
        return cr_error_set(e, "model_backward%s: must follow a successful model_forward%s of the same batch",
                            kind == 2 ? "_hidden" : "", kind == 2 ? "_hidden" : "");
    return 0;
}

int model_backward(Model *m, const Batch *b, const float *dlogp, float aux_weight, CrError *e) {
    if (check_follows(m, b, 1, e)) return -1;
    ModelState *st = m->state;
    const ModelConfig *c = &m->cfg;
    int N = b->n_tokens;
    m->ops->upload(st->dlogp, dlogp, sizeof(float) * (size_t)N);
    m->ops->lmhead_logprob_backward(st->dxn, 0.0f, st->gw.lm_head, st->dlogp, st->lse, st->yf, st->w.lm_head,
                                    st->targets, N, c->vocab_size, c->hidden_size, st->lm_scratch);
    backward_trunk(m, N, b->n_seqs, aux_weight);
    return 0;
}

int model_backward_hidden(Model *m, const Batch *b, const float *dhidden, float aux_weight, CrError *e) {
    if (check_follows(m, b, 2, e)) return -1;
    ModelState *st = m->state;
    m->ops->upload(st->dxn, dhidden, sizeof(float) * (size_t)b->n_tokens * m->cfg.hidden_size);
    backward_trunk(m, b->n_tokens, b->n_seqs, aux_weight);
    return 0;
}

/* ---- inference FFN rows (rollout) ----------------------------------------------------- */

static void infer_carve(Model *m, Carver *cv, int N) {
    const ModelConfig *c = &m->cfg;
    InferScratch *s = &m->state->inf;
    size_t n = (size_t)N, D = c->hidden_size, E = c->n_routed_experts, K = c->num_experts_per_tok;
    size_t Ie = c->moe_intermediate_size, Imax = m->state->Imax;
    s->logits = take(cv, n * E);
    s->probs = take(cv, n * E);
    s->w = take(cv, n * K);
    s->idx = take(cv, n * K);
    s->ros = take(cv, n * K);
    s->sor = take(cv, n * K);
    s->offsets = take(cv, E + 1);
    s->Xp = take(cv, n * K * D);
    s->Yp = take(cv, n * K * D);
    s->G = take(cv, n * K * Ie);
    s->U = take(cv, n * K * Ie);
    s->Hm = take(cv, n * K * Ie);
    s->g = take(cv, n * Imax);
    s->u = take(cv, n * Imax);
    s->hm = take(cv, n * Imax);
}

/* Routed experts of at most this many (row, k) slots go through Ops.moe_experts_small (two
 * kernels, no host synchronisation) instead of permute + per-expert GEMMs + unpermute.
 * Why 64: an estimate for Lite (E 64, K 6, fp32 weights) on an H100, not measured yet.
 * One expert's three matrices are 3 x 1408 x 2048 x 4 B = 34.6 MB, ~10 us at 3.35 TB/s.
 * The small path reads them once per slot: ~10 us x N*K. The dispatched path reads them
 * once per distinct expert (u = 64 (1 - (63/64)^(N*K)) expected), but first downloads the
 * offsets (a sync that drains the GPU queue) and then issues ~4 launches per expert at
 * ~4-5 us of host time each, which the idle GPU waits on: ~18 us x u. At N*K = 6 (batch 1)
 * ~60 us vs ~105 us + the sync; at 64 (u ~ 41) ~640 vs ~730 us; at 96 (u ~ 50) ~960 vs
 * ~900 us: the small path wins up to about 64-96 slots, i.e. batch <= 10 at top-6.
 * A backend whose kernels read each selected expert once per call (the CUDA one unless
 * CRUCIBLE_CUDA_MOE_SMALL=slots) raises it through Ops.moe_experts_small_slots.
 * CRUCIBLE_MOE_SMALL_SLOTS=n overrides both (0: always dispatch; a value that is not a
 * non-negative integer is ignored), for benchmarks and for tests comparing the paths. */
enum { MOE_SMALL_SLOTS = 64 };
static long moe_small_slots(const Ops *o) {
    long def = MOE_SMALL_SLOTS;
    if (o->moe_experts_small_slots) {
        long b = o->moe_experts_small_slots();
        if (b > 0) def = b;
    }
    const char *v = getenv("CRUCIBLE_MOE_SMALL_SLOTS");
    if (!v || !*v) return def;
    char *end;
    long n = strtol(v, &end, 10);
    return *end || n < 0 ? def : n;
}

long model_moe_small_slots(const Model *m) { return moe_small_slots(m->ops); }

int model_ffn_infer_is_async(const Model *m, int N) {
    const ModelConfig *c = &m->cfg;
    int moe = 0;
    for (int l = 0; l < c->num_hidden_layers; l++) moe |= model_layer_is_moe(c, l);
    return !moe || (m->ops->moe_experts_small && (long)N * c->num_experts_per_tok <= moe_small_slots(m->ops));
}

void model_ffn_forward_infer(Model *m, int layer, const float *x, int N, float *out) {
    model_ffn_forward_infer_ex(m, layer, x, N, out, NULL);
}

void model_ffn_forward_infer_ex(Model *m, int layer, const float *x, int N, float *out, int32_t *experts_out) {
    const Ops *o = m->ops;
    const ModelConfig *c = &m->cfg;
    InferScratch *s = &m->state->inf;
    const LayerWeights *w = &m->state->w.layers[layer];
    int D = c->hidden_size;
    CR_CHECK(layer >= 0 && layer < c->num_hidden_layers);
    if (N <= 0) return;
    if (N > s->cap) {
        Carver cv = {NULL, 0};
        infer_carve(m, &cv, N);
        o->free(s->arena);
        s->arena = o->alloc(cv.off);
        cv.base = s->arena;
        cv.off = 0;
        infer_carve(m, &cv, N);
        s->cap = N;
        free(s->offsets_host);
        s->offsets_host = cr_calloc((size_t)c->n_routed_experts + 1, sizeof(int32_t));
    }
    if (!model_layer_is_moe(c, layer)) {
        mlp_forward(o, x, N, D, c->intermediate_size, w->mlp_gate, w->mlp_up, w->mlp_down, s->g, s->u, s->hm, out,
                    0.0f);
        return;
    }
    int E = c->n_routed_experts, K = c->num_experts_per_tok, Ie = c->moe_intermediate_size;
    OpsMoeRoute rc = route_cfg(c);
    o->gemm(0, 1, N, E, D, 1.0f, x, D, w->router, D, 0.0f, s->logits, E);
    o->moe_route_forward(s->probs, s->idx, s->w, s->logits, N, &rc);
    if (experts_out) o->copy(experts_out, s->idx, sizeof(int32_t) * (size_t)N * K);
    if (o->moe_experts_small && (long)N * K <= moe_small_slots(o)) {
        o->moe_experts_small(out, s->Hm, x, s->idx, s->w, w->exp_gate, w->exp_up, w->exp_down, N, D, Ie, K);
    } else {
        o->moe_permute(s->Xp, s->ros, s->sor, s->offsets, x, s->idx, N, D, E, K);
        o->download(s->offsets_host, s->offsets, sizeof(int32_t) * (size_t)(E + 1));
        o->moe_experts_forward(s->Yp, s->G, s->U, s->Hm, s->Xp, w->exp_gate, w->exp_up, w->exp_down, s->offsets_host,
                               E, D, Ie);
        o->moe_unpermute(out, s->Yp, s->w, s->ros, N, D, K);
    }
    int Is = Ie * c->n_shared_experts;
    if (Is > 0) mlp_forward(o, x, N, D, Is, w->sh_gate, w->sh_up, w->sh_down, s->g, s->u, s->hm, out, 1.0f);
}
