/* grpo/judge.c — see judge.h */
#include "grpo/judge.h"
#include "core/alloc.h"
#include "reward/format_reward.h"
#include "sandbox/lang.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int defines_entry(const char *code, const char *entry) {
    if (!entry || !*entry) return 1;
    char pat[256];
    snprintf(pat, sizeof pat, "def %s", entry);
    for (const char *p = strstr(code, pat); p; p = strstr(p + 1, pat)) {
        char c = p[strlen(pat)];
        if (c == '(' || c == ' ') return 1;
    }
    return 0;
}

/* The top-level import lines of a program prefix ("import x", "from x import y"). */
static char *prefix_imports(const char *prefix) {
    size_t n = strlen(prefix), o = 0;
    char *out = cr_malloc(n + 1);
    for (const char *p = prefix; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);
        if (!strncmp(p, "import ", 7) || !strncmp(p, "from ", 5)) {
            memcpy(out + o, p, len);
            o += len;
            if (!nl) out[o++] = '\n';
        }
        p += len;
    }
    out[o] = 0;
    return out;
}

static char *concat3(const char *a, const char *b, const char *c) {
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = cr_malloc(n);
    snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

char *judge_source(const Task *t, const char *completion) {
    CodeSource src;
    char *code = reward_extract_code(completion, t->language, CODE_LAST, &src);
    if (!code) code = cr_strdup(completion);
    if (!t->test_code || !t->program_prefix) return code;
    char *s;
    if (src == CODE_FROM_RAW) {
        s = concat3(t->program_prefix, completion, "");
    } else if (!defines_entry(code, t->entry_point)) {
        s = concat3(t->program_prefix, code, "");
    } else if (t->format == TASK_FMT_HUMANEVAL || t->format == TASK_FMT_EVALPLUS) {
        /* a block with the whole function: the prompt (a complete module whose
         * functions have only docstrings) first, for its imports and helper functions;
         * the block's definitions then replace the stubs */
        s = concat3(t->program_prefix, "\n", code);
    } else {
        char *imp = prefix_imports(t->program_prefix);
        s = concat3(imp, "", code);
        free(imp);
    }
    free(code);
    return s;
}

int judge_check_tasks(const Task *tasks, int n, const char *path, double time_limit_s, CrError *e) {
    if (!(time_limit_s > 0)) return cr_error_set(e, "--time-limit must be > 0 seconds (got %g)", time_limit_s);
    SandboxLimits lim;
    memset(&lim, 0, sizeof lim);
    lim.time_limit_s = time_limit_s;  /* the other fields: the defaults */
    if (sandbox_limits_check(&lim, e)) return cr_error_prefix(e, "--time-limit"), -1;
    for (int i = 0; i < n; i++) {
        const char *id = tasks[i].id ? tasks[i].id : "";
        if (sandbox_lang_check(tasks[i].language, e))
            return cr_error_prefix(e, "%s: task %d (id \"%s\")", path, i + 1, id), -1;
        /* assertion tests run in the Python harness only: refused here, not judged IE */
        const SandboxLang *l = sandbox_lang_find(tasks[i].language);
        if (tasks[i].test_code && tasks[i].n_tests == 0 && l && !l->harness)
            return cr_error_set(e, "%s: task %d (id \"%s\"): assertion tests (test_code) are supported for python "
                                   "only, not \"%s\": give %s tests as stdin/stdout cases", path, i + 1, id,
                                tasks[i].language, tasks[i].language);
    }
    return 0;
}

int judge_batch(SandboxPool *pool, JudgeItem *items, int n, const SandboxLimits *limits, CrError *e) {
    SandboxLimits lim;
    if (limits) lim = *limits; else sandbox_limits_default(&lim);
    char **sources = cr_calloc((size_t)(n ? n : 1), sizeof(char *));
    SandboxTest **tests = cr_calloc((size_t)(n ? n : 1), sizeof(SandboxTest *));
    int submitted = 0, received = 0, rc = 0;
    for (int i = 0; i < n; i++) {
        memset(&items[i].result, 0, sizeof items[i].result);
        items[i].result.verdict = VERDICT_IE;
    }
    /* Submit and drain interleaved: submit blocks when the queue is full. */
    for (int i = 0; i < n; i++) {
        const Task *t = items[i].task;
        sources[i] = judge_source(t, items[i].completion ? items[i].completion : "");
        SandboxJob job;
        memset(&job, 0, sizeof job);
        job.lang = t->language;
        job.source = sources[i];
        job.limits = lim;
        if (t->n_tests > 0) {
            tests[i] = cr_calloc((size_t)t->n_tests, sizeof(SandboxTest));
            for (int k = 0; k < t->n_tests; k++) {
                tests[i][k].stdin_data = t->tests[k].stdin_text;
                tests[i][k].expected_stdout = t->tests[k].stdout_text;
            }
            job.tests = tests[i];
            job.n_tests = t->n_tests;
        } else if (t->test_code) {
            job.test_code = t->test_code;
            job.entry_point = t->entry_point;
        }
        if (sandbox_pool_submit(pool, &job, (uint64_t)i, e)) { rc = -1; break; }
        submitted++;
    }
    while (received < submitted) {
        uint64_t tag = UINT64_MAX;
        SandboxResult r;
        if (sandbox_pool_next(pool, &tag, &r, e)) {
            if (tag == UINT64_MAX) { rc = -1; break; }  /* the pool itself failed */
            /* this job's sandbox failed internally: the item stays IE (never the program's fault) */
            fprintf(stderr, "judge: sandbox internal error on item %llu: %s\n", (unsigned long long)tag, e->msg);
            received++;
            continue;
        }
        if (tag < (uint64_t)n) {
            sandbox_result_free(&items[tag].result);
            items[tag].result = r;
        } else {
            sandbox_result_free(&r);
        }
        received++;
    }
    for (int i = 0; i < n; i++) { free(sources[i]); free(tests[i]); }
    free(sources);
    free(tests);
    return rc;
}
