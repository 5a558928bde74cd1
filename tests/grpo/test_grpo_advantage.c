/* tests/grpo/test_grpo_advantage.c — advantages, dynamic sampling, overlong shaping: hand-derived values. */
#include "tests/test.h"
#include "grpo/advantage.h"

#include <math.h>
#include <string.h>

TEST(grpo_advantage_group_scaling_by_hand) {
    /* group [1,0,0,0]: mean 1/4, Bessel std sqrt((9/16 + 3/16)/3) = 1/2 */
    float r[4] = {1, 0, 0, 0}, a[4], comb[4];
    CrError e;
    CHECK(grpo_advantages(r, 1, 4, 1, NULL, GRPO_SCALE_GROUP, GRPO_COMBINE_SUM, a, comb, &e) == 0);
    CHECK_NEAR(a[0], 0.75 / (0.5 + 1e-4), 1e-6);
    CHECK_NEAR(a[1], -0.25 / (0.5 + 1e-4), 1e-6);
    CHECK(comb[0] == 1 && comb[3] == 0);
    /* scale none: r - mean */
    CHECK(grpo_advantages(r, 1, 4, 1, NULL, GRPO_SCALE_NONE, GRPO_COMBINE_SUM, a, NULL, &e) == 0);
    CHECK_NEAR(a[0], 0.75, 1e-7);
    CHECK_NEAR(a[2], -0.25, 1e-7);
    /* two functions, weights 1 and 0.5: r = [1.5, 0, 0.5, 0] */
    float r2[8] = {1, 1, 0, 0, 0, 1, 0, 0}, w[2] = {1, 0.5f};
    CHECK(grpo_advantages(r2, 1, 4, 2, w, GRPO_SCALE_NONE, GRPO_COMBINE_SUM, a, comb, &e) == 0);
    CHECK(comb[0] == 1.5f && comb[2] == 0.5f);
    CHECK_NEAR(a[0], 1.5 - 0.5, 1e-7);
}

TEST(grpo_advantage_edge_cases) {
    CrError e;
    float a[8];
    /* group of size 1: A = 0 in every mode */
    float one[3] = {1, 0, 5};
    for (int s = 0; s < 3; s++) {
        CHECK(grpo_advantages(one, 3, 1, 1, NULL, (GrpoScale)s, GRPO_COMBINE_SUM, a, NULL, &e) == 0);
        CHECK(a[0] == 0 && a[1] == 0 && a[2] == 0);
    }
    /* all-equal rewards whose float mean is not exact (0.1): A is exactly 0, every mode */
    float eq[6] = {0.1f, 0.1f, 0.1f, 0.1f, 0.1f, 0.1f};
    for (int s = 0; s < 3; s++)
        for (int cmb = 0; cmb < 2; cmb++) {
            CHECK(grpo_advantages(eq, 2, 3, 1, NULL, (GrpoScale)s, (GrpoCombine)cmb, a, NULL, &e) == 0);
            for (int i = 0; i < 6; i++) CHECK(a[i] == 0);
        }
    /* an unscorable completion (all rewards NaN) is out of mean/std and gets A = 0 */
    float un[3] = {1, NAN, 0};
    CHECK(grpo_advantages(un, 1, 3, 1, NULL, GRPO_SCALE_GROUP, GRPO_COMBINE_SUM, a, NULL, &e) == 0);
    CHECK(a[1] == 0);
    CHECK_NEAR(a[0], 0.5 / (sqrt(0.5) + 1e-4), 1e-6);
    CHECK_NEAR(a[2], -0.5 / (sqrt(0.5) + 1e-4), 1e-6);
    /* a group with one scorable completion: 0 */
    float lone[3] = {NAN, 1, NAN};
    CHECK(grpo_advantages(lone, 1, 3, 1, NULL, GRPO_SCALE_NONE, GRPO_COMBINE_SUM, a, NULL, &e) == 0);
    CHECK(a[0] == 0 && a[1] == 0 && a[2] == 0);
    /* batch scaling: group means, batch std. [1,0 | 1,1]: batch mean 3/4, Bessel std 1/2 */
    float b[4] = {1, 0, 1, 1};
    CHECK(grpo_advantages(b, 2, 2, 1, NULL, GRPO_SCALE_BATCH, GRPO_COMBINE_SUM, a, NULL, &e) == 0);
    CHECK_NEAR(a[0], 0.5 / (0.5 + 1e-4), 1e-6);
    CHECK_NEAR(a[1], -0.5 / (0.5 + 1e-4), 1e-6);
    CHECK(a[2] == 0 && a[3] == 0);
    /* errors: shape, infinite reward, non-finite weight */
    CHECK(grpo_advantages(b, 2, 0, 1, NULL, GRPO_SCALE_GROUP, GRPO_COMBINE_SUM, a, NULL, &e) == -1);
    b[2] = INFINITY;
    CHECK(grpo_advantages(b, 2, 2, 1, NULL, GRPO_SCALE_GROUP, GRPO_COMBINE_SUM, a, NULL, &e) == -1 && strstr(e.msg, "infinite"));
    float wn = NAN;
    b[2] = 1;
    CHECK(grpo_advantages(b, 2, 2, 1, &wn, GRPO_SCALE_GROUP, GRPO_COMBINE_SUM, a, NULL, &e) == -1 && strstr(e.msg, "weight"));
    GrpoScale s;
    CHECK(grpo_scale_parse("batch", &s, &e) == 0 && s == GRPO_SCALE_BATCH);
    CHECK(grpo_scale_parse("global", &s, &e) == -1 && strstr(e.msg, "global"));
}

TEST(grpo_dynamic_sampling_overlong_and_truncation_mask) {
    float r[12] = {1, 1, 1, 0.5f, 0, 1, NAN, 2, NAN, 3, 3, NAN};
    unsigned char z[4];
    /* groups of 3: all equal | varied | one scorable | equal among scorable */
    CHECK(grpo_zero_variance_groups(r, 4, 3, z) == 3);
    CHECK(z[0] == 1 && z[1] == 0 && z[2] == 1 && z[3] == 1);
    CHECK(grpo_zero_variance_groups(r, 4, 3, NULL) == 3);
    /* DAPO soft overlong punishment, L_max = 10, L_cache = 4 */
    CHECK(grpo_overlong_penalty(3, 10, 4) == 0);
    CHECK(grpo_overlong_penalty(6, 10, 4) == 0);
    CHECK_NEAR(grpo_overlong_penalty(7, 10, 4), -0.25, 1e-12);
    CHECK_NEAR(grpo_overlong_penalty(8, 10, 4), -0.5, 1e-12);
    CHECK_NEAR(grpo_overlong_penalty(10, 10, 4), -1.0, 1e-12);
    CHECK(grpo_overlong_penalty(11, 10, 4) == -1);
    CHECK(grpo_overlong_penalty(10, 10, 0) == 0 && grpo_overlong_penalty(11, 10, 0) == -1);
    /* masking truncated completions */
    int comp[6] = {0, 0, 1, 1, 1, 2};
    float mask[6] = {1, 1, 1, 0, 1, 1};
    unsigned char trunc[3] = {0, 1, 0};
    CHECK(grpo_mask_truncated(comp, 6, trunc, mask) == 2);
    CHECK(mask[0] == 1 && mask[2] == 0 && mask[3] == 0 && mask[4] == 0 && mask[5] == 1);
}
