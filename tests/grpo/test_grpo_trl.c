/* tests/grpo/test_grpo_trl.c — parity with TRL's GRPOTrainer on committed fixtures
 * (tests/fixtures/grpo/trl_{loss,advantages}.json, written by tests/reference/make_grpo_fixtures.py, which
 * calls TRL's own _compute_loss and advantage code; see that script's docstring).
 * Loss values and dloss/dlogp (torch autograd) must match to 1e-5 relative. */
#include "tests/test.h"
#include "core/alloc.h"
#include "core/file.h"
#include "grpo/advantage.h"
#include "grpo/loss.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static cJSON *load(const char *path) {
    CrError e;
    size_t n;
    char *s = cr_read_file(path, &n, &e);
    if (!s) { fprintf(stderr, "    %s\n", e.msg); return NULL; }
    cJSON *j = cJSON_ParseWithLength(s, n);
    free(s);
    return j;
}

/* float array from a JSON array (null -> NaN); NULL when the item is null/absent. */
static float *farr(const cJSON *o, const char *key, int *n) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a)) return NULL;
    int k = cJSON_GetArraySize(a), i = 0;
    float *v = cr_malloc((size_t)(k + 1) * sizeof *v);
    const cJSON *x;
    cJSON_ArrayForEach(x, a) v[i++] = cJSON_IsNumber(x) ? (float)x->valuedouble : NAN;
    if (n) *n = k;
    return v;
}

static double num(const cJSON *o, const char *key) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, key);
    CR_CHECK(cJSON_IsNumber(x));
    return x->valuedouble;
}

TEST(grpo_loss_matches_trl_fixtures) {
    cJSON *root = load("tests/fixtures/grpo/trl_loss.json");
    CHECK(root != NULL);
    if (!root) return;
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases"), *cs;
    int ncase = 0, seen_type[4] = {0};
    cJSON_ArrayForEach(cs, cases) {
        GrpoLossConfig c = grpo_loss_config_default();
        CrError e;
        const char *lt = cJSON_GetObjectItemCaseSensitive(cs, "loss_type")->valuestring;
        CHECK(grpo_loss_type_parse(lt, &c.type, &e) == 0);
        seen_type[c.type]++;
        c.eps_low = num(cs, "eps_low"); c.eps_high = num(cs, "eps_high"); c.beta = num(cs, "beta");
        c.dual_clip = (int)num(cs, "dual_clip"); c.dual_clip_c = num(cs, "dual_clip_c");
        c.tis = (int)num(cs, "tis"); c.tis_cap = num(cs, "tis_cap");
        const cJSON *micro = cJSON_GetObjectItemCaseSensitive(cs, "micro"), *m;
        /* step-global normalisers */
        GrpoNorm n = {.n_completions = 0, .n_tokens = 0, .max_new_tokens = (long)num(cs, "max_new_tokens"),
                      .n_micro = cJSON_GetArraySize(micro)};
        cJSON_ArrayForEach(m, micro) {
            int nt;
            float *mask = farr(m, "mask", &nt);
            for (int t = 0; t < nt; t++) n.n_tokens += mask[t];
            n.n_completions += (long)num(m, "n_comp");
            free(mask);
        }
        double loss = 0;
        cJSON_ArrayForEach(m, micro) {
            int nt, nc;
            float *adv = farr(m, "adv", &nc), *mask = farr(m, "mask", &nt), *lp = farr(m, "logp", NULL);
            float *old = farr(m, "logp_old", NULL), *ref = farr(m, "logp_ref", NULL), *smp = farr(m, "logp_sampler", NULL);
            float *want = farr(m, "trl_dlogp", NULL), *compf = farr(m, "comp", NULL);
            int *comp = cr_malloc((size_t)nt * sizeof *comp);
            for (int t = 0; t < nt; t++) comp[t] = (int)compf[t];
            GrpoMicroBatch mb = {.n_tokens = nt, .n_comp = nc, .comp = comp, .adv = adv, .logp = lp, .logp_old = old,
                                 .logp_ref = c.beta > 0 ? ref : NULL, .logp_sampler = c.tis ? smp : NULL, .mask = mask};
            float *g = cr_malloc((size_t)nt * sizeof *g);
            GrpoLossStats st;
            CHECKF(grpo_loss(&c, &n, &mb, g, &st, &e) == 0, "%s", e.msg);
            loss += st.loss;
            double gmax = 0;
            for (int t = 0; t < nt; t++) gmax = fmax(gmax, fabs(want[t]));
            for (int t = 0; t < nt; t++)
                CHECKF(fabs(g[t] - want[t]) <= 1e-5 * fabs(want[t]) + 1e-7 * gmax,
                       "case %d (%s dual=%d beta=%g tis=%d mu1=%d) token %d: dlogp %.9g, TRL %.9g", ncase, lt,
                       c.dual_clip, c.beta, c.tis, old == NULL, t, g[t], want[t]);
            free(adv); free(mask); free(lp); free(old); free(ref); free(smp); free(want); free(compf); free(comp); free(g);
        }
        double tl = num(cs, "trl_loss");
        CHECKF(fabs(loss - tl) <= 1e-5 * fabs(tl) + 1e-9, "case %d (%s dual=%d beta=%g tis=%d): loss %.9g, TRL %.9g",
               ncase, lt, c.dual_clip, c.beta, c.tis, loss, tl);
        ncase++;
        if (FAILED()) break;
    }
    CHECK(ncase == 36);
    for (int k = 0; k < 4; k++) CHECK(seen_type[k] == 9);
    cJSON_Delete(root);
}

TEST(grpo_advantages_match_trl_fixtures) {
    cJSON *root = load("tests/fixtures/grpo/trl_advantages.json");
    CHECK(root != NULL);
    if (!root) return;
    const cJSON *cases = cJSON_GetObjectItemCaseSensitive(root, "cases"), *cs;
    int ncase = 0;
    cJSON_ArrayForEach(cs, cases) {
        GrpoScale scale;
        GrpoCombine comb;
        CrError e;
        CHECK(grpo_scale_parse(cJSON_GetObjectItemCaseSensitive(cs, "scale")->valuestring, &scale, &e) == 0);
        CHECK(grpo_combine_parse(cJSON_GetObjectItemCaseSensitive(cs, "combine")->valuestring, &comb, &e) == 0);
        int ng = (int)num(cs, "n_groups"), G = (int)num(cs, "G"), K = (int)num(cs, "K");
        float *r = farr(cs, "rewards", NULL), *w = farr(cs, "weights", NULL), *want = farr(cs, "trl_advantages", NULL);
        float *a = cr_malloc((size_t)ng * G * sizeof *a);
        CHECKF(grpo_advantages(r, ng, G, K, w, scale, comb, a, NULL, &e) == 0, "%s", e.msg);
        for (int i = 0; i < ng * G; i++)
            CHECKF(fabs(a[i] - want[i]) <= 1e-5 * fabs(want[i]) + 1e-6, "case %d completion %d: A %.9g, TRL %.9g",
                   ncase, i, a[i], want[i]);
        free(r); free(w); free(want); free(a);
        ncase++;
    }
    CHECK(ncase == 8);
    cJSON_Delete(root);
}
