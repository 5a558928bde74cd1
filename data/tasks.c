/* data/tasks.c — see tasks.h */
#include "data/tasks.h"
#include "data/jsonl.h"
#include "core/alloc.h"
#include "core/strbuf.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *task_format_name(TaskFormat f) {
    switch (f) {
    case TASK_FMT_CRUCIBLE: return "crucible";
    case TASK_FMT_HUMANEVAL: return "humaneval";
    case TASK_FMT_EVALPLUS: return "evalplus";
    case TASK_FMT_MBPP: return "mbpp";
    case TASK_FMT_APPS: return "apps";
    }
    return "?";
}

static void task_clear(Task *t) {
    free(t->id);
    free(t->language);
    free(t->prompt);
    for (int i = 0; i < t->n_tests; i++) {
        free(t->tests[i].stdin_text);
        free(t->tests[i].stdout_text);
    }
    free(t->tests);
    free(t->test_code);
    free(t->entry_point);
    free(t->solution);
    free(t->program_prefix);
    free(t->plus_input_json);
    memset(t, 0, sizeof *t);
}

void tasks_free(Task *tasks, int n) {
    if (!tasks) return;
    for (int i = 0; i < n; i++) task_clear(&tasks[i]);
    free(tasks);
}


static int has(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k) != NULL; }

static char *lower_dup(const char *s) {
    char *d = cr_strdup(s);
    for (char *p = d; *p; p++) *p = (char)tolower((unsigned char)*p);
    return d;
}

/* A no-op check() so that module-level asserts are judged like HumanEval's check(). */
static const char k_noop_check[] = "\n\ndef check(candidate):\n    pass\n";

static int ensure_check(char **test_code) {
    if (!*test_code || strstr(*test_code, "def check(")) return 0;
    CrBuf b = {0};
    cr_buf_puts(&b, *test_code);
    cr_buf_puts(&b, k_noop_check);
    free(*test_code);
    *test_code = b.p;
    return 0;
}

/* ---- stdin/stdout case lists ----------------------------------------------- */

/* A case value may be a string or an array of strings (lines, joined with "\n"). */
static int case_text(const JsonlIter *it, const cJSON *v, const char *where, const char *field,
                     char **out, CrError *e) {
    if (cJSON_IsString(v) && v->valuestring) {
        *out = cr_strdup(v->valuestring);
        return 0;
    }
    if (cJSON_IsArray(v)) {
        CrBuf b = {0};
        cr_buf_puts(&b, "");
        const cJSON *x;
        int k = 0;
        cJSON_ArrayForEach(x, v) {
            if (!cJSON_IsString(x) || !x->valuestring) {
                free(b.p);
                return jsonl_field_error(it, e, where, field, "element %d is not a string", k);
            }
            if (k++) cr_buf_puts(&b, "\n");
            cr_buf_puts(&b, x->valuestring);
        }
        *out = b.p;
        return 0;
    }
    return jsonl_field_error(it, e, where, field, "expected a string or an array of strings");
}

static int parse_tests_array(const JsonlIter *it, const cJSON *arr, Task *t, CrError *e) {
    if (!cJSON_IsArray(arr)) return jsonl_field_error(it, e, "", "tests", "expected an array");
    int n = cJSON_GetArraySize(arr);
    t->tests = cr_calloc((size_t)(n > 0 ? n : 1), sizeof(TaskTest));
    const cJSON *c;
    cJSON_ArrayForEach(c, arr) {
        char where[64];
        snprintf(where, sizeof where, "tests[%d]", t->n_tests);
        if (!cJSON_IsObject(c))
            return jsonl_field_error(it, e, "", where, "expected an object {\"stdin\",\"stdout\"}");
        TaskTest *tt = &t->tests[t->n_tests++];
        if (jsonl_str(it, c, where, "stdin", 0, &tt->stdin_text, e) < 0) return -1;
        if (!tt->stdin_text) tt->stdin_text = cr_strdup("");
        if (jsonl_str(it, c, where, "stdout", 1, &tt->stdout_text, e) < 0) return -1;
    }
    return 0;
}

/* ---- one parser per format ---------------------------------------------------- */

static int parse_crucible(const JsonlIter *it, const cJSON *o, Task *t, CrError *e) {
    char *lang = NULL;
    if (jsonl_str_or_num(it, o, "", "id", 1, &t->id, e) < 0) return -1;
    if (jsonl_str(it, o, "", "language", 1, &lang, e) < 0) return -1;
    t->language = lower_dup(lang);
    free(lang);
    if (!*t->language) return jsonl_field_error(it, e, "", "language", "empty");
    if (jsonl_str(it, o, "", "prompt", 1, &t->prompt, e) < 0) return -1;
    const cJSON *tests = cJSON_GetObjectItemCaseSensitive(o, "tests");
    if (tests && !cJSON_IsNull(tests) && parse_tests_array(it, tests, t, e) < 0) return -1;
    if (jsonl_str(it, o, "", "test_code", 0, &t->test_code, e) < 0) return -1;
    if (jsonl_str(it, o, "", "entry_point", 0, &t->entry_point, e) < 0) return -1;
    if (jsonl_str(it, o, "", "solution", 0, &t->solution, e) < 0) return -1;
    if (jsonl_str(it, o, "", "program_prefix", 0, &t->program_prefix, e) < 0) return -1;
    if (t->test_code && !t->entry_point)
        return jsonl_field_error(it, e, "", "entry_point", "missing (required with test_code)");
    return 0;
}

static int parse_humaneval(const JsonlIter *it, const cJSON *o, Task *t, CrError *e) {
    if (jsonl_str_or_num(it, o, "", "task_id", 1, &t->id, e) < 0) return -1;
    t->language = cr_strdup("python");
    if (jsonl_str(it, o, "", "prompt", 1, &t->prompt, e) < 0) return -1;
    if (jsonl_str(it, o, "", "test", 1, &t->test_code, e) < 0) return -1;
    if (jsonl_str(it, o, "", "entry_point", 1, &t->entry_point, e) < 0) return -1;
    if (jsonl_str(it, o, "", "canonical_solution", 0, &t->solution, e) < 0) return -1;
    t->program_prefix = cr_strdup(t->prompt);
    if (has(o, "plus_input") || has(o, "base_input")) {
        t->format = TASK_FMT_EVALPLUS;
        const cJSON *pi = cJSON_GetObjectItemCaseSensitive(o, "plus_input");
        if (pi) {
            char *js = cJSON_PrintUnformatted(pi);
            if (!js) CR_DIE("cJSON_PrintUnformatted: out of memory");
            t->plus_input_json = cr_strdup(js);
            cJSON_free(js);
        }
        ensure_check(&t->test_code);
    }
    return 0;
}

/* Name of the function called by the first assert: "assert  foo_bar(1) == 2" -> foo_bar. */
/* Python builtins an MBPP assert wraps around the call under test ("assert set(f(x)) ==
 * ..."); compared as whole identifiers, so "string_to_list" is not "str". */
static int is_wrapper(const char *p, size_t n) {
    static const char *const k[] = {"set", "sorted", "abs", "round", "str", "list", "tuple", "int", "float",
                                     "len", "min", "max", "sum", "any", "all", "dict", "frozenset", "bool",
                                     "repr", "type", "isinstance", "not", NULL};
    if (memchr(p, '.', n)) return 1;   /* math.isclose, np.allclose, ... */
    for (int i = 0; k[i]; i++)
        if (strlen(k[i]) == n && !memcmp(p, k[i], n)) return 1;
    return 0;
}

/* Does code define the function NAME ("def NAME(" at a line start, any indentation)? */
static int defines(const char *code, const char *name, size_t n) {
    for (const char *d = code ? strstr(code, "def ") : NULL; d; d = strstr(d + 4, "def ")) {
        const char *q = d + 4;
        while (*q == ' ') q++;
        if (!strncmp(q, name, n) && (q[n] == '(' || q[n] == ' ')) return 1;
    }
    return 0;
}

/* The function an MBPP assert tests: the first called identifier the reference code
 * defines; without one, the first call that is not a builtin wrapper. malloc'd or NULL. */
static char *assert_callee(const char *s, const char *code) {
    const char *p = strstr(s, "assert");
    if (!p) return NULL;
    const char *first = NULL;
    size_t first_n = 0;
    for (p += 6; *p;) {
        if (*p == '"' || *p == '\'') {            /* skip string literals */
            char qc = *p++;
            while (*p && *p != qc) p += (*p == '\\' && p[1]) ? 2 : 1;
            if (*p) p++;
            continue;
        }
        if (!(isalpha((unsigned char)*p) || *p == '_')) { p++; continue; }
        const char *q = p;
        while (isalnum((unsigned char)*q) || *q == '_' || *q == '.') q++;
        size_t n = (size_t)(q - p);
        const char *r = q;
        while (*r == ' ') r++;
        if (*r == '(' && !is_wrapper(p, n)) {
            if (defines(code, p, n)) { first = p; first_n = n; break; }
            if (!first) { first = p; first_n = n; if (!code || !*code) break; }
        }
        p = q;
    }
    if (!first) return NULL;
    char *out = cr_malloc(first_n + 1);
    memcpy(out, first, first_n);
    out[first_n] = 0;
    return out;
}

static int parse_mbpp(const JsonlIter *it, const cJSON *o, Task *t, CrError *e) {
    char *text = NULL, *setup = NULL, *imports_joined = NULL;
    char **tl = NULL, **imports = NULL;
    int ntl = 0, nimp = 0, rc = -1;
    CrBuf b = {0}, p = {0};
    if (jsonl_str_or_num(it, o, "", "task_id", 1, &t->id, e) < 0) goto out;
    t->language = cr_strdup("python");
    const char *text_field = has(o, "text") ? "text" : "prompt";
    if (jsonl_str(it, o, "", text_field, 1, &text, e) < 0) goto out;
    if (jsonl_str_array(it, o, "", "test_list", 1, &tl, &ntl, e) < 0) goto out;
    if (ntl == 0) { jsonl_field_error(it, e, "", "test_list", "empty"); goto out; }
    if (jsonl_str(it, o, "", "test_setup_code", 0, &setup, e) < 0) goto out;
    if (jsonl_str_array(it, o, "", "test_imports", 0, &imports, &nimp, e) < 0) goto out;
    if (jsonl_str(it, o, "", "code", 0, &t->solution, e) < 0) goto out;
    (void)imports_joined;
    cr_buf_puts(&p, text);
    cr_buf_puts(&p, "\nYour code should pass these tests:\n");
    for (int i = 0; i < ntl; i++) { cr_buf_puts(&p, tl[i]); cr_buf_puts(&p, "\n"); }
    t->prompt = p.p;
    p.p = NULL;
    cr_buf_puts(&b, "");
    for (int i = 0; i < nimp; i++) { cr_buf_puts(&b, imports[i]); cr_buf_puts(&b, "\n"); }
    if (setup && *setup) { cr_buf_puts(&b, setup); cr_buf_puts(&b, "\n"); }
    for (int i = 0; i < ntl; i++) { cr_buf_puts(&b, tl[i]); cr_buf_puts(&b, "\n"); }
    cr_buf_puts(&b, k_noop_check);
    t->test_code = b.p;
    b.p = NULL;
    t->entry_point = assert_callee(tl[0], t->solution);
    if (!t->entry_point) {
        jsonl_field_error(it, e, "", "test_list[0]", "cannot find the function called by the assert");
        goto out;
    }
    rc = 0;
out:
    free(text);
    free(setup);
    for (int i = 0; i < ntl; i++) free(tl[i]);
    free(tl);
    for (int i = 0; i < nimp; i++) free(imports[i]);
    free(imports);
    free(b.p);
    free(p.p);
    return rc;
}

/* Python test code for call-based APPS cases: the JSON is embedded as a JSON string
 * literal (also a valid Python string literal) and decoded at run time. */
static char *apps_call_test(const cJSON *io, const char *method) {
    char *js = cJSON_PrintUnformatted(io);
    if (!js) CR_DIE("cJSON_PrintUnformatted: out of memory");
    cJSON *s = cJSON_CreateString(js);
    cJSON_free(js);
    if (!s) CR_DIE("cJSON_CreateString: out of memory");
    char *lit = cJSON_PrintUnformatted(s);
    cJSON_Delete(s);
    if (!lit) CR_DIE("cJSON_PrintUnformatted: out of memory");
    CrBuf b = {0};
    cr_buf_puts(&b, "import json\n\n_IO = json.loads(");
    cr_buf_puts(&b, lit);
    cr_buf_puts(&b, ")\n\n\ndef check(candidate):\n");
    if (method) {
        /* LeetCode-style starter code: the entry point is the class; call a fresh
         * instance's method per case, as the APPS harness does */
        cr_buf_puts(&b, "    cls = candidate\n    for args, expected in zip(_IO['inputs'], _IO['outputs']):\n"
                        "        got = getattr(cls(), ");
        cJSON *m = cJSON_CreateString(method);
        char *ml = m ? cJSON_PrintUnformatted(m) : NULL;
        cJSON_Delete(m);
        if (!ml) CR_DIE("cJSON: out of memory");
        cr_buf_puts(&b, ml);
        cJSON_free(ml);
        cr_buf_puts(&b, ")(*args)\n");
    } else {
        cr_buf_puts(&b, "    for args, expected in zip(_IO['inputs'], _IO['outputs']):\n"
                        "        got = candidate(*args)\n");
    }
    cr_buf_puts(&b, "        if isinstance(got, tuple):\n"
                    "            got = list(got)\n"
                    "        assert got == expected or [got] == expected, (args, got, expected)\n");
    cJSON_free(lit);
    return b.p;
}

static int parse_apps(const JsonlIter *it, const cJSON *o, Task *t, CrError *e) {
    const char *idf = has(o, "problem_id") ? "problem_id" : has(o, "task_id") ? "task_id" : "id";
    if (jsonl_str_or_num(it, o, "", idf, 1, &t->id, e) < 0) return -1;
    const char *pf = has(o, "question") ? "question" : has(o, "description") ? "description" : "prompt";
    if (jsonl_str(it, o, "", pf, 1, &t->prompt, e) < 0) return -1;
    char *lang = NULL;
    if (jsonl_str(it, o, "", "language", 0, &lang, e) < 0) return -1;
    t->language = lower_dup(lang ? lang : "python");
    free(lang);
    const cJSON *io = cJSON_GetObjectItemCaseSensitive(o, "input_output");
    cJSON *parsed = NULL;
    if (cJSON_IsString(io) && io->valuestring) {
        parsed = cJSON_Parse(io->valuestring);
        if (!parsed)
            return jsonl_field_error(it, e, "", "input_output", "string does not hold valid JSON");
        io = parsed;
    }
    int rc = -1;
    if (!cJSON_IsObject(io)) {
        jsonl_field_error(it, e, "", "input_output", "expected an object {\"inputs\",\"outputs\"}");
        goto out;
    }
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(io, "inputs");
    const cJSON *outs = cJSON_GetObjectItemCaseSensitive(io, "outputs");
    if (!cJSON_IsArray(ins)) { jsonl_field_error(it, e, "input_output", "inputs", "expected an array"); goto out; }
    if (!cJSON_IsArray(outs)) { jsonl_field_error(it, e, "input_output", "outputs", "expected an array"); goto out; }
    int ni = cJSON_GetArraySize(ins), no = cJSON_GetArraySize(outs);
    if (ni != no) {
        jsonl_field_error(it, e, "", "input_output", "%d inputs but %d outputs", ni, no);
        goto out;
    }
    const cJSON *fn = cJSON_GetObjectItemCaseSensitive(io, "fn_name");
    if (fn && !cJSON_IsNull(fn)) {
        if (!cJSON_IsString(fn) || !fn->valuestring || !*fn->valuestring) {
            jsonl_field_error(it, e, "input_output", "fn_name", "expected a non-empty string");
            goto out;
        }
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "starter_code");
        int cls = cJSON_IsString(st) && st->valuestring && strstr(st->valuestring, "class Solution");
        t->entry_point = cr_strdup(cls ? "Solution" : fn->valuestring);
        t->test_code = apps_call_test(io, cls ? fn->valuestring : NULL);
    } else {
        t->tests = cr_calloc((size_t)(ni > 0 ? ni : 1), sizeof(TaskTest));
        for (int i = 0; i < ni; i++) {
            char fi[64], fo[64];
            snprintf(fi, sizeof fi, "inputs[%d]", i);
            snprintf(fo, sizeof fo, "outputs[%d]", i);
            TaskTest *tt = &t->tests[t->n_tests++];
            if (case_text(it, cJSON_GetArrayItem(ins, i), "input_output", fi, &tt->stdin_text, e) < 0) goto out;
            if (case_text(it, cJSON_GetArrayItem(outs, i), "input_output", fo, &tt->stdout_text, e) < 0) goto out;
        }
    }
    /* the starter code (a signature or a class to complete) is part of the problem */
    const cJSON *stc = cJSON_GetObjectItemCaseSensitive(o, "starter_code");
    if (cJSON_IsString(stc) && stc->valuestring && *stc->valuestring) {
        CrBuf pb = {0};
        cr_buf_puts(&pb, t->prompt);
        cr_buf_puts(&pb, "\n\n");
        cr_buf_puts(&pb, stc->valuestring);
        free(t->prompt);
        t->prompt = pb.p;
    }
    /* APPS stores solutions as a JSON string holding a list of programs. */
    const cJSON *sol = cJSON_GetObjectItemCaseSensitive(o, "solutions");
    cJSON *sp = NULL;
    if (cJSON_IsString(sol) && sol->valuestring) {
        sp = cJSON_Parse(sol->valuestring);
        sol = sp ? sp : sol;
    }
    if (cJSON_IsArray(sol) && cJSON_GetArraySize(sol) > 0) {
        const cJSON *s0 = cJSON_GetArrayItem(sol, 0);
        if (cJSON_IsString(s0) && s0->valuestring) t->solution = cr_strdup(s0->valuestring);
    } else if (cJSON_IsString(sol) && sol->valuestring) {
        t->solution = cr_strdup(sol->valuestring);
    }
    cJSON_Delete(sp);
    rc = 0;
out:
    cJSON_Delete(parsed);
    return rc;
}

static int parse_task(const JsonlIter *it, const cJSON *o, Task *t, CrError *e) {
    memset(t, 0, sizeof *t);
    t->line = it->line;
    int rc;
    if (has(o, "input_output")) {
        t->format = TASK_FMT_APPS;
        rc = parse_apps(it, o, t, e);
    } else if (has(o, "test_list")) {
        t->format = TASK_FMT_MBPP;
        rc = parse_mbpp(it, o, t, e);
    } else if (has(o, "task_id") && has(o, "test")) {
        t->format = TASK_FMT_HUMANEVAL;
        rc = parse_humaneval(it, o, t, e);
    } else if (has(o, "id") || has(o, "tests") || has(o, "test_code")) {
        t->format = TASK_FMT_CRUCIBLE;
        rc = parse_crucible(it, o, t, e);
    } else {
        rc = cr_error_set(e, "%s:%d: unknown task format: expected our fields (id, language, "
                          "prompt, tests|test_code), HumanEval (task_id, prompt, test, "
                          "entry_point), MBPP (task_id, text, test_list) or APPS (input_output)",
                          it->name, it->line);
    }
    if (rc == 0 && t->n_tests == 0 && !t->test_code)
        rc = cr_error_set(e, "%s:%d: task '%s' has no tests (neither 'tests' nor 'test_code')",
                          it->name, it->line, t->id);
    if (rc < 0) task_clear(t);
    return rc;
}

/* Open-addressing set of ids for the duplicate check (index into tasks + 1; 0 = empty). */
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static int check_duplicates(const char *name, const Task *ts, int n, CrError *e) {
    size_t cap = 16;
    while (cap < (size_t)n * 2) cap *= 2;
    int *slot = cr_calloc(cap, sizeof(int));
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        size_t h = (size_t)hash_str(ts[i].id) & (cap - 1);
        while (slot[h]) {
            const Task *o = &ts[slot[h] - 1];
            if (strcmp(o->id, ts[i].id) == 0) {
                rc = cr_error_set(e, "%s:%d: duplicate task id '%s' (first seen on line %d)", name,
                                  ts[i].line, ts[i].id, o->line);
                break;
            }
            h = (h + 1) & (cap - 1);
        }
        if (rc == 0) slot[h] = i + 1;
    }
    free(slot);
    return rc;
}

int tasks_parse(const char *buf, size_t len, const char *name, Task **out, int *n, CrError *e) {
    *out = NULL;
    *n = 0;
    JsonlIter it;
    jsonl_iter_init(&it, buf, len, name);
    int cap = 16, cnt = 0;
    Task *ts = cr_malloc(sizeof(Task) * (size_t)cap);
    for (;;) {
        cJSON *o = NULL;
        int r = jsonl_next(&it, &o, e);
        if (r == 0) break;
        if (r < 0) { tasks_free(ts, cnt); return -1; }
        if (cnt == cap) {
            cap *= 2;
            ts = cr_realloc(ts, sizeof(Task) * (size_t)cap);
        }
        r = parse_task(&it, o, &ts[cnt], e);
        cJSON_Delete(o);
        if (r < 0) { tasks_free(ts, cnt); return -1; }
        cnt++;
    }
    if (cnt == 0) {
        free(ts);
        return cr_error_set(e, "%s: no tasks in file", it.name);
    }
    if (check_duplicates(it.name, ts, cnt, e) < 0) { tasks_free(ts, cnt); return -1; }
    *out = ts;
    *n = cnt;
    return 0;
}

int tasks_load(const char *path, Task **out, int *n, CrError *e) {
    size_t len;
    char *buf = jsonl_read(path, &len, e);
    if (!buf) return -1;
    int rc = tasks_parse(buf, len, path, out, n, e);
    free(buf);
    return rc;
}
