/* tests/sandbox/test_humaneval.c — the real HumanEval tasks through the pool: every canonical
 * solution must be OK; every task whose body is `pass` or a wrong constant return (`return 0`) must
 * not be OK. All 3 x 164 jobs take ~35 s on 2 loaded cores, so they run in `make test`. */
#include "tests/test.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#include "core/alloc.h"
#include "sandbox/sandbox.h"

#define HUMANEVAL_PATH "../shared/datasets/HumanEval.jsonl.gz"

static char *gz_read_all(const char *path) {
    gzFile g = gzopen(path, "rb");
    if (!g) return NULL;
    size_t cap = 1 << 20, n = 0;
    char *buf = cr_malloc(cap);
    for (;;) {
        if (n + 65536 + 1 > cap) buf = cr_realloc(buf, cap *= 2);
        int r = gzread(g, buf + n, 65536);
        if (r < 0) { gzclose(g); free(buf); return NULL; }
        if (r == 0) break;
        n += (size_t)r;
    }
    gzclose(g);
    buf[n] = 0;
    return buf;
}

typedef struct Task { char *id, *prompt, *solution, *test, *entry; } Task;

static int load_tasks(Task **out) {
    const char *path = getenv("CRUCIBLE_HUMANEVAL");
    if (!path) path = HUMANEVAL_PATH;
    char *text = gz_read_all(path);
    if (!text) text = gz_read_all("/work/shared/datasets/HumanEval.jsonl.gz");
    if (!text) return -1;
    int n = 0, cap = 256;
    Task *t = cr_calloc((size_t)cap, sizeof *t);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *o = cJSON_Parse(line);
        if (!o) continue;
        const char *k[5] = { "task_id", "prompt", "canonical_solution", "test", "entry_point" };
        char *v[5] = { 0 };
        int ok = 1;
        for (int i = 0; i < 5; i++) {
            const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k[i]);
            if (cJSON_IsString(x)) v[i] = cr_strdup(x->valuestring); else ok = 0;
        }
        cJSON_Delete(o);
        if (!ok || n == cap) { for (int i = 0; i < 5; i++) free(v[i]); continue; }
        t[n++] = (Task){ v[0], v[1], v[2], v[3], v[4] };
    }
    free(text);
    *out = t;
    return n;
}

enum { CANONICAL, PASS_BODY, CONSTANT };

TEST(sandbox_humaneval) {
    Task *tasks;
    int n = load_tasks(&tasks);
    if (n <= 0) SKIP("HumanEval not found at %s", HUMANEVAL_PATH);
    CHECK(n == 164);
    CrError e = { { 0 } };
    SandboxPool *p = sandbox_pool_create(2, &e);
    CHECKF(p != NULL, "%s", e.msg);
    if (!p) return;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char **sources = cr_calloc((size_t)n * 3, sizeof *sources);
    int submitted = 0;
    for (int i = 0; i < n; i++)
        for (int v = 0; v < 3; v++) {
            const char *body = v == CANONICAL ? tasks[i].solution : v == PASS_BODY ? "    pass\n" : "    return 0\n";
            size_t len = strlen(tasks[i].prompt) + strlen(body) + 1;
            char *src = cr_malloc(len);
            snprintf(src, len, "%s%s", tasks[i].prompt, body);
            sources[i * 3 + v] = src;
            SandboxJob job = { .lang = "python", .source = src, .test_code = tasks[i].test,
                               .entry_point = tasks[i].entry };
            job.limits.time_limit_s = 10;
            CHECK(sandbox_pool_submit(p, &job, (uint64_t)(i * 3 + v), &e) == 0);
            submitted++;
        }
    int ok_canon = 0, bad_pass_ok = 0, bad_const_ok = 0;
    for (int k = 0; k < submitted; k++) {
        uint64_t tag;
        SandboxResult r;
        if (sandbox_pool_next(p, &tag, &r, &e) < 0) { CHECKF(0, "%s", e.msg); continue; }
        int i = (int)(tag / 3), v = (int)(tag % 3);
        if (v == CANONICAL) {
            if (r.verdict == VERDICT_OK) ok_canon++;
            else CHECKF(0, "%s canonical: %s %.300s", tasks[i].id, verdict_name(r.verdict),
                        r.n_tests ? r.tests[0].stderr_data : "");
        } else {
            CHECKF(r.verdict != VERDICT_OK, "%s with a %s body passed", tasks[i].id, v == PASS_BODY ? "pass" : "return 0");
            CHECKF(r.verdict != VERDICT_IE, "%s: IE", tasks[i].id);
            if (r.verdict == VERDICT_OK) { if (v == PASS_BODY) bad_pass_ok++; else bad_const_ok++; }
        }
        sandbox_result_free(&r);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double dt = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    fprintf(stderr, "    HumanEval: %d/%d canonical OK; %d jobs judged in %.1f s (%.1f jobs/s, 2 workers)\n",
            ok_canon, n, submitted, dt, submitted / dt);
    CHECK(ok_canon == n && bad_pass_ok == 0 && bad_const_ok == 0);
    sandbox_pool_free(p);
    for (int i = 0; i < n * 3; i++) free(sources[i]);
    free(sources);
    for (int i = 0; i < n; i++) { free(tasks[i].id); free(tasks[i].prompt); free(tasks[i].solution); free(tasks[i].test); free(tasks[i].entry); }
    free(tasks);
}
