/* cli/cmd_sandbox.c — `crucible sandbox run|info|worker`.
 *   run    judge one program; prints exactly one JSON object (the contract in sandbox.h) and
 *          exits 0 whenever a verdict was reached, 2 on usage errors, 1 when the sandbox cannot work
 *          (including verdict IE, whose JSON is still printed)
 *   info   the languages available here and the isolation in force
 *   worker the pool's worker loop (JSON lines on stdin/stdout; started by sandbox_pool_create) */
#include "cli/command.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/args.h"
#include "core/file.h"
#include "sandbox/sandbox.h"

const char cmd_sandbox_summary[] = "compile and run a program in the seccomp sandbox and judge it (run|info|worker)";

/* Tests file: {"tests": [{"stdin": "...", "stdout": "..."}]} or {"test_code": "...", "entry_point": "..."}.
 * Strings point into *keep (freed by the caller). */
static int load_tests(const char *path, SandboxJob *job, cJSON **keep, CrError *e) {
    size_t len;
    char *text = cr_read_file(path, &len, e);
    if (!text) return -1;
    /* A "\u0000" would silently cut its string (cJSON strings end at NUL): an expected stdout
     * "x\u0000y" would match "x". Refused, with where it is. */
    size_t line, col;
    char key[64];
    if (sandbox_json_find_nul(text, len, &line, &col, key, sizeof key)) {
        free(text);
        return cr_error_set(e, "%s:%zu:%zu: \"%s\" holds \\u0000 (a NUL byte), which a tests file cannot carry "
                            "(a binary stdin can be given with --stdin FILE)", path, line, col, key);
    }
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!o) return cr_error_set(e, "%s: malformed JSON", path);
    *keep = o;
    if (!cJSON_IsObject(o)) return cr_error_set(e, "%s: expected a JSON object", path);
    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(o, "tests");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive(o, "test_code");
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(o, "entry_point");
    if (tests && code) return cr_error_set(e, "%s: give either \"tests\" or \"test_code\", not both", path);
    if (code) {
        if (!cJSON_IsString(code)) return cr_error_set(e, "%s: \"test_code\" must be a string", path);
        if (!cJSON_IsString(entry) || !entry->valuestring[0])
            return cr_error_set(e, "%s: \"entry_point\" (a non-empty string) is required with \"test_code\"", path);
        job->test_code = code->valuestring;
        job->entry_point = entry->valuestring;
        return 0;
    }
    if (!cJSON_IsArray(tests)) return cr_error_set(e, "%s: \"tests\" (an array) or \"test_code\" required", path);
    int n = cJSON_GetArraySize(tests);
    if (n == 0) return cr_error_set(e, "%s: \"tests\" is empty", path);
    SandboxTest *t = cr_calloc((size_t)n, sizeof *t);
    job->tests = t;
    job->n_tests = n;
    for (int i = 0; i < n; i++) {
        const cJSON *it = cJSON_GetArrayItem(tests, i);
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(it, "stdin");
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(it, "stdout");
        if (!cJSON_IsObject(it)) return cr_error_set(e, "%s: tests[%d] is not an object", path, i);
        if (in && !cJSON_IsString(in)) return cr_error_set(e, "%s: tests[%d].stdin must be a string", path, i);
        if (!cJSON_IsString(want)) return cr_error_set(e, "%s: tests[%d].stdout (a string) is required", path, i);
        t[i].stdin_data = in ? in->valuestring : "";
        t[i].expected_stdout = want->valuestring;
    }
    return 0;
}

static int cmd_run(int argc, char **argv) {
    const char *lang = NULL, *tests_path = NULL, *stdin_path = NULL;
    double time_limit = 10.0;
    long memory_mb = 512, output_limit = 16L << 20;
    ArgSpec specs[] = {
        { "lang", ARG_STR, &lang, "language: c, cpp, python, javascript", 1 },
        { "tests", ARG_STR, &tests_path, "tests JSON: {\"tests\":[{\"stdin\",\"stdout\"}]} or {\"test_code\",\"entry_point\"}", 0 },
        { "stdin", ARG_STR, &stdin_path, "file given as stdin when there are no tests", 0 },
        { "time-limit", ARG_FLOAT, &time_limit, "CPU seconds per run (wall clock: 2x + 1 s)", 0 },
        { "memory-limit", ARG_INT, &memory_mb, "MB per run", 0 },
        { "output-limit", ARG_INT, &output_limit, "bytes per output stream (beyond it: OLE)", 0 },
        { NULL, ARG_STR, NULL, NULL, 0 },
    };
    const char *usage = "crucible sandbox run --lang LANG [--tests FILE.json] [--stdin FILE] "
                        "[--time-limit SECONDS] [--memory-limit MB] SOURCE";
    const char **pos = NULL;
    int npos = 0;
    CrError e = { { 0 } };
    int r = cr_args_parse(usage, specs, argc, argv, &pos, &npos, &e);
    if (r == CR_ARGS_HELP) return 0;
    if (r < 0) { fprintf(stderr, "crucible sandbox run: %s\n", e.msg); return 2; }
    if (npos != 1) {
        fprintf(stderr, "crucible sandbox run: exactly one SOURCE file expected\nusage: %s\n", usage);
        free(pos);
        return 2;
    }
    if (time_limit <= 0 || time_limit > 3600 || memory_mb < 16 || memory_mb > 65536 || output_limit <= 0) {
        fprintf(stderr, "crucible sandbox run: limits out of range (time (0, 3600] s, memory [16, 65536] MB, output > 0)\n");
        free(pos);
        return 2;
    }
    SandboxJob job;
    memset(&job, 0, sizeof job);
    job.lang = lang;
    job.limits.time_limit_s = time_limit;
    job.limits.memory_limit_mb = memory_mb;
    job.limits.output_limit_bytes = output_limit;
    size_t len;
    char *source = cr_read_file(pos[0], &len, &e);
    char *stdin_text = NULL;
    cJSON *keep = NULL;
    int rc = 2;
    if (!source) { fprintf(stderr, "crucible sandbox run: %s\n", e.msg); goto done; }
    if (strlen(source) != len) { fprintf(stderr, "crucible sandbox run: %s: contains a NUL byte\n", pos[0]); goto done; }
    job.source = source;
    if (stdin_path) {
        if (!(stdin_text = cr_read_file(stdin_path, &len, &e))) { fprintf(stderr, "crucible sandbox run: %s\n", e.msg); goto done; }
        job.stdin_data = stdin_text;
        job.stdin_len = len;  /* binary: NUL bytes included */
    }
    if (tests_path && load_tests(tests_path, &job, &keep, &e) < 0) {
        fprintf(stderr, "crucible sandbox run: %s\n", e.msg);
        goto done;
    }
    SandboxResult res;
    if (sandbox_run(&job, &res, &e) < 0) {
        fprintf(stderr, "crucible sandbox run: %s\n", e.msg);
        rc = strstr(e.msg, "job:") == e.msg ? 2 : 1;
        goto done;
    }
    char *json = sandbox_result_to_json(&res);
    printf("%s\n", json);
    free(json);
    /* IE: the sandbox itself failed (the JSON says where); every other verdict is a success. */
    rc = fflush(stdout) == 0 && res.verdict != VERDICT_IE ? 0 : 1;
    sandbox_result_free(&res);
done:
    free(source);
    free(stdin_text);
    free((void *)job.tests);
    cJSON_Delete(keep);
    free(pos);
    return rc;
}

int cmd_sandbox(int argc, char **argv) {
    if (argc >= 1 && strcmp(argv[0], "run") == 0) return cmd_run(argc - 1, argv + 1);
    if (argc >= 1 && strcmp(argv[0], "worker") == 0) return sandbox_worker_main(0, 1) == 0 ? 0 : 1;
    if (argc >= 1 && strcmp(argv[0], "info") == 0) {
        printf("languages: %s\nisolation: %s\n", sandbox_languages(), sandbox_isolation_report());
        return 0;
    }
    fprintf(stderr, "usage: crucible sandbox run --lang LANG [--tests FILE.json] [--stdin FILE] "
                    "[--time-limit SECONDS] [--memory-limit MB] SOURCE\n"
                    "       crucible sandbox info\n"
                    "       crucible sandbox worker   (internal: the pool's worker)\n");
    return argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) ? 0 : 2;
}
