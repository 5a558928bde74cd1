/* cli/cmd_tokenize.c — `crucible tokenize --tokenizer T.json [--decode]`:
 * stdin text -> JSON array of ids on stdout, or with --decode a JSON array of ids
 * -> the decoded text (ill-formed UTF-8 replaced by U+FFFD, like HF decode). */
#include "cli/command.h"
#include "core/alloc.h"
#include "core/args.h"
#include "data/tokenizer.h"
#include "data/utf8.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cmd_tokenize_summary[] = "encode stdin to a JSON array of token ids (or --decode ids to text)";

static char *read_stdin(size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = cr_malloc(cap);
    for (;;) {
        if (n + 1 >= cap) buf = cr_realloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n - 1, stdin);
        n += r;
        if (r == 0) {
            if (ferror(stdin)) { free(buf); return NULL; }
            break;
        }
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

static int decode_ids(const Tokenizer *t, const char *in, size_t len) {
    cJSON *arr = cJSON_ParseWithLength(in, len);
    if (!cJSON_IsArray(arr)) {
        fprintf(stderr, "crucible tokenize --decode: stdin: expected a JSON array of token ids\n");
        cJSON_Delete(arr);
        return 1;
    }
    int n = cJSON_GetArraySize(arr), i = 0;
    int32_t *ids = cr_malloc(sizeof(int32_t) * (size_t)(n + 1));
    const cJSON *it;
    cJSON_ArrayForEach(it, arr) {
        double d = cJSON_IsNumber(it) ? it->valuedouble : -1;
        if (!(d >= 0 && d < 2147483647.0) || d != (double)(long)d) {
            fprintf(stderr, "crucible tokenize --decode: stdin: element %d is not a non-negative integer id\n", i);
            free(ids);
            cJSON_Delete(arr);
            return 1;
        }
        ids[i++] = (int32_t)d;
    }
    cJSON_Delete(arr);
    size_t blen, slen;
    char *bytes = tokenizer_decode(t, ids, n, &blen);
    char *text = utf8_sanitize(bytes, blen, &slen);
    int rc = fwrite(text, 1, slen, stdout) == slen ? 0 : 1;
    free(text);
    free(bytes);
    free(ids);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    int decode = 0, no_special = 0;
    ArgSpec specs[] = {
        {"tokenizer", ARG_STR, &path, "tokenizer.json to use", 1},
        {"decode", ARG_BOOL, &decode, "read a JSON array of ids, print the text", 0},
        {"no-special", ARG_BOOL, &no_special, "treat special tokens in the text as plain text", 0},
        {NULL, 0, NULL, NULL, 0},
    };
    CrError e;
    int r = cr_args_parse("crucible tokenize --tokenizer T.json [--decode] < input", specs, argc, argv, NULL, NULL, &e);
    if (r == CR_ARGS_HELP) return 0;
    if (r) { fprintf(stderr, "crucible tokenize: %s\n", e.msg); return 2; }
    Tokenizer *t = tokenizer_load(path, &e);
    if (!t) { fprintf(stderr, "crucible tokenize: %s\n", e.msg); return 1; }
    size_t len;
    char *in = read_stdin(&len);
    if (!in) {
        fprintf(stderr, "crucible tokenize: reading stdin: %s\n", strerror(errno));
        tokenizer_free(t);
        return 1;
    }
    int rc = 0;
    if (decode) {
        rc = decode_ids(t, in, len);
    } else {
        int n;
        int32_t *ids = tokenizer_encode(t, in, len, !no_special, &n);
        /* ids fit in 10 digits plus a separator */
        char *out = cr_malloc((size_t)n * 12 + 4);
        size_t o = 0;
        out[o++] = '[';
        for (int i = 0; i < n; i++) o += (size_t)sprintf(out + o, i ? ",%d" : "%d", ids[i]);
        out[o++] = ']';
        out[o++] = '\n';
        rc = fwrite(out, 1, o, stdout) == o ? 0 : 1;
        free(out);
        free(ids);
    }
    if (fflush(stdout) != 0) rc = 1;
    free(in);
    tokenizer_free(t);
    return rc;
}
