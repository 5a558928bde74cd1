/* tests/grpo/test_grpo_judge.c — what `crucible eval` and the GRPO rewards run for a
 * completion, on real HumanEval tasks through the sandbox: the canonical solution as a
 * raw continuation passes; as a fenced ```python block holding the whole function (no
 * imports, no helper functions: what chat models write) it passes too; `pass` bodies
 * fail, raw and fenced. Tasks 0 (typing import), 10 and 38 (helper functions defined in
 * the prompt) exercise the program the block is judged in. */
#include "tests/test.h"
#include "core/alloc.h"
#include "core/file.h"
#include "data/tasks.h"
#include "grpo/judge.h"
#include "grpo/task_prompt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* "def ENTRY(" up to the end of the prompt: the function header and docstring. */
static const char *entry_def(const Task *t) {
    char pat[128];
    snprintf(pat, sizeof pat, "def %s(", t->entry_point);
    return strstr(t->prompt, pat);
}

/* The header line "def f(...) -> T:\n" of the entry point. */
static char *entry_header(const Task *t) {
    const char *d = entry_def(t), *nl = d ? strchr(d, '\n') : NULL;
    if (!nl) return cr_strdup("");
    size_t n = (size_t)(nl - d) + 1;
    char *s = cr_malloc(n + 1);
    memcpy(s, d, n);
    s[n] = 0;
    return s;
}

TEST(grpo_judge_humaneval_raw_fenced_and_stub) {
    Task *ts;
    int n;
    CrError e;
    const char *path = cr_file_exists("../shared/datasets/HumanEval.jsonl.gz") ? "../shared/datasets/HumanEval.jsonl.gz"
                                                                               : "/work/shared/datasets/HumanEval.jsonl.gz";
    if (tasks_load(path, &ts, &n, &e)) {
        if (strstr(e.msg, "cannot open")) SKIP("HumanEval dataset not present: %s", e.msg);
        CHECKF(0, "%s", e.msg);
        return;
    }
    const int pick[5] = {0, 2, 10, 38, 53};
    enum { V = 4 };   /* raw canonical, fenced canonical, raw pass, fenced pass */
    JudgeItem items[5 * V];
    char *texts[5 * V];
    for (int i = 0; i < 5; i++) {
        const Task *t = &ts[pick[i]];
        CHECK(t->entry_point && t->solution && entry_def(t));
        if (FAILED()) { tasks_free(ts, n); return; }
        char *hdr = entry_header(t);
        size_t big = strlen(t->prompt) + strlen(t->solution) + 64;
        texts[i * V + 0] = cr_strdup(t->solution);
        texts[i * V + 1] = cr_malloc(big);
        snprintf(texts[i * V + 1], big, "Here it is:\n```python\n%s%s```\n", entry_def(t), t->solution);
        texts[i * V + 2] = cr_strdup("    pass\n");
        texts[i * V + 3] = cr_malloc(big);
        snprintf(texts[i * V + 3], big, "```python\n%s    pass\n```", hdr);
        free(hdr);
        for (int v = 0; v < V; v++) items[i * V + v] = (JudgeItem){t, texts[i * V + v], {0}};
    }
    SandboxPool *pool = sandbox_pool_create(2, &e);
    CHECKF(pool != NULL, "%s", e.msg);
    if (pool) {
        CHECKF(judge_batch(pool, items, 5 * V, NULL, &e) == 0, "%s", e.msg);
        for (int i = 0; i < 5; i++) {
            const char *id = ts[pick[i]].id;
            Verdict v0 = items[i * V].result.verdict, v1 = items[i * V + 1].result.verdict;
            Verdict v2 = items[i * V + 2].result.verdict, v3 = items[i * V + 3].result.verdict;
            CHECKF(v0 == VERDICT_OK, "%s raw canonical: %s", id, verdict_name(v0));
            CHECKF(v1 == VERDICT_OK, "%s fenced function: %s", id, verdict_name(v1));
            CHECKF(v2 != VERDICT_OK && v2 != VERDICT_IE, "%s raw pass: %s", id, verdict_name(v2));
            CHECKF(v3 != VERDICT_OK && v3 != VERDICT_IE, "%s fenced pass: %s", id, verdict_name(v3));
        }
        sandbox_pool_free(pool);
    }
    /* the programs themselves: raw = prompt + completion; a fenced whole function runs
     * after the prompt (imports, helpers) */
    char *src = judge_source(&ts[0], texts[0]);
    CHECK(strncmp(src, ts[0].prompt, strlen(ts[0].prompt)) == 0 && strstr(src, ts[0].solution) != NULL);
    free(src);
    src = judge_source(&ts[0], texts[1]);
    CHECK(strstr(src, "from typing import List") == src && strstr(src, "```") == NULL);
    free(src);
    for (int i = 0; i < 5 * V; i++) { sandbox_result_free(&items[i].result); free(texts[i]); }
    tasks_free(ts, n);
}

TEST(grpo_judge_block_in_own_format_task_gets_prefix_imports) {
    Task t;
    memset(&t, 0, sizeof t);
    t.language = "python";
    t.format = TASK_FMT_CRUCIBLE;
    t.entry_point = "f";
    t.test_code = "def check(candidate):\n    assert candidate(2) == 3\n";
    t.program_prefix = "import math\nfrom typing import List\ndef f(x: int) -> int:\n    ";
    char *src = judge_source(&t, "```python\ndef f(x: int) -> int:\n    return x + 1\n```");
    CHECK(strcmp(src, "import math\nfrom typing import List\ndef f(x: int) -> int:\n    return x + 1\n") == 0);
    free(src);
    /* a block without the entry point continues the prefix */
    src = judge_source(&t, "```python\nreturn x + 1\n```");
    CHECK(strcmp(src, "import math\nfrom typing import List\ndef f(x: int) -> int:\n    return x + 1\n") == 0);
    free(src);
}

TEST(grpo_task_prompt_raw_stops_for_function_bodies_only) {
    Task he, io;
    memset(&he, 0, sizeof he);
    memset(&io, 0, sizeof io);
    he.language = io.language = "python";
    he.program_prefix = "def f(x):\n    \"\"\"doc\"\"\"\n";
    he.test_code = "def check(candidate):\n    assert candidate(1) == 1\n";
    io.prompt = "Read n, print n.";
    int n = -1;
    const char *const *s = task_prompt_stops(&he, PROMPT_RAW, &n);
    CHECK(s != NULL && n == 5);
    for (int i = 0; s && i < n; i++) CHECK(s[i][0] == '\n');
    CHECK(task_prompt_stops(&he, PROMPT_CHAT, &n) == NULL && n == 0);
    CHECK(task_prompt_stops(&io, PROMPT_RAW, &n) == NULL && n == 0);
    he.language = "c";
    CHECK(task_prompt_stops(&he, PROMPT_RAW, &n) == NULL);
}
