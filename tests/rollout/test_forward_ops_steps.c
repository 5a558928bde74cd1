/* tests/rollout/test_forward_ops_steps.c — recorded decode steps (Ops.step_*, forward_ops.h)
 * on a CPU backend that records as CUDA stream capture does: between step_record_begin
 * and step_record_end the ops of a decode step are stored with their arguments and NOT
 * run; step_launch replays them in order on whatever the buffers hold then; every
 * alloc/free moves an epoch and a step recorded at another epoch is refused (stale), as
 * model/cuda/graph.cu does. An op outside the recorder's list runs at once even while
 * recording (wrong on purpose: the comparison then fails). On it the rollout engine must
 * give the same tokens and log-probs, bit for bit, as the same backend with recording off
 * (its block tables unpadded) — greedy and sampled, several prompts and lengths, experts
 * recorded — and must actually replay steps. Also the fallbacks: a backend that refuses
 * to record, one whose recordings are unusable, one whose steps are always stale: same
 * samples, nothing replayed, a failing shape retried a bounded number of times; and a
 * one-off failed recording, retried after 8 direct calls, replaying after. The CUDA
 * graphs themselves (model/cuda/graph.cu) are checked on a GPU by
 * cuda_rollout_graphs_match_direct (tests/cuda/test_rollout_cuda.c). */
#include "tests/test.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/ops.h"
#include "rollout/rollout.h"
#include "tests/rollout/ref_model.h"

static const char k_cfg[] =
    "{\"model_type\":\"deepseek_v2\",\"vocab_size\":96,\"hidden_size\":32,\"num_hidden_layers\":3,"
    "\"num_attention_heads\":2,\"q_lora_rank\":8,\"kv_lora_rank\":16,\"qk_nope_head_dim\":8,"
    "\"qk_rope_head_dim\":4,\"v_head_dim\":8,\"intermediate_size\":48,\"moe_intermediate_size\":16,"
    "\"n_routed_experts\":4,\"n_shared_experts\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,"
    "\"topk_method\":\"greedy\",\"max_position_embeddings\":2048,\"rope_scaling\":null,"
    "\"bos_token_id\":0,\"eos_token_id\":1,\"initializer_range\":0.02}";

enum { OP_EMB, OP_NORM, OP_GEMM, OP_GEMMB, OP_COPY2D, OP_ROPE, OP_SCATTER, OP_MLA, OP_ADD, OP_ROUTE, OP_SMALL,
       OP_SWIGLU, OP_COPY, OP_ZERO };

typedef struct Rec {
    int op;
    const void *p[9];
    int i[12];
    float f[3];
    long long ll[3];
    size_t z;
    OpsMoeRoute rt;
} Rec;

typedef struct Step {
    Rec *r;
    int n;
    unsigned long epoch;
} Step;

/* The fake backend's state (one test process, one thread). mode: 0 records, 1 refuses to
 * record, 2 records but step_record_end gives NULL, 3 records but every launch is stale,
 * 4 gives NULL for the first recording only (a one-off failure: memory grew during it). */
static struct {
    int enabled, mode, recording, ends;
    unsigned long epoch;
    Rec *r;
    int n, cap;
    long begins, records, launches, frees;
} g;

static const Ops *cpu(void) { return ops_cpu(); }
static Rec *rec(int op) {
    if (g.n == g.cap) {
        g.cap = g.cap ? 2 * g.cap : 256;
        g.r = realloc(g.r, sizeof *g.r * (size_t)g.cap);
        if (!g.r) abort();
    }
    Rec *x = &g.r[g.n++];
    memset(x, 0, sizeof *x);
    x->op = op;
    return x;
}

static void *f_alloc(size_t b) {
    g.epoch++;
    return cpu()->alloc(b);
}
static void f_free(void *p) {
    if (p) g.epoch++;
    cpu()->free(p);
}
static void f_emb(float *out, const float *t, const int32_t *tok, int N, int D) {
    if (!g.recording) return cpu()->embedding_forward(out, t, tok, N, D);
    Rec *x = rec(OP_EMB);
    x->p[0] = out, x->p[1] = t, x->p[2] = tok, x->i[0] = N, x->i[1] = D;
}
static void f_norm(float *out, int ldo, float *rstd, const float *xx, int ldx, const float *w, int N, int D, float eps) {
    if (!g.recording) return cpu()->rmsnorm_forward(out, ldo, rstd, xx, ldx, w, N, D, eps);
    Rec *x = rec(OP_NORM);
    x->p[0] = out, x->p[1] = rstd, x->p[2] = xx, x->p[3] = w;
    x->i[0] = ldo, x->i[1] = ldx, x->i[2] = N, x->i[3] = D, x->f[0] = eps;
}
static void f_gemm(int ta, int tb, int M, int N, int K, float al, const float *A, int lda, const float *B, int ldb,
                   float be, float *C, int ldc) {
    if (!g.recording) return cpu()->gemm(ta, tb, M, N, K, al, A, lda, B, ldb, be, C, ldc);
    Rec *x = rec(OP_GEMM);
    x->p[0] = A, x->p[1] = B, x->p[2] = C;
    x->i[0] = ta, x->i[1] = tb, x->i[2] = M, x->i[3] = N, x->i[4] = K, x->i[5] = lda, x->i[6] = ldb, x->i[7] = ldc;
    x->f[0] = al, x->f[1] = be;
}
static void f_gemmb(int ta, int tb, int M, int N, int K, float al, const float *A, int lda, long long sA,
                    const float *B, int ldb, long long sB, float be, float *C, int ldc, long long sC, int batch) {
    if (!g.recording) return cpu()->gemm_batched(ta, tb, M, N, K, al, A, lda, sA, B, ldb, sB, be, C, ldc, sC, batch);
    Rec *x = rec(OP_GEMMB);
    x->p[0] = A, x->p[1] = B, x->p[2] = C;
    x->i[0] = ta, x->i[1] = tb, x->i[2] = M, x->i[3] = N, x->i[4] = K, x->i[5] = lda, x->i[6] = ldb, x->i[7] = ldc;
    x->i[8] = batch, x->ll[0] = sA, x->ll[1] = sB, x->ll[2] = sC, x->f[0] = al, x->f[1] = be;
}
static void f_copy2d(float *d, int ldd, const float *s, int lds, int rows, int cols) {
    if (!g.recording) return cpu()->copy2d(d, ldd, s, lds, rows, cols);
    Rec *x = rec(OP_COPY2D);
    x->p[0] = d, x->p[1] = s, x->i[0] = ldd, x->i[1] = lds, x->i[2] = rows, x->i[3] = cols;
}
static void f_rope(float *xx, int ld, int hs, int nh, int N, int dr, const int32_t *pos, const float *inv, float cs) {
    if (!g.recording) return cpu()->rope_forward(xx, ld, hs, nh, N, dr, pos, inv, cs);
    Rec *x = rec(OP_ROPE);
    x->p[0] = xx, x->p[1] = pos, x->p[2] = inv;
    x->i[0] = ld, x->i[1] = hs, x->i[2] = nh, x->i[3] = N, x->i[4] = dr, x->f[0] = cs;
}
static void f_scatter(float *cache, const int32_t *bt, int maxb, int L, int l, int btok, int rw, const float *src,
                      const int32_t *pos, int n) {
    if (!g.recording) return cpu()->mla_cache_scatter(cache, bt, maxb, L, l, btok, rw, src, pos, n);
    Rec *x = rec(OP_SCATTER);
    x->p[0] = cache, x->p[1] = bt, x->p[2] = src, x->p[3] = pos;
    x->i[0] = maxb, x->i[1] = L, x->i[2] = l, x->i[3] = btok, x->i[4] = rw, x->i[5] = n;
}
static void f_mla(float *out, const float *qa, const float *cache, const int32_t *bt, int maxb, int L, int l,
                  int btok, const int32_t *pos, int n, int H, int r, int dr, float scale) {
    if (!g.recording) return cpu()->mla_decode_attention(out, qa, cache, bt, maxb, L, l, btok, pos, n, H, r, dr, scale);
    Rec *x = rec(OP_MLA);
    x->p[0] = out, x->p[1] = qa, x->p[2] = cache, x->p[3] = bt, x->p[4] = pos;
    x->i[0] = maxb, x->i[1] = L, x->i[2] = l, x->i[3] = btok, x->i[4] = n, x->i[5] = H, x->i[6] = r, x->i[7] = dr;
    x->f[0] = scale;
}
static void f_add(float *y, const float *xx, size_t n) {
    if (!g.recording) return cpu()->add(y, xx, n);
    Rec *x = rec(OP_ADD);
    x->p[0] = y, x->p[1] = xx, x->z = n;
}
static void f_route(float *probs, int32_t *idx, float *w, const float *logits, int N, const OpsMoeRoute *rt) {
    if (!g.recording) return cpu()->moe_route_forward(probs, idx, w, logits, N, rt);
    Rec *x = rec(OP_ROUTE);  /* the settings by value, as a kernel argument */
    x->p[0] = probs, x->p[1] = idx, x->p[2] = w, x->p[3] = logits, x->i[0] = N, x->rt = *rt;
}
static void f_small(float *y, float *h, const float *xx, const int32_t *idx, const float *w, const float *Wg,
                    const float *Wu, const float *Wd, int N, int D, int I, int K) {
    if (!g.recording) return cpu()->moe_experts_small(y, h, xx, idx, w, Wg, Wu, Wd, N, D, I, K);
    Rec *x = rec(OP_SMALL);
    x->p[0] = y, x->p[1] = h, x->p[2] = xx, x->p[3] = idx, x->p[4] = w, x->p[5] = Wg, x->p[6] = Wu, x->p[7] = Wd;
    x->i[0] = N, x->i[1] = D, x->i[2] = I, x->i[3] = K;
}
static void f_swiglu(float *h, const float *a, const float *b, size_t n) {
    if (!g.recording) return cpu()->swiglu_forward(h, a, b, n);
    Rec *x = rec(OP_SWIGLU);
    x->p[0] = h, x->p[1] = a, x->p[2] = b, x->z = n;
}
static void f_copy(void *d, const void *s, size_t n) {
    if (!g.recording) return cpu()->copy(d, s, n);
    Rec *x = rec(OP_COPY);
    x->p[0] = d, x->p[1] = s, x->z = n;
}
static void f_zero(void *d, size_t n) {
    if (!g.recording) return cpu()->zero(d, n);
    Rec *x = rec(OP_ZERO);
    x->p[0] = d, x->z = n;
}

#define P(k, T) ((T)(uintptr_t)x->p[k])
static void replay(const Rec *x) {
    const Ops *c = cpu();
    switch (x->op) {
    case OP_EMB: c->embedding_forward(P(0, float *), P(1, const float *), P(2, const int32_t *), x->i[0], x->i[1]); break;
    case OP_NORM:
        c->rmsnorm_forward(P(0, float *), x->i[0], P(1, float *), P(2, const float *), x->i[1], P(3, const float *),
                           x->i[2], x->i[3], x->f[0]);
        break;
    case OP_GEMM:
        c->gemm(x->i[0], x->i[1], x->i[2], x->i[3], x->i[4], x->f[0], P(0, const float *), x->i[5],
                P(1, const float *), x->i[6], x->f[1], P(2, float *), x->i[7]);
        break;
    case OP_GEMMB:
        c->gemm_batched(x->i[0], x->i[1], x->i[2], x->i[3], x->i[4], x->f[0], P(0, const float *), x->i[5], x->ll[0],
                        P(1, const float *), x->i[6], x->ll[1], x->f[1], P(2, float *), x->i[7], x->ll[2], x->i[8]);
        break;
    case OP_COPY2D: c->copy2d(P(0, float *), x->i[0], P(1, const float *), x->i[1], x->i[2], x->i[3]); break;
    case OP_ROPE:
        c->rope_forward(P(0, float *), x->i[0], x->i[1], x->i[2], x->i[3], x->i[4], P(1, const int32_t *),
                        P(2, const float *), x->f[0]);
        break;
    case OP_SCATTER:
        c->mla_cache_scatter(P(0, float *), P(1, const int32_t *), x->i[0], x->i[1], x->i[2], x->i[3], x->i[4],
                             P(2, const float *), P(3, const int32_t *), x->i[5]);
        break;
    case OP_MLA:
        c->mla_decode_attention(P(0, float *), P(1, const float *), P(2, const float *), P(3, const int32_t *),
                                x->i[0], x->i[1], x->i[2], x->i[3], P(4, const int32_t *), x->i[4], x->i[5], x->i[6],
                                x->i[7], x->f[0]);
        break;
    case OP_ADD: c->add(P(0, float *), P(1, const float *), x->z); break;
    case OP_ROUTE:
        c->moe_route_forward(P(0, float *), P(1, int32_t *), P(2, float *), P(3, const float *), x->i[0], &x->rt);
        break;
    case OP_SMALL:
        c->moe_experts_small(P(0, float *), P(1, float *), P(2, const float *), P(3, const int32_t *),
                             P(4, const float *), P(5, const float *), P(6, const float *), P(7, const float *),
                             x->i[0], x->i[1], x->i[2], x->i[3]);
        break;
    case OP_SWIGLU: c->swiglu_forward(P(0, float *), P(1, const float *), P(2, const float *), x->z); break;
    case OP_COPY: c->copy(P(0, void *), P(1, const void *), x->z); break;
    case OP_ZERO: c->zero(P(0, void *), x->z); break;
    default: abort();
    }
}
#undef P

static int f_enabled(void) { return g.enabled; }
static int f_begin(void) {
    g.begins++;
    if (g.mode == 1 || g.recording) return -1;
    g.recording = 1;
    g.n = 0;
    return 0;
}
static void *f_end(void) {
    g.recording = 0;
    if (g.mode == 2 || (g.mode == 4 && g.ends++ == 0)) return NULL;
    Step *s = malloc(sizeof *s);
    s->r = malloc(sizeof *s->r * (size_t)(g.n ? g.n : 1));
    memcpy(s->r, g.r, sizeof *s->r * (size_t)g.n);
    s->n = g.n;
    s->epoch = g.epoch;
    g.records++;
    return s;
}
static int f_launch(void *p) {
    Step *s = p;
    if (g.mode == 3 || s->epoch != g.epoch) return -1;
    for (int k = 0; k < s->n; k++) replay(&s->r[k]);
    g.launches++;
    return 0;
}
static void f_sfree(void *p) {
    Step *s = p;
    if (!s) return;
    g.frees++;
    free(s->r);
    free(s);
}

static Ops recorder_table(void) {
    Ops t = *ops_cpu();
    t.name = "cpu+recorded-steps";
    t.alloc = f_alloc, t.free = f_free;
    t.embedding_forward = f_emb, t.rmsnorm_forward = f_norm, t.gemm = f_gemm, t.gemm_batched = f_gemmb;
    t.copy2d = f_copy2d, t.rope_forward = f_rope, t.mla_cache_scatter = f_scatter, t.mla_decode_attention = f_mla;
    t.add = f_add, t.moe_route_forward = f_route, t.moe_experts_small = f_small, t.swiglu_forward = f_swiglu;
    t.copy = f_copy, t.zero = f_zero;
    t.step_enabled = f_enabled, t.step_record_begin = f_begin, t.step_record_end = f_end;
    t.step_launch = f_launch, t.step_free = f_sfree;
    return t;
}

typedef struct Run {
    Sample *out;
    int n;
    RolloutStats st;
} Run;

/* 3 prompts (2, 21 and 1000 tokens: the last crosses FORWARD_OPS_STEP_CTX = 1024
 * positions while decoding, so its padded block tables widen) x G samples, gen tokens
 * each, experts recorded, on model m (its table decides recording); sampled runs stop at
 * any of 6 token ids, so the batch shrinks as samples finish. */
static Run run(TestCtx *t_, Model *m, float temperature, int G, int gen) {
    static const int lens[3] = {2, 21, 1000};
    int32_t *pr[3];
    CrRng r;
    cr_rng_init(&r, 77, 1, 2);
    for (int p = 0; p < 3; p++) {
        pr[p] = malloc(sizeof(int32_t) * lens[p]);
        for (int k = 0; k < lens[p]; k++) pr[p][k] = 2 + (int32_t)(cr_rng_u64(&r) % 90);
    }
    SampleParams sp = {0};
    sp.temperature = temperature;
    sp.top_p = 1.0f;
    sp.max_new_tokens = gen;
    sp.ignore_eos = 1;
    static const int32_t stops[6] = {2, 3, 4, 5, 6, 7};  /* sampled: ~6 % a token, samples end apart */
    if (temperature > 0.0f) sp.stop_ids = stops, sp.n_stop_ids = 6;
    sp.record_experts = 1;
    sp.seed = 5;
    Run o = {calloc((size_t)3 * G, sizeof(Sample)), 3 * G, {0}};
    CrError e;
    RolloutEngine *eng = rollout_create(m, NULL, 8192, &e);
    CHECKF(eng != NULL, "%s", e.msg);
    if (eng) {
        CHECKF(rollout_generate(eng, (const int32_t *const *)pr, lens, 3, G, &sp, 0, o.out, &e) == 0, "%s", e.msg);
        o.st = rollout_stats(eng);
        rollout_free(eng);
    }
    for (int p = 0; p < 3; p++) free(pr[p]);
    return o;
}

static int same_samples(TestCtx *t_, const char *what, const Run *a, const Run *b) {
    int bad = 0;
    for (int i = 0; i < a->n; i++) {
        const Sample *x = &a->out[i], *y = &b->out[i];
        int ok = x->n_tokens == y->n_tokens && x->n_tokens > 0 &&
                 !memcmp(x->token_ids, y->token_ids, sizeof(int32_t) * (size_t)x->n_tokens) &&
                 !memcmp(x->logprobs, y->logprobs, sizeof(float) * (size_t)x->n_tokens) &&
                 !memcmp(x->logprobs_model, y->logprobs_model, sizeof(float) * (size_t)x->n_tokens) &&
                 x->expert_ids && y->expert_ids;
        bad += !ok;
    }
    CHECKF(bad == 0, "%s: %d of %d samples differ from the run without recorded steps", what, bad, a->n);
    return bad == 0;
}
static void free_run(Run *r) {
    for (int i = 0; i < r->n; i++) sample_free(&r->out[i]);
    free(r->out);
}

TEST(forward_ops_recorded_steps_replay_bit_exact) {
    Model *ref = ref_model_new(k_cfg, 91, 0.3f);
    static Ops table;
    table = recorder_table();
    CrError e;
    Model *m = model_create_ops(&ref->cfg, &table, &e);
    CHECKF(m != NULL, "%s", e.msg);
    if (!m) return;
    memcpy(m->params, ref->params, sizeof(float) * ref->n_params);
    static const float temps[2] = {0.0f, 1.0f};
    for (int k = 0; k < 2; k++) {
        memset(&g, 0, sizeof g);
        Run base = run(t_, m, temps[k], 2, 40);  /* recording off: direct calls, tables unpadded */
        CHECK(base.st.step_records == 0 && base.st.step_replays == 0 && g.begins == 0);
        g.enabled = 1;
        Run rec_run = run(t_, m, temps[k], 2, 40);
        same_samples(t_, temps[k] > 0 ? "sampled" : "greedy", &base, &rec_run);
        fprintf(stderr, "    T %.0f: %ld decode steps, %ld recorded, %ld replayed (backend: %ld begins, %ld launches)\n",
                temps[k], rec_run.st.decode_steps, rec_run.st.step_records, rec_run.st.step_replays, g.begins,
                g.launches);
        /* every step after the first of each shape replays (the second is recorded, then
         * run): shapes change when the 1000-token prompt's table widens and, sampled, when
         * samples stop */
        CHECKF(rec_run.st.step_records >= 2 && rec_run.st.step_replays >= rec_run.st.decode_steps / 2,
               "%ld of %ld decode steps replayed (%ld recorded)", rec_run.st.step_replays, rec_run.st.decode_steps,
               rec_run.st.step_records);
        CHECK(g.launches == rec_run.st.step_replays && g.records == rec_run.st.step_records);
        free_run(&base);
        free_run(&rec_run);
    }
    /* fallbacks: refused, unusable, always stale — the same samples, nothing replayed */
    memset(&g, 0, sizeof g);
    Run base = run(t_, m, 1.0f, 1, 24);
    static const char *const names[3] = {"refused", "unusable recording", "stale steps"};
    for (int mode = 1; mode <= 3; mode++) {
        memset(&g, 0, sizeof g);
        g.enabled = 1, g.mode = mode;
        Run x = run(t_, m, 1.0f, 1, 24);
        same_samples(t_, names[mode - 1], &base, &x);
        CHECKF(x.st.step_replays == 0 && g.launches == 0, "%s: %ld steps replayed", names[mode - 1],
               x.st.step_replays);
        CHECKF(g.begins > 0, "%s: recording never tried", names[mode - 1]);
        /* a shape whose recordings fail is retried a few times only (after 8, 16 calls) */
        if (mode >= 2) CHECKF(g.begins <= 3 * x.st.step_shapes, "%s: %ld recordings for %ld shapes (%ld steps)",
                              names[mode - 1], g.begins, x.st.step_shapes, x.st.decode_steps);
        if (mode == 3) CHECKF(g.frees == g.records, "%ld stale steps recorded, %ld freed", g.records, g.frees);
        free_run(&x);
    }
    free_run(&base);
    /* a one-off failure (greedy, 39 steps): that shape is recorded again after 8 direct
     * calls and replays; every step but the first, second and 8 retried ones of each shape */
    memset(&g, 0, sizeof g);
    base = run(t_, m, 0.0f, 2, 40);
    memset(&g, 0, sizeof g);
    g.enabled = 1, g.mode = 4;
    Run x = run(t_, m, 0.0f, 2, 40);
    same_samples(t_, "one failed recording", &base, &x);
    fprintf(stderr, "    one failed recording: %ld of %ld decode steps replayed, %ld recordings, %ld shapes\n",
            x.st.step_replays, x.st.decode_steps, (long)g.ends, x.st.step_shapes);
    CHECKF(g.ends >= 2 && x.st.step_replays >= x.st.decode_steps - 8 - 2 * x.st.step_shapes,
           "one failed recording: %ld of %ld decode steps replayed after %ld recordings", x.st.step_replays,
           x.st.decode_steps, (long)g.ends);
    free_run(&x);
    free_run(&base);
    free(g.r);
    model_free(m);
    ref_model_free(ref);
}
