/* data/jsonl.c — see jsonl.h */
#include "data/jsonl.h"
#include "core/alloc.h"
#include "core/file.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Inflate a gzip buffer (possibly several concatenated members, as `cat a.gz b.gz`
 * produces) into a NUL-terminated malloc'd buffer. */
static char *gunzip(const char *path, const unsigned char *in, size_t n_in, size_t *len, CrError *e) {
    if (n_in > UINT_MAX) {
        cr_error_set(e, "%s: gzip file larger than 4 GiB is not supported", path);
        return NULL;
    }
    z_stream z;
    memset(&z, 0, sizeof z);
    if (inflateInit2(&z, 15 + 16) != Z_OK) {
        cr_error_set(e, "%s: zlib init failed", path);
        return NULL;
    }
    z.next_in = (unsigned char *)in;
    z.avail_in = (uInt)n_in;
    size_t cap = n_in * 4 + 65536, n = 0;
    char *out = cr_malloc(cap);
    const char *why = NULL;
    for (;;) {
        if (cap - n < 65536) {
            cap *= 2;
            out = cr_realloc(out, cap);
        }
        size_t room = cap - n - 1 < UINT_MAX ? cap - n - 1 : UINT_MAX;
        z.next_out = (unsigned char *)out + n;
        z.avail_out = (uInt)room;
        int rc = inflate(&z, Z_NO_FLUSH);
        n += room - z.avail_out;
        if (rc == Z_STREAM_END) {
            if (z.avail_in == 0) break;
            /* another gzip member follows (as `cat a.gz b.gz` makes) */
            if (inflateReset(&z) != Z_OK) { why = "inflateReset failed"; goto fail; }
            continue;
        }
        if (rc == Z_BUF_ERROR || (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0)) {
            if (z.avail_in == 0) { why = "truncated gzip stream"; goto fail; }
            continue;
        }
        if (rc != Z_OK) { why = z.msg ? z.msg : "corrupt gzip data"; goto fail; }
    }
    inflateEnd(&z);
    out[n] = 0;
    *len = n;
    return out;
fail:
    cr_error_set(e, "%s: %s (after %zu decompressed bytes)", path, why, n);
    inflateEnd(&z);
    free(out);
    return NULL;
}

char *jsonl_read(const char *path, size_t *len, CrError *e) {
    size_t n;
    char *raw = cr_read_file(path, &n, e);
    if (!raw) return NULL;
    if (n >= 2 && (unsigned char)raw[0] == 0x1f && (unsigned char)raw[1] == 0x8b) {
        size_t m = 0;
        char *out = gunzip(path, (const unsigned char *)raw, n, &m, e);
        free(raw);
        if (!out) return NULL;
        *len = m;
        return out;
    }
    *len = n;
    return raw;
}

void jsonl_iter_init(JsonlIter *it, const char *buf, size_t len, const char *name) {
    it->buf = buf;
    it->len = len;
    it->pos = 0;
    it->name = name ? name : "<input>";
    it->line = 0;
}

/* Column (1-based) of a \u0000 escape in s[0..m) — a backslash preceded by an even number
 * of backslashes, then u0000 —, or 0. cJSON decodes it into a NUL inside a C string,
 * which would silently end the text there (a prompt "a\u0000b" became "a"). */
static size_t nul_escape_col(const char *s, size_t m) {
    for (size_t i = 0; i + 6 <= m; i++) {
        if (s[i] != '\\') continue;
        size_t run = 1;
        while (i + run < m && s[i + run] == '\\') run++;
        /* the backslashes i .. i+run-1 pair up; an odd run ends in an escape */
        size_t last = i + run - 1;
        if (run % 2 == 1 && last + 6 <= m && s[last + 1] == 'u' && !memcmp(s + last + 2, "0000", 4)) return last + 1;
        i = last;
    }
    return 0;
}

int jsonl_next(JsonlIter *it, cJSON **obj, CrError *e) {
    *obj = NULL;
    while (it->pos < it->len) {
        const char *s = it->buf + it->pos;
        const char *nl = memchr(s, '\n', it->len - it->pos);
        size_t n = nl ? (size_t)(nl - s) : it->len - it->pos;
        it->pos += n + (nl ? 1 : 0);
        it->line++;
        size_t m = n;
        if (m && s[m - 1] == '\r') m--;
        size_t k = 0;
        while (k < m && (s[k] == ' ' || s[k] == '\t')) k++;
        if (k == m) continue; /* blank line */
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(s, m, &end, 0);
        if (!j) {
            size_t col = end && end >= s && end <= s + m ? (size_t)(end - s) + 1 : 1;
            return cr_error_set(e, "%s:%d: invalid JSON at column %zu", it->name, it->line, col);
        }
        /* trailing garbage after the value */
        if (end) {
            const char *p = end;
            while (p < s + m && (*p == ' ' || *p == '\t')) p++;
            if (p < s + m) {
                cJSON_Delete(j);
                return cr_error_set(e, "%s:%d: unexpected text after the JSON value at column %zu",
                                    it->name, it->line, (size_t)(p - s) + 1);
            }
        }
        if (!cJSON_IsObject(j)) {
            cJSON_Delete(j);
            return cr_error_set(e, "%s:%d: expected a JSON object", it->name, it->line);
        }
        size_t nul = nul_escape_col(s, m);
        if (nul) {
            cJSON_Delete(j);
            return cr_error_set(e, "%s:%d: a NUL character (\\u0000) at column %zu: text with NUL is not supported",
                                it->name, it->line, nul);
        }
        *obj = j;
        return 1;
    }
    return 0;
}

int jsonl_field_error(const JsonlIter *it, CrError *e, const char *where, const char *field,
                      const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return cr_error_set(e, "%s:%d: field '%s%s%s': %s", it->name, it->line, where ? where : "",
                        where && *where ? "." : "", field, msg);
}

static const char *type_name(const cJSON *j) {
    if (cJSON_IsString(j)) return "a string";
    if (cJSON_IsNumber(j)) return "a number";
    if (cJSON_IsBool(j)) return "a boolean";
    if (cJSON_IsNull(j)) return "null";
    if (cJSON_IsArray(j)) return "an array";
    if (cJSON_IsObject(j)) return "an object";
    return "invalid";
}

int jsonl_str(const JsonlIter *it, const cJSON *obj, const char *where, const char *field,
              int required, char **out, CrError *e) {
    *out = NULL;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!f || cJSON_IsNull(f)) {
        if (required) return jsonl_field_error(it, e, where, field, "missing");
        return 0;
    }
    if (!cJSON_IsString(f) || !f->valuestring)
        return jsonl_field_error(it, e, where, field, "expected a string, got %s", type_name(f));
    *out = cr_strdup(f->valuestring);
    return 0;
}

int jsonl_str_or_num(const JsonlIter *it, const cJSON *obj, const char *where,
                     const char *field, int required, char **out, CrError *e) {
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (f && cJSON_IsNumber(f)) {
        char tmp[64];
        double v = f->valuedouble;
        if (v > -9.0e18 && v < 9.0e18 && v == (double)(long long)v) snprintf(tmp, sizeof tmp, "%lld", (long long)v);
        else snprintf(tmp, sizeof tmp, "%.17g", v);
        *out = cr_strdup(tmp);
        return 0;
    }
    return jsonl_str(it, obj, where, field, required, out, e);
}

int jsonl_str_array(const JsonlIter *it, const cJSON *obj, const char *where, const char *field,
                    int required, char ***out, int *n, CrError *e) {
    *out = NULL;
    *n = 0;
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(obj, field);
    if (!f || cJSON_IsNull(f)) {
        if (required) return jsonl_field_error(it, e, where, field, "missing");
        return 0;
    }
    if (!cJSON_IsArray(f))
        return jsonl_field_error(it, e, where, field, "expected an array of strings, got %s",
                                 type_name(f));
    int cnt = cJSON_GetArraySize(f);
    char **v = cr_calloc((size_t)(cnt > 0 ? cnt : 1), sizeof(char *));
    int i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, f) {
        if (!cJSON_IsString(x) || !x->valuestring) {
            for (int k = 0; k < i; k++) free(v[k]);
            free(v);
            char name[256];
            snprintf(name, sizeof name, "%s[%d]", field, i);
            return jsonl_field_error(it, e, where, name, "expected a string, got %s", type_name(x));
        }
        v[i++] = cr_strdup(x->valuestring);
    }
    *out = v;
    *n = i;
    return 0;
}
