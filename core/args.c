/* core/args.c — see args.h */
#include "core/args.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/json.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const ArgSpec *find_spec(const ArgSpec *specs, const char *name, size_t len) {
    for (const ArgSpec *s = specs; s->name; s++)
        if (strlen(s->name) == len && strncmp(s->name, name, len) == 0) return s;
    return NULL;
}

static void list_push(CrStrList *l, const char *v) {
    l->items = cr_realloc((void *)l->items, sizeof(char *) * (size_t)(l->n + 1));
    l->items[l->n++] = v;
}

static int set_value(const ArgSpec *s, const char *val, const char *where, CrError *e) {
    char *end = NULL;
    switch (s->type) {
    case ARG_STR:
        *(const char **)s->dest = val;
        return 0;
    case ARG_STR_LIST:
        list_push((CrStrList *)s->dest, val);
        return 0;
    case ARG_INT: {
        errno = 0;
        long v = strtol(val, &end, 10);
        if (errno || end == val || *end)
            return cr_error_set(e, "%s --%s: expected an integer, got '%s'", where, s->name, val);
        *(long *)s->dest = v;
        return 0;
    }
    case ARG_FLOAT: {
        errno = 0;
        double v = strtod(val, &end);
        if (errno || end == val || *end || !isfinite(v))
            return cr_error_set(e, "%s --%s: expected a number, got '%s'", where, s->name, val);
        *(double *)s->dest = v;
        return 0;
    }
    case ARG_BOOL:
        if (!strcmp(val, "true") || !strcmp(val, "1")) *(int *)s->dest = 1;
        else if (!strcmp(val, "false") || !strcmp(val, "0")) *(int *)s->dest = 0;
        else return cr_error_set(e, "%s --%s: expected true or false, got '%s'", where, s->name, val);
        return 0;
    }
    return cr_error_set(e, "internal: bad arg type");
}

static int apply_config(const char *path, const ArgSpec *specs, CrError *e) {
    cJSON *root = cr_json_load_object(path, e);
    if (!root) return -1;
    /* The tree is kept alive on purpose: ARG_STR values point into it. */
    for (cJSON *it = root->child; it; it = it->next) {
        const ArgSpec *s = find_spec(specs, it->string, strlen(it->string));
        if (!s || !strcmp(it->string, "config"))
            return cr_error_set(e, "%s: unknown key \"%s\"", path, it->string);
        char where[512];
        snprintf(where, sizeof where, "%s: key", path);
        if (s->type == ARG_STR_LIST && cJSON_IsArray(it)) {
            for (cJSON *x = it->child; x; x = x->next) {
                if (!cJSON_IsString(x))
                    return cr_error_set(e, "%s: key \"%s\": array items must be strings", path, it->string);
                list_push((CrStrList *)s->dest, x->valuestring);
            }
            continue;
        }
        if (cJSON_IsString(it)) {
            if (set_value(s, it->valuestring, where, e)) return -1;
        } else if (cJSON_IsBool(it)) {
            if (s->type != ARG_BOOL)
                return cr_error_set(e, "%s: key \"%s\": a boolean is not valid here", path, it->string);
            *(int *)s->dest = cJSON_IsTrue(it);
        } else if (cJSON_IsNumber(it)) {
            if (s->type == ARG_INT) {
                double d = it->valuedouble;
                if (d != floor(d) || fabs(d) > 9e15)
                    return cr_error_set(e, "%s: key \"%s\": expected an integer", path, it->string);
                *(long *)s->dest = (long)d;
            } else if (s->type == ARG_FLOAT) {
                *(double *)s->dest = it->valuedouble;
            } else if (s->type == ARG_BOOL) {
                *(int *)s->dest = it->valuedouble != 0;
            } else {
                return cr_error_set(e, "%s: key \"%s\": expected a string", path, it->string);
            }
        } else {
            return cr_error_set(e, "%s: key \"%s\": unsupported value type", path, it->string);
        }
    }
    return 0;
}

void cr_args_usage(const char *usage_line, const ArgSpec *specs) {
    fprintf(stderr, "usage: %s\n", usage_line);
    fprintf(stderr, "  --config FILE.json  keys equal the long flags; flags override the file\n");
    for (const ArgSpec *s = specs; s->name; s++) {
        const char *t = s->type == ARG_INT ? "N" : s->type == ARG_FLOAT ? "X"
                      : s->type == ARG_BOOL ? "" : "S";
        fprintf(stderr, "  --%s %s%*s%s%s\n", s->name, t, (int)(18 - strlen(s->name) - strlen(t)) > 0
                ? (int)(18 - strlen(s->name) - strlen(t)) : 1, "", s->help ? s->help : "",
                s->required ? " (required)" : "");
    }
}

int cr_args_parse(const char *usage_line, const ArgSpec *specs, int argc, char **argv,
                  const char ***pos, int *npos, CrError *e) {
    /* Pass 1: --help and --config. */
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            cr_args_usage(usage_line, specs);
            return CR_ARGS_HELP;
        }
    }
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        const char *cfg = NULL;
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) return cr_error_set(e, "--config: missing value");
            cfg = argv[++i];
        } else if (!strncmp(argv[i], "--config=", 9)) {
            cfg = argv[i] + 9;
        }
        if (cfg && apply_config(cfg, specs, e)) return -1;
    }
    /* Pass 2: flags override. Lists given on the command line replace config lists. */
    int *list_reset = cr_calloc(256, sizeof(int));
    const char **p = NULL;
    int np = 0, only_pos = 0, rc = 0;
    for (int i = 0; i < argc && rc == 0; i++) {
        const char *a = argv[i];
        if (only_pos || a[0] != '-' || a[1] == 0) {
            p = cr_realloc(p, sizeof(char *) * (size_t)(np + 1));
            p[np++] = a;
            continue;
        }
        if (!strcmp(a, "--")) { only_pos = 1; continue; }
        if (!strcmp(a, "--config")) { i++; continue; }
        if (!strncmp(a, "--config=", 9)) continue;
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const ArgSpec *s = find_spec(specs, name, nlen);
        if (!s && nlen == 1 && a[1] != '-') {
            /* single-letter alias: -n -> the first spec whose name is "n" */
            s = find_spec(specs, name, 1);
        }
        if (!s) {
            rc = cr_error_set(e, "unknown flag '%.*s' (see --help)", (int)(nlen + (name - a)), a);
            break;
        }
        const char *val;
        if (eq) val = eq + 1;
        else if (s->type == ARG_BOOL) val = "true";
        else if (i + 1 < argc) val = argv[++i];
        else { rc = cr_error_set(e, "--%s: missing value", s->name); break; }
        int idx = (int)(s - specs);
        if (s->type == ARG_STR_LIST && idx < 256 && !list_reset[idx]) {
            ((CrStrList *)s->dest)->n = 0;
            list_reset[idx] = 1;
        }
        rc = set_value(s, val, "flag", e);
    }
    free(list_reset);
    if (rc == 0) {
        for (const ArgSpec *s = specs; s->name; s++) {
            if (!s->required) continue;
            int missing = (s->type == ARG_STR && !*(const char **)s->dest) ||
                          (s->type == ARG_STR_LIST && ((CrStrList *)s->dest)->n == 0);
            if (missing) { rc = cr_error_set(e, "--%s is required (see --help)", s->name); break; }
        }
    }
    if (rc == 0 && !npos && np > 0)
        rc = cr_error_set(e, "unexpected argument '%s' (see --help)", p[0]);
    if (rc != 0) { free(p); return -1; }
    if (pos) *pos = p; else free(p);
    if (npos) *npos = np;
    return 0;
}

char *cr_args_to_json(const ArgSpec *specs) {
    cJSON *o = cJSON_CreateObject();
    if (!o) CR_DIE("out of memory");
    for (const ArgSpec *s = specs; s->name; s++) {
        switch (s->type) {
        case ARG_STR: {
            const char *v = *(const char **)s->dest;
            if (v) cJSON_AddStringToObject(o, s->name, v); else cJSON_AddNullToObject(o, s->name);
            break;
        }
        case ARG_INT: cJSON_AddNumberToObject(o, s->name, (double)*(long *)s->dest); break;
        case ARG_FLOAT: cJSON_AddNumberToObject(o, s->name, *(double *)s->dest); break;
        case ARG_BOOL: cJSON_AddBoolToObject(o, s->name, *(int *)s->dest); break;
        case ARG_STR_LIST: {
            const CrStrList *l = s->dest;
            cJSON *a = cJSON_AddArrayToObject(o, s->name);
            for (int i = 0; i < l->n; i++) cJSON_AddItemToArray(a, cJSON_CreateString(l->items[i]));
            break;
        }
        }
    }
    char *txt = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!txt) CR_DIE("out of memory");
    char *r = cr_strdup(txt);
    cJSON_free(txt);
    return r;
}
