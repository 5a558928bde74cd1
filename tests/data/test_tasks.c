/* tests/data/test_tasks.c — task dataset readers: real HumanEval, our format, MBPP,
 * EvalPlus, APPS; errors name file/line/field; generated test code really judges
 * (run with python3 when available). */
#include "tests/test.h"
#include <cjson/cJSON.h>
#include "data/jsonl.h"
#include "data/tasks.h"
#include "core/alloc.h"
#include "core/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static char *write_tmp(const char *name, const char *text) {
    char *d = test_tmpdir();
    char *p = cr_path_join(d, name);
    CrError e;
    if (cr_write_file_atomic(p, text, strlen(text), &e) < 0) abort();
    free(d);
    return p;
}

static int have_python(void) { return system("python3 -c 'pass' >/dev/null 2>&1") == 0; }

/* Run prefix + body + "\n" + test_code + "\ncheck(entry)\n" with python3; 0 = passed. */
static int judge_py(const Task *t, const char *body) {
    char *d = test_tmpdir();
    char *p = cr_path_join(d, "prog.py");
    FILE *f = fopen(p, "w");
    if (!f) abort();
    fprintf(f, "%s%s\n%s\ncheck(%s)\n", t->program_prefix ? t->program_prefix : "", body,
            t->test_code, t->entry_point);
    fclose(f);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "timeout 20 python3 %s >/dev/null 2>&1", p);
    int rc = system(cmd);
    free(p);
    free(d);
    return rc;
}

TEST(data_tasks_humaneval_real_file) {
    Task *ts; int n; CrError e;
    int rc = tasks_load("/work/shared/datasets/HumanEval.jsonl.gz", &ts, &n, &e);
    if (rc < 0 && strstr(e.msg, "cannot open")) SKIP("HumanEval dataset not present: %s", e.msg);
    CHECKF(rc == 0, "%s", e.msg);
    if (rc < 0) return;
    /* reference numbers computed with Python's gzip+json on the same file */
    CHECK(n == 164);
    size_t test_bytes = 0, prompt_bytes = 0;
    for (int i = 0; i < n; i++) {
        test_bytes += strlen(ts[i].test_code);
        prompt_bytes += strlen(ts[i].prompt);
        CHECK(ts[i].format == TASK_FMT_HUMANEVAL);
        CHECK(strcmp(ts[i].language, "python") == 0);
        CHECK(ts[i].solution && ts[i].program_prefix && ts[i].n_tests == 0);
    }
    CHECK(test_bytes == 83494);
    CHECK(prompt_bytes == 73980);
    CHECK(strcmp(ts[0].id, "HumanEval/0") == 0);
    CHECK(strcmp(ts[0].entry_point, "has_close_elements") == 0);
    CHECK(strcmp(ts[163].entry_point, "generate_integers") == 0);
    CHECK(strlen(ts[0].solution) == 252);
    if (have_python()) {
        /* canonical solutions pass, an empty body fails */
        for (int i = 0; i < 3; i++) {
            CHECKF(judge_py(&ts[i], ts[i].solution) == 0, "canonical %s failed", ts[i].id);
            CHECKF(judge_py(&ts[i], "    return None\n") != 0, "wrong %s passed", ts[i].id);
        }
    }
    tasks_free(ts, n);
}

TEST(data_tasks_our_format_and_errors) {
    const char *ok =
        "{\"id\":\"a\",\"language\":\"C\",\"prompt\":\"sum\",\"tests\":[{\"stdin\":\"1 2\\n\",\"stdout\":\"3\\n\"},{\"stdout\":\"0\"}]}\r\n"
        "\n   \n"
        "{\"id\":7,\"language\":\"python\",\"prompt\":\"def f(x):\",\"test_code\":\"def check(c):\\n    assert c(1)==2\\n\",\"entry_point\":\"f\",\"solution\":\"    return x+1\\n\"}\n";
    char *p = write_tmp("t.jsonl", ok);
    Task *ts; int n; CrError e;
    CHECKF(tasks_load(p, &ts, &n, &e) == 0, "%s", e.msg);
    if (FAILED()) return;
    CHECK(n == 2);
    CHECK(strcmp(ts[0].language, "c") == 0 && ts[0].n_tests == 2);
    CHECK(strcmp(ts[0].tests[0].stdin_text, "1 2\n") == 0 && strcmp(ts[0].tests[0].stdout_text, "3\n") == 0);
    CHECK(strcmp(ts[0].tests[1].stdin_text, "") == 0);
    CHECK(ts[0].line == 1 && ts[1].line == 4);
    CHECK(strcmp(ts[1].id, "7") == 0 && strcmp(ts[1].entry_point, "f") == 0 && ts[1].format == TASK_FMT_CRUCIBLE);
    tasks_free(ts, n);

    struct { const char *text, *want1, *want2; } bad[] = {
        {"{\"id\":\"a\",\"language\":\"c\",\"prompt\":\"p\",\"tests\":[{\"stdin\":\"\",\"stdout\":\"1\"},{\"stdout\":5}]}\n",
         ":1: field 'tests[1].stdout'", "got a number"},
        {"\n{\"id\":\"a\",\"language\":\"c\",\"tests\":[{\"stdout\":\"1\"}]}\n", ":2: field 'prompt'", "missing"},
        {"{\"id\":\"a\",\"language\":\"c\",\"prompt\":\"p\",\"tests\":[{\"stdout\":\"1\"}]\n", ":1: invalid JSON", "column"},
        {"{\"id\":\"a\",\"language\":\"c\",\"prompt\":\"p\"}\n", ":1: task 'a' has no tests", ""},
        {"[1,2]\n", ":1: expected a JSON object", ""},
        {"{\"id\":\"a\",\"language\":\"c\",\"prompt\":\"p\",\"tests\":[{\"stdout\":\"1\"}]}\n"
         "{\"id\":\"a\",\"language\":\"c\",\"prompt\":\"q\",\"tests\":[{\"stdout\":\"1\"}]}\n", ":2: duplicate task id 'a'", "line 1"},
        {"{\"id\":\"a\",\"language\":\"c\",\"prompt\":\"p\",\"test_code\":\"x\"}\n", "field 'entry_point'", "required"},
        {"{\"foo\":1}\n", ":1: unknown task format", ""},
        {"{\"id\":\"a\"} trailing\n", ":1: unexpected text", ""},
        {"", "no tasks", ""},
        /* a NUL in a string would end the C text there: refused (jsonl_next) */
        {"{\"id\":\"a\",\"language\":\"c\",\"prompt\":\"p\\u0000q\",\"tests\":[{\"stdout\":\"1\"}]}\n", ":1: a NUL",
         "column 37"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *q = write_tmp("bad.jsonl", bad[i].text);
        e.msg[0] = 0;
        int rc = tasks_load(q, &ts, &n, &e);
        CHECKF(rc < 0, "case %zu accepted", i);
        CHECKF(strstr(e.msg, "bad.jsonl") && strstr(e.msg, bad[i].want1) && strstr(e.msg, bad[i].want2),
               "case %zu: message '%s'", i, e.msg);
        free(q);
    }
    CHECK(tasks_load("/nonexistent/x.jsonl", &ts, &n, &e) < 0 && strstr(e.msg, "/nonexistent/x.jsonl"));
    /* an escaped backslash before u0000 is the text "\u0000", not a NUL */
    const char *lit = "{\"id\":\"a\",\"language\":\"c\",\"prompt\":\"p\\\\u0000q\",\"tests\":[{\"stdout\":\"1\"}]}\n";
    char *q = write_tmp("lit.jsonl", lit);
    CHECKF(tasks_load(q, &ts, &n, &e) == 0 && n == 1 && !strcmp(ts[0].prompt, "p\\u0000q"), "%s", e.msg);
    if (n == 1) tasks_free(ts, n);
    free(q);
    free(p);
}

/* MBPP task 11 (original field layout). */
static const char k_mbpp[] =
    "{\"text\": \"Write a python function to remove first and last occurrence of a given character from the string.\", "
    "\"code\": \"def remove_Occ(s,ch): \\r\\n    for i in range(len(s)): \\r\\n        if (s[i] == ch): \\r\\n            s = s[0 : i] + s[i + 1:] \\r\\n            break\\r\\n    for i in range(len(s) - 1,-1,-1):  \\r\\n        if (s[i] == ch): \\r\\n            s = s[0 : i] + s[i + 1:] \\r\\n            break\\r\\n    return s \", "
    "\"task_id\": 11, \"test_setup_code\": \"\", "
    "\"test_list\": [\"assert remove_Occ(\\\"hello\\\",\\\"l\\\") == \\\"heo\\\"\", \"assert remove_Occ(\\\"abcda\\\",\\\"a\\\") == \\\"bcd\\\"\", \"assert remove_Occ(\\\"PHP\\\",\\\"P\\\") == \\\"H\\\"\"], "
    "\"challenge_test_list\": []}\n";

TEST(data_tasks_mbpp) {
    Task *ts; int n; CrError e;
    CHECKF(tasks_parse(k_mbpp, strlen(k_mbpp), "mbpp.jsonl", &ts, &n, &e) == 0, "%s", e.msg);
    if (FAILED()) return;
    CHECK(n == 1 && ts[0].format == TASK_FMT_MBPP);
    CHECK(strcmp(ts[0].id, "11") == 0);
    CHECK(strcmp(ts[0].entry_point, "remove_Occ") == 0);
    CHECK(strstr(ts[0].prompt, "Write a python function") == ts[0].prompt);
    CHECK(strstr(ts[0].prompt, "assert remove_Occ(\"PHP\",\"P\") == \"H\"") != NULL);
    CHECK(ts[0].program_prefix == NULL && ts[0].solution);
    if (have_python()) {
        CHECK(judge_py(&ts[0], ts[0].solution) == 0);
        CHECK(judge_py(&ts[0], "def remove_Occ(s, ch):\n    return s\n") != 0);
    }
    tasks_free(ts, n);
    /* the entry point is the whole called identifier, past builtin wrappers (real MBPP names
     * start with str/set/round: string_to_list, set_left_most_unset_bit, round_up) */
    static const char *const callee[][3] = {
        {"assert set_left_most_unset_bit(10) == 14", "def set_left_most_unset_bit(n):\n    return n\n",
         "set_left_most_unset_bit"},
        {"assert string_to_list(\"python programming\")==['python','programming']", "", "string_to_list"},
        {"assert round_up(123.01247,0)==124", "", "round_up"},
        {"assert set(similar_elements((3, 4), (5, 4))) == set((4,))", "", "similar_elements"},
        {"assert math.isclose(area_circle(2), 12.56, rel_tol=0.001)", "", "area_circle"},
        {"assert not is_prime(\"f(3)\" and 4)", "", "is_prime"},
        {"assert str_rev(helper(3)) == '3'", "def helper(x):\n    return x\ndef str_rev(x):\n    return str(x)\n",
         "str_rev"},
        {"assert sorted(helper(sort_it([2, 1]))) == [1, 2]", "def sort_it(xs):\n    return sorted(xs)\n", "sort_it"},
    };
    for (size_t i = 0; i < sizeof callee / sizeof callee[0]; i++) {
        cJSON *o = cJSON_CreateObject(), *tl = cJSON_AddArrayToObject(o, "test_list");
        cJSON_AddNumberToObject(o, "task_id", (double)i);
        cJSON_AddStringToObject(o, "text", "t");
        cJSON_AddItemToArray(tl, cJSON_CreateString(callee[i][0]));
        if (*callee[i][1]) cJSON_AddStringToObject(o, "code", callee[i][1]);
        char *line = cJSON_PrintUnformatted(o);
        cJSON_Delete(o);
        CHECKF(tasks_parse(line, strlen(line), "m.jsonl", &ts, &n, &e) == 0, "%s: %s", callee[i][0], e.msg);
        if (!FAILED()) {
            CHECKF(!strcmp(ts[0].entry_point, callee[i][2]), "%s: entry point %s", callee[i][0], ts[0].entry_point);
            tasks_free(ts, n);
        }
        cJSON_free(line);
    }
    const char *bad = "{\"task_id\":1,\"text\":\"t\",\"test_list\":[\"assert f(1)==1\", 3]}\n";
    CHECK(tasks_parse(bad, strlen(bad), "m.jsonl", &ts, &n, &e) < 0);
    CHECKF(strstr(e.msg, "m.jsonl:1: field 'test_list[1]'") != NULL, "%s", e.msg);
}

TEST(data_tasks_evalplus) {
    /* HumanEval+ layout: module-level test with inputs/results (no check function). */
    const char *line =
        "{\"task_id\":\"HumanEval/2\",\"prompt\":\"def truncate_number(number: float) -> float:\\n    \\\"\\\"\\\"fraction\\\"\\\"\\\"\\n\","
        "\"entry_point\":\"truncate_number\",\"canonical_solution\":\"    return number % 1.0\\n\",\"contract\":\"\","
        "\"base_input\":[[3.5]],\"plus_input\":[[1.25],[999.75]],\"atol\":1e-6,"
        "\"test\":\"inputs = [[3.5],[1.25],[999.75]]\\nresults = [0.5,0.25,0.75]\\nfor i, (inp, exp) in enumerate(zip(inputs, results)):\\n    assert abs(truncate_number(*inp) - exp) <= 1e-6\\n\"}\n";
    Task *ts; int n; CrError e;
    CHECKF(tasks_parse(line, strlen(line), "he+.jsonl", &ts, &n, &e) == 0, "%s", e.msg);
    if (FAILED()) return;
    CHECK(ts[0].format == TASK_FMT_EVALPLUS);
    CHECK(ts[0].plus_input_json && strcmp(ts[0].plus_input_json, "[[1.25],[999.75]]") == 0);
    CHECK(strstr(ts[0].test_code, "def check(candidate)") != NULL);
    if (have_python()) {
        CHECK(judge_py(&ts[0], ts[0].solution) == 0);
        CHECK(judge_py(&ts[0], "    return 0.5\n") != 0);
    }
    tasks_free(ts, n);
}

TEST(data_tasks_apps_stdin_and_call_based) {
    const char *lines =
        /* input_output as a JSON string, outputs as line arrays */
        "{\"problem_id\":4001,\"question\":\"Add two numbers.\",\"solutions\":\"[\\\"a,b=map(int,input().split())\\\\nprint(a+b)\\\"]\","
        "\"input_output\":\"{\\\"inputs\\\": [\\\"1 2\\\\n\\\", \\\"5 5\\\\n\\\"], \\\"outputs\\\": [[\\\"3\\\"], \\\"10\\\\n\\\"]}\"}\n"
        /* call-based, input_output as an object */
        "{\"problem_id\":4002,\"question\":\"Return the sum of a list.\",\"starter_code\":\"def total(xs):\","
        "\"input_output\":{\"fn_name\":\"total\",\"inputs\":[[[1,2,3]],[[]],[[true, 1]]],\"outputs\":[[6],[0],[2]]}}\n"
        /* call-based, LeetCode-style: the method of class Solution */
        "{\"problem_id\":4003,\"question\":\"Indices of two numbers adding to target.\","
        "\"starter_code\":\"class Solution:\\n    def twoSum(self, nums, target):\\n        \","
        "\"input_output\":{\"fn_name\":\"twoSum\",\"inputs\":[[[2,7,11,15],9],[[3,2,4],6]],\"outputs\":[[0,1],[1,2]]}}\n";
    Task *ts; int n; CrError e;
    CHECKF(tasks_parse(lines, strlen(lines), "apps.jsonl", &ts, &n, &e) == 0, "%s", e.msg);
    if (FAILED()) return;
    CHECK(n == 3 && ts[0].format == TASK_FMT_APPS);
    CHECK(strcmp(ts[2].entry_point, "Solution") == 0 && strstr(ts[2].prompt, "def twoSum(self, nums, target)"));
    if (have_python()) {
        CHECK(judge_py(&ts[2], "class Solution:\n    def twoSum(self, nums, target):\n"
                               "        seen = {}\n        for i, x in enumerate(nums):\n"
                               "            if target - x in seen:\n                return [seen[target - x], i]\n"
                               "            seen[x] = i\n") == 0);
        CHECK(judge_py(&ts[2], "class Solution:\n    def twoSum(self, nums, target):\n        return [0, 1]\n") != 0);
    }
    CHECK(strcmp(ts[0].id, "4001") == 0 && ts[0].n_tests == 2);
    CHECK(strcmp(ts[0].tests[0].stdin_text, "1 2\n") == 0 && strcmp(ts[0].tests[0].stdout_text, "3") == 0);
    CHECK(strcmp(ts[0].tests[1].stdout_text, "10\n") == 0);
    CHECK(ts[0].solution && strstr(ts[0].solution, "print(a+b)"));
    CHECK(ts[1].n_tests == 0 && strcmp(ts[1].entry_point, "total") == 0);
    if (have_python()) {
        CHECK(judge_py(&ts[1], "def total(xs):\n    return sum(xs)\n") == 0);
        CHECK(judge_py(&ts[1], "def total(xs):\n    return len(xs)\n") != 0);
    }
    tasks_free(ts, n);
    const char *bad = "{\"problem_id\":1,\"question\":\"q\",\"input_output\":{\"inputs\":[\"1\"],\"outputs\":[]}}\n";
    CHECK(tasks_parse(bad, strlen(bad), "a.jsonl", &ts, &n, &e) < 0);
    CHECKF(strstr(e.msg, "a.jsonl:1: field 'input_output'") && strstr(e.msg, "1 inputs but 0 outputs"), "%s", e.msg);
    const char *bad2 = "{\"problem_id\":1,\"question\":\"q\",\"input_output\":\"{not json\"}\n";
    CHECK(tasks_parse(bad2, strlen(bad2), "a.jsonl", &ts, &n, &e) < 0);
    CHECKF(strstr(e.msg, "field 'input_output'") != NULL, "%s", e.msg);
}

static void gz_write(const char *path, const char *text, size_t len) {
    gzFile g = gzopen(path, "wb");
    if (!g) abort();
    if (gzwrite(g, text, (unsigned)len) != (int)len) abort();
    if (gzclose(g) != Z_OK) abort();
}

TEST(data_tasks_gzip_long_fields_truncation) {
    /* a 400 KB test_code field, gzip-compressed, as two concatenated members */
    size_t big = 400000;
    char *code = cr_malloc(big + 1);
    for (size_t i = 0; i < big; i++) code[i] = (i % 80 == 79) ? '\n' : 'x';
    code[big] = 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", "big");
    cJSON_AddStringToObject(o, "language", "python");
    cJSON_AddStringToObject(o, "prompt", "p");
    cJSON_AddStringToObject(o, "test_code", code);
    cJSON_AddStringToObject(o, "entry_point", "f");
    char *line = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    char *d = test_tmpdir();
    char *p1 = cr_path_join(d, "a.gz"), *p2 = cr_path_join(d, "b.gz"), *pc = cr_path_join(d, "c.jsonl.gz");
    gz_write(p1, line, strlen(line));
    const char *l2 = "\n{\"id\":\"s\",\"language\":\"c\",\"prompt\":\"p\",\"tests\":[{\"stdout\":\"1\"}]}\n";
    gz_write(p2, l2, strlen(l2));
    size_t n1, n2;
    CrError e;
    char *b1 = cr_read_file(p1, &n1, &e), *b2 = cr_read_file(p2, &n2, &e);
    char *cat = cr_malloc(n1 + n2);
    memcpy(cat, b1, n1);
    memcpy(cat + n1, b2, n2);
    CHECK(cr_write_file_atomic(pc, cat, n1 + n2, &e) == 0);
    Task *ts; int n;
    CHECKF(tasks_load(pc, &ts, &n, &e) == 0, "%s", e.msg);
    if (!FAILED()) {
        CHECK(n == 2 && strcmp(ts[0].test_code, code) == 0 && strcmp(ts[1].id, "s") == 0);
        tasks_free(ts, n);
    }
    /* truncated gzip: an error naming the file, never a partial dataset */
    CHECK(cr_write_file_atomic(pc, cat, n1 / 2, &e) == 0);
    CHECK(tasks_load(pc, &ts, &n, &e) < 0);
    CHECKF(strstr(e.msg, "c.jsonl.gz") && strstr(e.msg, "truncated"), "%s", e.msg);
    /* corrupt gzip body */
    cat[n1 / 2] ^= 0x55;
    cat[n1 / 2 + 1] ^= 0x55;
    CHECK(cr_write_file_atomic(pc, cat, n1, &e) == 0);
    CHECK(tasks_load(pc, &ts, &n, &e) < 0);
    CHECKF(strstr(e.msg, "c.jsonl.gz") != NULL, "%s", e.msg);
    cJSON_free(line);
    free(code); free(b1); free(b2); free(cat); free(p1); free(p2); free(pc); free(d);
}
