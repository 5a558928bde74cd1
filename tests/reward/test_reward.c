/* tests/reward/test_reward.c — rewards from verdicts (table), code extraction and the
 * format reward, --reward/--reward-weights parsing, combination into advantages. */
#include "tests/test.h"
#include "grpo/advantage.h"
#include "reward/combine.h"
#include "reward/format_reward.h"
#include "reward/verdict_reward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TEST(reward_verdict_table) {
    VerdictRewardConfig bin = verdict_reward_config_default(), frac = bin;
    frac.mode = TESTS_REWARD_FRACTION;
    CrError e;
    CHECK(verdict_reward_set_values(&frac, "CE=-1,RE=-0.5,tle=-0.25", &e) == 0);
    struct { const char *v; int passed, total; double binary, fraction; } rows[] = {
        {"OK", 5, 5, 1.0, 1.0},
        {"WA", 3, 5, 0.0, 0.6},            /* fraction: 0 + (1-0)*3/5 */
        {"WA", 0, 5, 0.0, 0.0},
        {"CE", 0, 5, 0.0, -1.0},           /* nothing ran: the CE value */
        {"RE", 2, 4, 0.0, -0.5 + 1.5 * 0.5},
        {"RE", 0, 4, 0.0, -0.5},
        {"TLE", 4, 4, 0.0, 1.0},           /* passed clamps to total */
        {"TLE", 1, 4, 0.0, -0.25 + 1.25 * 0.25},
        {"MLE", 1, 2, 0.0, 0.5},
        {"OLE", 0, 0, 0.0, 0.0},           /* no tests: the failure value */
        {"SV", 1, 3, 0.0, 1.0 / 3},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int v;
        CHECK(reward_verdict_parse(rows[i].v, &v, &e) == 0);
        CHECK(!strcmp(reward_verdict_name(v), rows[i].v));
        CHECKF(verdict_reward_tests(&bin, v, rows[i].passed, rows[i].total) == rows[i].binary, "%s binary", rows[i].v);
        CHECK_NEAR(verdict_reward_tests(&frac, v, rows[i].passed, rows[i].total), rows[i].fraction, 1e-12);
    }
    /* mirror of sandbox/sandbox.h's Verdict: OK WA CE RE TLE MLE OLE SV IE = 0..8 */
    const char *order[9] = {"OK", "WA", "CE", "RE", "TLE", "MLE", "OLE", "SV", "IE"};
    for (int v = 0; v < 9; v++) CHECK(!strcmp(reward_verdict_name(v), order[v]));
    /* IE is never blamed on the program */
    CHECK(isnan(verdict_reward_tests(&frac, RV_IE, 0, 5)) && isnan(verdict_reward_compile(&frac, RV_IE)));
    CHECK(isnan(verdict_reward_tests(&frac, 42, 0, 5)));
    CHECK(verdict_reward_compile(&bin, RV_CE) == 0 && verdict_reward_compile(&bin, RV_WA) == 1);
    /* bad value specs */
    CHECK(verdict_reward_set_values(&frac, "XX=1", &e) == -1 && strstr(e.msg, "XX"));
    CHECK(verdict_reward_set_values(&frac, "OK=0.5", &e) == -1 && strstr(e.msg, "OK"));
    CHECK(verdict_reward_set_values(&frac, "CE=abc", &e) == -1 && strstr(e.msg, "abc"));
    CHECK(verdict_reward_set_values(&frac, "CE", &e) == -1);
    CHECK(verdict_reward_set_values(&frac, "RE=inf", &e) == -1);
}

TEST(reward_code_extraction_and_format) {
    struct { const char *text, *lang, *code; CodeSource src; double fmt; } rows[] = {
        {"Here:\n```python\nprint(1)\n```\n", "python", "print(1)\n", CODE_FROM_LANG_BLOCK, 1},
        {"```py\na=1\n```\ntext\n```python\nb=2\n```", "python", "b=2\n", CODE_FROM_LANG_BLOCK, 1}, /* last */
        {"```bash\npython x.py\n```\n```\nint main(){}\n```\n", "c", "int main(){}\n", CODE_FROM_PLAIN_BLOCK, 0},
        {"```cpp\nint x;\n```", "c", "```cpp\nint x;\n```", CODE_FROM_RAW, 0}, /* other language: never */
        {"```c++\nint y;\n```\n", "cpp", "int y;\n", CODE_FROM_LANG_BLOCK, 1},
        {"```C\nint z;\n  ```  \n", "c", "int z;\n", CODE_FROM_LANG_BLOCK, 1},  /* case, indented close */
        {"```python\ndef f():\n    return 1\n", "python", "def f():\n    return 1\n", CODE_FROM_OPEN_BLOCK, 0}, /* truncated */
        {"def f(): return 2\n", "python", "def f(): return 2\n", CODE_FROM_RAW, 0},
        {"````python\nx = '```'\n```\ny\n````\n", "python", "x = '```'\n```\ny\n", CODE_FROM_LANG_BLOCK, 1}, /* 4-tick fence */
        {"use ```python``` blocks\nprint(3)", "python", "use ```python``` blocks\nprint(3)", CODE_FROM_RAW, 0}, /* inline */
        {"```python {.numberLines}\nq=1\n```", "python", "q=1\n", CODE_FROM_LANG_BLOCK, 1},
        {"", "python", "", CODE_FROM_RAW, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        CodeSource src;
        char *code = reward_extract_code(rows[i].text, rows[i].lang, CODE_LAST, &src);
        CHECKF(!strcmp(code, rows[i].code) && src == rows[i].src, "row %zu: got \"%s\" (source %d)", i, code, (int)src);
        CHECKF(reward_format(rows[i].text, rows[i].lang) == rows[i].fmt, "row %zu format", i);
        free(code);
    }
    char *first = reward_extract_code("```py\na=1\n```\n```python\nb=2\n```", "python", CODE_FIRST, NULL);
    CHECK(!strcmp(first, "a=1\n"));
    free(first);
    CodeFence f[4];
    CHECK(reward_find_fences("```c\nx\n```\n```\ny", f, 4) == 2);
    CHECK(!strcmp(f[0].lang, "c") && f[0].closed && !f[1].closed && f[1].lang[0] == 0);
    CHECK(reward_lang_matches("python", "python3") && reward_lang_matches("go", "golang") &&
          !reward_lang_matches("c", "cpp") && reward_lang_matches("haskell", "Haskell"));
}

TEST(reward_spec_parse_and_combine) {
    RewardSpec s;
    CrError e;
    CHECK(reward_spec_parse("compile,tests,format", "0.2,1,0.1", &s, &e) == 0);
    CHECK(s.n == 3 && s.kind[0] == REWARD_COMPILE && s.kind[2] == REWARD_FORMAT);
    CHECK(s.weight[0] == 0.2f && s.weight[1] == 1.0f && s.weight[2] == 0.1f);
    CHECK(reward_spec_parse("tests,rm", NULL, &s, &e) == 0 && s.weight[1] == 1.0f);
    CHECK(reward_spec_parse("tests,bleu", NULL, &s, &e) == -1 && strstr(e.msg, "bleu"));
    CHECK(reward_spec_parse("tests,tests", NULL, &s, &e) == -1 && strstr(e.msg, "twice"));
    CHECK(reward_spec_parse("tests,,format", NULL, &s, &e) == -1);
    CHECK(reward_spec_parse("tests,format", "1", &s, &e) == -1 && strstr(e.msg, "1 weights for 2"));
    CHECK(reward_spec_parse("tests", "1,2", &s, &e) == -1 && strstr(e.msg, "more weights"));
    CHECK(reward_spec_parse("tests", "x", &s, &e) == -1 && strstr(e.msg, "'x'"));
    CHECK(reward_spec_parse("tests", "nan", &s, &e) == -1);
    CHECK(reward_spec_parse("", NULL, &s, &e) == -1);

    /* one group of 4 judged completions -> rewards -> advantages */
    CHECK(reward_spec_parse("compile,tests,format,overlong", "0.2,1,0.1,1", &s, &e) == 0);
    RewardConfig cfg = reward_config_default();
    cfg.verdict.mode = TESTS_REWARD_FRACTION;
    cfg.overlong_max = 100;
    cfg.overlong_cache = 20;
    const char *good = "```python\nprint(1)\n```";
    RewardInput in[4] = {
        {RV_OK, 4, 4, good, "python", NAN, 50},
        {RV_WA, 1, 4, "print(2)", "python", NAN, 90},      /* no fence, inside the buffer */
        {RV_CE, 0, 4, good, "python", NAN, 100},           /* truncated length */
        {RV_IE, 0, 4, good, "python", NAN, 10},            /* sandbox failed */
    };
    float v[16];
    for (int i = 0; i < 4; i++) CHECK(reward_compute(&s, &cfg, &in[i], v + 4 * i, &e) == 0);
    float want[12] = {1, 1, 1, 0, 1, 0.25f, 0, -0.5f, 0, 0, 1, -1};
    for (int i = 0; i < 12; i++) CHECKF(v[i] == want[i], "reward %d = %g, want %g", i, v[i], want[i]);
    for (int k = 0; k < 4; k++) CHECK(isnan(v[12 + k]));
    CHECK_NEAR(reward_weighted_sum(&s, v), 0.2 + 1 + 0.1, 1e-6);
    CHECK(isnan(reward_weighted_sum(&s, v + 12)));
    float adv[4], comb[4];
    CHECK(grpo_advantages(v, 1, 4, 4, s.weight, GRPO_SCALE_GROUP, GRPO_COMBINE_SUM, adv, comb, &e) == 0);
    /* IE: out of the baseline, A = 0; the other three: r = 1.3, 0.2+0.25-0.5 = -0.05, 0.1-1 = -0.9 */
    CHECK(adv[3] == 0 && isnan(comb[3]));
    double r[3] = {1.3, -0.05, -0.9}, m = (r[0] + r[1] + r[2]) / 3, ss = 0;
    for (int i = 0; i < 3; i++) ss += (r[i] - m) * (r[i] - m);
    for (int i = 0; i < 3; i++) CHECK_NEAR(adv[i], (r[i] - m) / (sqrt(ss / 2) + 1e-4), 1e-5);
    /* overlong needs its lengths configured */
    cfg.overlong_max = 0;
    CHECK(reward_compute(&s, &cfg, &in[0], v, &e) == -1 && strstr(e.msg, "overlong"));
    /* reward model score passes through, NaN when absent */
    CHECK(reward_spec_parse("rm", NULL, &s, &e) == 0);
    in[0].rm_score = 0.7;
    CHECK(reward_compute(&s, &cfg, &in[0], v, &e) == 0 && fabsf(v[0] - 0.7f) < 1e-7f);
}
