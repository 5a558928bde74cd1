/* tests/cuda/test_model_cuda.c — the whole model (tiny DeepseekV2 configs: MLA with and
 * without q-LoRA, YaRN, dense first layer, MoE with shared experts, greedy and
 * group-limited routing, sequence aux loss) run on the CUDA backend against the same
 * model on the CPU backend: same parameters (model_init_random with one seed), a packed
 * batch of three sequences with fresh random tokens, forward log-probs and aux loss,
 * then every parameter gradient after model_backward. Limits (fp32 table): log-probs
 * and aux loss 1e-5, gradients 1e-5 over all parameters together and 1e-4 per tensor. */
#include "tests/test.h"

#ifdef CRUCIBLE_CUDA

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/rng.h"
#include "model/cuda/ops_cuda.h"
#include "model/model.h"
#include "model/ops.h"
#include "tests/model/model_tiny.h"

static void model_case(TestCtx *t_, TinyOpts o, CrRng *rng, const char *label) {
    ModelConfig cfg;
    CHECK(tiny_config(&cfg, o) == 0);
    CrError e;
    Model *mc = model_create(&cfg, &e), *mg = model_create_ops(&cfg, ops_cuda(), &e);
    CHECK(mc && mg);
    if (!mc || !mg) return;
    uint64_t seed = cr_rng_u64(rng);
    model_init_random(mc, seed);
    model_init_random(mg, seed);
    int lens[3] = {1 + (int)(cr_rng_u64(rng) % 30), 1 + (int)(cr_rng_u64(rng) % 30), 1 + (int)(cr_rng_u64(rng) % 30)};
    int N = lens[0] + lens[1] + lens[2];
    int32_t cu[4] = {0, lens[0], lens[0] + lens[1], N}, *tok = malloc(4 * (size_t)N), *tgt = malloc(4 * (size_t)N);
    for (int i = 0; i < N; i++) {
        tok[i] = (int32_t)(cr_rng_u64(rng) % (uint64_t)cfg.vocab_size);
        tgt[i] = cr_rng_u64(rng) % 5 == 0 ? -1 : (int32_t)(cr_rng_u64(rng) % (uint64_t)cfg.vocab_size);
    }
    Batch b = {.n_tokens = N, .n_seqs = 3, .tokens = tok, .targets = tgt, .cu_seqlens = cu};
    float *lc = malloc(4 * (size_t)N), *lg = malloc(4 * (size_t)N), auxc = 0, auxg = 0;
    for (int i = 0; i < N; i++) lg[i] = NAN;
    CHECK(model_forward(mc, &b, lc, &auxc, &e) == 0);
    CHECK(model_forward(mg, &b, lg, &auxg, &e) == 0);
    double el = test_rel_err(lg, lc, (size_t)N);
    CHECKF(el <= 1e-5, "%s: forward log-probs normalised error %.3g", label, el);
    CHECK_NEAR(auxg, auxc, 1e-5);
    float *dl = malloc(4 * (size_t)N);
    for (int i = 0; i < N; i++) dl[i] = (float)cr_rng_normal(rng);
    model_zero_grads(mc);
    model_zero_grads(mg);
    CHECK(model_backward(mc, &b, dl, 1.0f, &e) == 0);
    CHECK(model_backward(mg, &b, dl, 1.0f, &e) == 0);
    float *gg = malloc(sizeof(float) * mg->n_params);
    mg->ops->download(gg, mg->grads, sizeof(float) * mg->n_params);
    double eg = test_rel_err(gg, mc->grads, mc->n_params), worst = 0;
    const char *wname = "";
    for (int i = 0; i < mc->n_tensors; i++) {
        const ParamTensor *pt = &mc->tensors[i];
        double et = test_rel_err(gg + pt->offset, mc->grads + pt->offset, pt->numel);
        if (et > worst) worst = et, wname = pt->name;
        CHECKF(et <= 1e-4, "%s: gradient of %s normalised error %.3g", label, pt->name, et);
    }
    CHECKF(eg <= 1e-5, "%s: all gradients normalised error %.3g", label, eg);
    fprintf(stderr, "    %-34s N=%2d logp err %.3g, aux %.9g vs %.9g, grads err %.3g (worst %.3g: %s)\n", label, N,
            el, auxg, auxc, eg, worst, wname);
    model_free(mc);
    model_free(mg);
    free(tok), free(tgt), free(lc), free(lg), free(dl), free(gg);
}

static void body_cuda_model_matches_cpu(TestCtx *t_) {
    if (crucible_cuda_device_count() <= 0) SKIP("no CUDA device visible: whole-model CUDA test not run");
    uint64_t seed = test_random_seed("cuda_model_matches_cpu");
    CrRng rng;
    cr_rng_init(&rng, seed, 0x40DE1, 0);
    model_case(t_, (TinyOpts){.aux_alpha = 0.01f, .n_shared = 1}, &rng, "greedy, shared, aux");
    model_case(t_, (TinyOpts){.q_lora = 12, .group_limited = 1, .yarn = 1, .norm_topk = 1, .seq_aux = 1,
                              .aux_alpha = 0.003f, .n_shared = 2},
               &rng, "q-LoRA, group-limited, YaRN, seq aux");
    model_case(t_, (TinyOpts){.tie = 1, .routed_scale = 2.5f, .n_shared = 0}, &rng, "tied, routed scale, no shared");
}
#endif

#ifdef CRUCIBLE_CUDA
#define CUDA_BODY(name) body_##name(t_)
#else
#define CUDA_BODY(name) SKIP("CUDA backend not built (no nvcc at build time, or NO_CUDA=1): not run")
#endif
TEST(cuda_model_matches_cpu) { CUDA_BODY(cuda_model_matches_cpu); }
