/* tests/rollout/test_decode_transfers.c — host<->backend transfers of one decode step on
 * the Ops path. On CUDA every upload and download is a cudaMemcpy from pageable memory:
 * the host waits for the GPU queue to drain, so their count per step is a cost of its
 * own (bench/decode_optrace prints the whole per-step op table). The engine must do, per
 * decode step with a device sampler: one upload of the step's draws, one upload of the
 * forward's int32 input (tokens, positions, logit rows, block tables), one download of
 * the sampled tokens and log-probs, and one download of the chosen experts when they are
 * recorded — whatever the batch, the context length or the number of layers. Counted on
 * a copy of the CPU table with a stand-in sample_rows (greedy, as the host sampler). */
#include "tests/test.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "model/ops.h"
#include "rollout/rollout.h"
#include "rollout/sampler.h"
#include "tests/rollout/ref_model.h"

static const char k_cfg[] =
    "{\"model_type\":\"deepseek_v2\",\"vocab_size\":96,\"hidden_size\":32,\"num_hidden_layers\":3,"
    "\"num_attention_heads\":2,\"q_lora_rank\":null,\"kv_lora_rank\":16,\"qk_nope_head_dim\":8,"
    "\"qk_rope_head_dim\":4,\"v_head_dim\":8,\"intermediate_size\":48,\"moe_intermediate_size\":16,"
    "\"n_routed_experts\":4,\"n_shared_experts\":1,\"num_experts_per_tok\":2,\"first_k_dense_replace\":1,"
    "\"topk_method\":\"greedy\",\"max_position_embeddings\":256,\"rope_scaling\":null,"
    "\"bos_token_id\":0,\"eos_token_id\":1,\"initializer_range\":0.02}";

enum { MAX_STEPS = 64 };

/* This test process's counts (the runner forks one process per test). */
static struct {
    long uploads, downloads;             /* since the last sample_rows */
    int n_win;
    long up[MAX_STEPS], down[MAX_STEPS]; /* per sample_rows call: transfers before it */
    int rows[MAX_STEPS];
} g_tr;

static void tr_upload(void *dst, const void *src, size_t bytes) {
    g_tr.uploads++;
    ops_cpu()->upload(dst, src, bytes);
}
static void tr_download(void *dst, const void *src, size_t bytes) {
    g_tr.downloads++;
    ops_cpu()->download(dst, src, bytes);
}
/* greedy: the host sampler at temperature 0 (lowest-id argmax) */
static void tr_sample_rows(int32_t *tokens, float *logp_sampled, float *logp_model, const float *logits, int n,
                           int V, const OpsSampler *cfg, const double *uniforms) {
    (void)cfg, (void)uniforms;
    static const SamplerCfg greedy = {0};
    for (int i = 0; i < n; i++)
        tokens[i] = sampler_sample(&greedy, logits + (size_t)i * V, V, NULL, NULL, &logp_sampled[i], &logp_model[i]);
    if (g_tr.n_win < MAX_STEPS) {
        g_tr.up[g_tr.n_win] = g_tr.uploads;
        g_tr.down[g_tr.n_win] = g_tr.downloads;
        g_tr.rows[g_tr.n_win++] = n;
    }
    g_tr.uploads = g_tr.downloads = 0;
}

/* n prompts of the given lengths, one sample each, `gen` greedy tokens: the transfers
 * between consecutive decode-step sampler calls (the window holds the previous step's
 * sampler download, this step's uploads and the experts download). */
static void transfers_case(TestCtx *t_, const int *lens, int n, int gen, int record) {
    Model *m = ref_model_new(k_cfg, 61, 0.35f);
    static Ops table;
    table = *ops_cpu();
    table.name = "cpu+transfer-count";
    table.upload = tr_upload;
    table.download = tr_download;
    table.sample_rows = tr_sample_rows;
    CrError e;
    Model *mt = model_create_ops(&m->cfg, &table, &e);
    CHECKF(mt != NULL, "%s", e.msg);
    if (!mt) return;
    memcpy(mt->params, m->params, sizeof(float) * m->n_params);
    int32_t *pr[4];
    CrRng g;
    cr_rng_init(&g, 61, 3, (uint64_t)n);
    for (int p = 0; p < n; p++) {
        pr[p] = malloc(sizeof(int32_t) * lens[p]);
        for (int k = 0; k < lens[p]; k++) pr[p][k] = 2 + (int32_t)(cr_rng_u64(&g) % 90);
    }
    SampleParams sp = {0};
    sp.max_new_tokens = gen;
    sp.ignore_eos = 1;
    sp.record_experts = record;
    Sample *out = calloc((size_t)n, sizeof *out);
    RolloutEngine *r = rollout_create(mt, NULL, 1024, &e);
    CHECKF(r != NULL, "%s", e.msg);
    memset(&g_tr, 0, sizeof g_tr);
    if (r) CHECKF(rollout_generate(r, (const int32_t *const *)pr, lens, n, 1, &sp, 0, out, &e) == 0, "%s", e.msg);
    /* admission samples each prompt's first token (n calls of one row), then gen - 1
     * decode steps of n rows */
    CHECKF(g_tr.n_win == n + gen - 1, "%d sampler calls, expected %d", g_tr.n_win, n + gen - 1);
    int checked = 0;
    for (int w = n + 1; w < g_tr.n_win; w++) {  /* steady steps: the previous one decoded too */
        CHECKF(g_tr.rows[w] == n, "step window %d sampled %d rows, expected %d", w, g_tr.rows[w], n);
        CHECKF(g_tr.up[w] == 2, "decode step %d: %ld uploads, expected 2 (draws, forward input)", w - n,
               g_tr.up[w]);
        CHECKF(g_tr.down[w] == 1 + record, "decode step %d: %ld downloads, expected %d (sampler%s)", w - n,
               g_tr.down[w], 1 + record, record ? ", experts" : "");
        checked++;
    }
    CHECKF(checked == gen - 2, "%d steady decode steps checked, expected %d", checked, gen - 2);
    for (int p = 0; p < n; p++) {
        CHECKF(out[p].n_tokens == gen, "sample %d: %d tokens, expected %d", p, out[p].n_tokens, gen);
        sample_free(&out[p]);
        free(pr[p]);
    }
    free(out);
    rollout_free(r);
    model_free(mt);
    ref_model_free(m);
}

TEST(rollout_ops_decode_step_transfers) {
    int one[1] = {7}, three[3] = {3, 20, 45};
    transfers_case(t_, one, 1, 6, 0);
    transfers_case(t_, one, 1, 6, 1);
    /* longer contexts (crossing cache blocks of 16) and more rows: the same counts */
    transfers_case(t_, three, 3, 40, 1);
}
