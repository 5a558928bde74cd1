/* sandbox/result.c — verdict names, default limits, results and jobs to/from JSON. */
#include "sandbox/sandbox.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"

static const char *const k_names[VERDICT_COUNT] = { "OK", "WA", "CE", "RE", "TLE", "MLE", "OLE", "SV", "IE" };

const char *verdict_name(Verdict v) {
    return (unsigned)v < VERDICT_COUNT ? k_names[v] : "IE";
}

int verdict_from_name(const char *s, Verdict *v) {
    for (int i = 0; s && i < VERDICT_COUNT; i++)
        if (strcmp(s, k_names[i]) == 0) { *v = (Verdict)i; return 0; }
    return -1;
}

void sandbox_limits_default(SandboxLimits *l) {
    l->time_limit_s = 10.0;
    l->memory_limit_mb = 512;
    l->output_limit_bytes = 16L << 20;
}

void sandbox_result_free(SandboxResult *r) {
    if (!r) return;
    for (int i = 0; i < r->n_tests; i++) {
        free(r->tests[i].stdout_data);
        free(r->tests[i].stderr_data);
        free(r->tests[i].blocked_syscall);
    }
    free(r->tests);
    free(r->compile_output);
    memset(r, 0, sizeof *r);
}

/* ---- results ------------------------------------------------------------------ */

static cJSON *str_or_null(const char *s) { return s ? cJSON_CreateString(s) : cJSON_CreateNull(); }

char *sandbox_result_to_json(const SandboxResult *r) {
    cJSON *o = cJSON_CreateObject();
    CR_CHECK(o);
    cJSON_AddStringToObject(o, "verdict", verdict_name(r->verdict));
    cJSON_AddNumberToObject(o, "passed", r->passed);
    cJSON_AddNumberToObject(o, "total", r->total);
    cJSON_AddNumberToObject(o, "time_ms", (double)r->time_ms);
    cJSON_AddNumberToObject(o, "memory_kb", (double)r->memory_kb);
    if (r->compiled) {
        cJSON *c = cJSON_AddObjectToObject(o, "compile");
        cJSON_AddNumberToObject(c, "exit_code", r->compile_exit_code);
        cJSON_AddItemToObject(c, "output", str_or_null(r->compile_output ? r->compile_output : ""));
        cJSON_AddNumberToObject(c, "time_ms", (double)r->compile_time_ms);
    } else {
        cJSON_AddNullToObject(o, "compile");
    }
    cJSON *arr = cJSON_AddArrayToObject(o, "tests");
    for (int i = 0; i < r->n_tests; i++) {
        const SandboxTestResult *t = &r->tests[i];
        cJSON *x = cJSON_CreateObject();
        cJSON_AddStringToObject(x, "verdict", verdict_name(t->verdict));
        cJSON_AddNumberToObject(x, "exit_code", t->exit_code);
        cJSON_AddNumberToObject(x, "signal", t->signal);
        cJSON_AddNumberToObject(x, "time_ms", (double)t->time_ms);
        cJSON_AddNumberToObject(x, "wall_ms", (double)t->wall_ms);
        cJSON_AddNumberToObject(x, "memory_kb", (double)t->memory_kb);
        cJSON_AddItemToObject(x, "stdout", cJSON_CreateString(t->stdout_data ? t->stdout_data : ""));
        cJSON_AddItemToObject(x, "stderr", cJSON_CreateString(t->stderr_data ? t->stderr_data : ""));
        if (t->blocked_syscall) cJSON_AddStringToObject(x, "blocked_syscall", t->blocked_syscall);
        cJSON_AddItemToArray(arr, x);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    CR_CHECK(s);
    return s;
}

static int get_num(const cJSON *o, const char *k, double *v, CrError *e) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x)) return cr_error_set(e, "result JSON: field \"%s\" missing or not a number", k);
    *v = x->valuedouble;
    return 0;
}

static char *dup_str_field(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) ? cr_strdup(x->valuestring) : NULL;
}

int sandbox_result_from_json(const char *json, SandboxResult *out, CrError *e) {
    memset(out, 0, sizeof *out);
    cJSON *o = cJSON_Parse(json);
    if (!o) return cr_error_set(e, "result JSON: malformed");
    int rc = -1;
    double v = 0;
    const cJSON *vd = cJSON_GetObjectItemCaseSensitive(o, "verdict");
    if (!cJSON_IsString(vd) || verdict_from_name(vd->valuestring, &out->verdict) < 0) {
        cr_error_set(e, "result JSON: field \"verdict\" missing or unknown");
        goto done;
    }
    if (get_num(o, "passed", &v, e) < 0) goto done;
    out->passed = (int)v;
    if (get_num(o, "total", &v, e) < 0) goto done;
    out->total = (int)v;
    if (get_num(o, "time_ms", &v, e) < 0) goto done;
    out->time_ms = (long)v;
    if (get_num(o, "memory_kb", &v, e) < 0) goto done;
    out->memory_kb = (long)v;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "compile");
    if (cJSON_IsObject(c)) {
        out->compiled = 1;
        if (get_num(c, "exit_code", &v, e) < 0) goto done;
        out->compile_exit_code = (int)v;
        if (get_num(c, "time_ms", &v, e) < 0) goto done;
        out->compile_time_ms = (long)v;
        out->compile_output = dup_str_field(c, "output");
    }
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "tests");
    if (!cJSON_IsArray(arr)) { cr_error_set(e, "result JSON: field \"tests\" missing"); goto done; }
    int n = cJSON_GetArraySize(arr);
    out->tests = cr_calloc((size_t)(n > 0 ? n : 1), sizeof *out->tests);
    out->n_tests = n;
    for (int i = 0; i < n; i++) {
        const cJSON *x = cJSON_GetArrayItem(arr, i);
        SandboxTestResult *t = &out->tests[i];
        const cJSON *tv = cJSON_GetObjectItemCaseSensitive(x, "verdict");
        if (!cJSON_IsString(tv) || verdict_from_name(tv->valuestring, &t->verdict) < 0) {
            cr_error_set(e, "result JSON: tests[%d].verdict missing or unknown", i);
            goto done;
        }
        if (get_num(x, "exit_code", &v, e) < 0) goto done;
        t->exit_code = (int)v;
        if (get_num(x, "signal", &v, e) < 0) goto done;
        t->signal = (int)v;
        if (get_num(x, "time_ms", &v, e) < 0) goto done;
        t->time_ms = (long)v;
        if (get_num(x, "memory_kb", &v, e) < 0) goto done;
        t->memory_kb = (long)v;
        const cJSON *w = cJSON_GetObjectItemCaseSensitive(x, "wall_ms");
        t->wall_ms = cJSON_IsNumber(w) ? (long)w->valuedouble : 0;
        t->stdout_data = dup_str_field(x, "stdout");
        t->stderr_data = dup_str_field(x, "stderr");
        t->blocked_syscall = dup_str_field(x, "blocked_syscall");
    }
    rc = 0;
done:
    cJSON_Delete(o);
    if (rc < 0) sandbox_result_free(out);
    return rc;
}

/* ---- jobs ----------------------------------------------------------------------- */

/* A stdin as "stdin" (a JSON string), or as "stdin_hex" when it holds a NUL, which a JSON
 * string read by cJSON cannot carry. */
static void add_stdin(cJSON *o, const char *data, size_t len) {
    if (!data) { cJSON_AddNullToObject(o, "stdin"); return; }
    if (!len) len = strlen(data);
    if (!memchr(data, 0, len)) { cJSON_AddStringToObject(o, "stdin", data); return; }
    static const char k_hex[] = "0123456789abcdef";
    char *h = cr_malloc(2 * len + 1);
    for (size_t i = 0; i < len; i++) {
        h[2 * i] = k_hex[(unsigned char)data[i] >> 4];
        h[2 * i + 1] = k_hex[(unsigned char)data[i] & 15];
    }
    h[2 * len] = 0;
    cJSON_AddStringToObject(o, "stdin_hex", h);
    free(h);
}

static int hex_val(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* *data (malloc'd, NUL-terminated) and *len from "stdin_hex", else from "stdin" (len 0: a C
 * string), else NULL. */
static int get_stdin(const cJSON *o, const char **data, size_t *len, CrError *e) {
    *data = NULL;
    *len = 0;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(o, "stdin_hex");
    if (!h) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, "stdin");
        *data = cJSON_IsString(x) ? cr_strdup(x->valuestring) : NULL;
        return 0;
    }
    size_t n = cJSON_IsString(h) ? strlen(h->valuestring) : 1;
    if (n % 2) return cr_error_set(e, "job JSON: stdin_hex is not a string of hex digit pairs");
    char *d = cr_malloc(n / 2 + 1);
    for (size_t i = 0; i < n / 2; i++) {
        int a = hex_val(h->valuestring[2 * i]), b = hex_val(h->valuestring[2 * i + 1]);
        if (a < 0 || b < 0) {
            free(d);
            return cr_error_set(e, "job JSON: stdin_hex has a non-hex character at %zu", 2 * i);
        }
        d[i] = (char)(a << 4 | b);
    }
    d[n / 2] = 0;
    *data = d;
    *len = n / 2;
    return 0;
}

int sandbox_json_find_nul(const char *text, size_t len, size_t *line, size_t *col, char *key, size_t key_cap) {
    size_t ln = 1, line_start = 0;
    const char *last_key = NULL;
    size_t last_key_n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\n') { ln++; line_start = i + 1; continue; }
        if (text[i] != '"') continue;
        size_t start = ++i;  /* a string: escapes are taken whole, so \" never ends it */
        int has_nul = 0;
        size_t nul_line = 0, nul_col = 0;
        for (; i < len && text[i] != '"'; i++) {
            if (text[i] == '\n') { ln++; line_start = i + 1; }  /* invalid JSON, but count it */
            if (text[i] != '\\' || i + 1 >= len) continue;
            if (!has_nul && text[i + 1] == 'u' && i + 5 < len && !memcmp(text + i + 2, "0000", 4)) {
                has_nul = 1;
                nul_line = ln;
                nul_col = i - line_start + 1;
            }
            i++;
        }
        size_t end = i;  /* the closing quote (or len) */
        /* a key: the string is followed by ':' */
        size_t k = end + 1;
        while (k < len && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r' || text[k] == '\n')) k++;
        int is_key = k < len && text[k] == ':';
        if (has_nul) {
            *line = nul_line;
            *col = nul_col;
            const char *kp = is_key ? text + start : last_key;
            size_t kn = is_key ? end - start : last_key_n;
            if (key_cap) snprintf(key, key_cap, "%.*s", kp ? (int)kn : 0, kp ? kp : "");
            return 1;
        }
        if (is_key) { last_key = text + start; last_key_n = end - start; }
    }
    return 0;
}

char *sandbox_job_to_json(const SandboxJob *job) {
    cJSON *o = cJSON_CreateObject();
    CR_CHECK(o);
    cJSON_AddItemToObject(o, "lang", str_or_null(job->lang));
    cJSON_AddItemToObject(o, "source", str_or_null(job->source));
    if (job->n_tests > 0) {
        cJSON *arr = cJSON_AddArrayToObject(o, "tests");
        for (int i = 0; i < job->n_tests; i++) {
            cJSON *t = cJSON_CreateObject();
            add_stdin(t, job->tests[i].stdin_data, 0);
            cJSON_AddItemToObject(t, "stdout", str_or_null(job->tests[i].expected_stdout));
            cJSON_AddItemToArray(arr, t);
        }
    }
    if (job->test_code) cJSON_AddStringToObject(o, "test_code", job->test_code);
    if (job->entry_point) cJSON_AddStringToObject(o, "entry_point", job->entry_point);
    if (job->stdin_data) add_stdin(o, job->stdin_data, job->stdin_len);
    cJSON_AddNumberToObject(o, "time_limit", job->limits.time_limit_s);
    cJSON_AddNumberToObject(o, "memory_limit_mb", (double)job->limits.memory_limit_mb);
    cJSON_AddNumberToObject(o, "output_limit_bytes", (double)job->limits.output_limit_bytes);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    CR_CHECK(s);
    return s;
}

static const char *opt_str(const cJSON *o, const char *k) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) ? cr_strdup(x->valuestring) : NULL;
}

int sandbox_job_from_json(const char *json, SandboxJob *job, CrError *e) {
    memset(job, 0, sizeof *job);
    cJSON *o = cJSON_Parse(json);
    if (!o) return cr_error_set(e, "job JSON: malformed");
    job->lang = opt_str(o, "lang");
    job->source = opt_str(o, "source");
    job->test_code = opt_str(o, "test_code");
    job->entry_point = opt_str(o, "entry_point");
    int rc = get_stdin(o, &job->stdin_data, &job->stdin_len, e);
    const cJSON *x;
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "time_limit")) && cJSON_IsNumber(x)) job->limits.time_limit_s = x->valuedouble;
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "memory_limit_mb")) && cJSON_IsNumber(x)) job->limits.memory_limit_mb = (long)x->valuedouble;
    if ((x = cJSON_GetObjectItemCaseSensitive(o, "output_limit_bytes")) && cJSON_IsNumber(x)) job->limits.output_limit_bytes = (long)x->valuedouble;
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, "tests");
    if (rc == 0 && cJSON_IsArray(arr)) {
        int n = cJSON_GetArraySize(arr);
        SandboxTest *t = cr_calloc((size_t)(n > 0 ? n : 1), sizeof *t);
        for (int i = 0; i < n; i++) {
            const cJSON *it = cJSON_GetArrayItem(arr, i);
            if (!cJSON_IsObject(it)) { rc = cr_error_set(e, "job JSON: tests[%d] is not an object", i); break; }
            t[i].stdin_data = opt_str(it, "stdin");
            t[i].expected_stdout = opt_str(it, "stdout");
            if (!t[i].expected_stdout) { rc = cr_error_set(e, "job JSON: tests[%d].stdout missing", i); break; }
        }
        job->tests = t;
        job->n_tests = n;
    } else if (rc == 0 && arr) {
        rc = cr_error_set(e, "job JSON: \"tests\" is not an array");
    }
    cJSON_Delete(o);
    if (rc < 0) sandbox_job_free_parsed(job);
    return rc;
}

void sandbox_job_free_parsed(SandboxJob *job) {
    free((void *)job->lang);
    free((void *)job->source);
    free((void *)job->test_code);
    free((void *)job->entry_point);
    free((void *)job->stdin_data);
    for (int i = 0; i < job->n_tests; i++) {
        free((void *)job->tests[i].stdin_data);
        free((void *)job->tests[i].expected_stdout);
    }
    free((void *)job->tests);
    memset(job, 0, sizeof *job);
}
