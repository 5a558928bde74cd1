/* reward/format_reward.c — fence scanner, language aliases, extraction rules. */
#include "reward/format_reward.h"
#include "core/alloc.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const aliases[][7] = {
    {"python", "python", "py", "python3", NULL},
    {"c", "c", "h", NULL},
    {"cpp", "cpp", "c++", "cc", "cxx", "hpp", NULL},
    {"javascript", "javascript", "js", "node", NULL},
    {"typescript", "typescript", "ts", NULL},
    {"rust", "rust", "rs", NULL},
    {"go", "go", "golang", NULL},
    {"bash", "bash", "sh", "shell", NULL},
};

int reward_lang_matches(const char *lang, const char *tag) {
    if (!lang || !tag || !*tag) return 0;
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++) {
        int is_lang = !strcasecmp(lang, aliases[i][0]) || (!strcasecmp(lang, "c++") && i == 2) ||
                      (!strcasecmp(lang, "python3") && i == 0);
        if (!is_lang) continue;
        for (int k = 1; aliases[i][k]; k++)
            if (!strcasecmp(tag, aliases[i][k])) return 1;
        return 0;
    }
    return !strcasecmp(lang, tag);
}

/* If the line at p is a fence, return its backtick count and set *info to the text after them. */
static int fence_at(const char *p, const char *eol, const char **info) {
    int ind = 0;
    while (p < eol && *p == ' ' && ind < 4) { p++; ind++; }
    if (ind > 3) return 0;
    int n = 0;
    while (p + n < eol && p[n] == '`') n++;
    if (n < 3) return 0;
    *info = p + n;
    return n;
}

static int blank(const char *p, const char *eol) {
    for (; p < eol; p++) if (!isspace((unsigned char)*p)) return 0;
    return 1;
}

int reward_find_fences(const char *text, CodeFence *out, int max) {
    int count = 0;
    const char *p = text;
    while (*p) {
        const char *eol = strchr(p, '\n');
        if (!eol) eol = p + strlen(p);
        const char *info;
        int ticks = fence_at(p, eol, &info);
        const char *next = *eol ? eol + 1 : eol;
        /* an info string with a backtick is inline code (```x```), not a fence (CommonMark) */
        if (!ticks || memchr(info, '`', (size_t)(eol - info))) { p = next; continue; }
        CodeFence f = {.start = (size_t)(next - text), .len = 0, .lang = "", .closed = 0};
        while (info < eol && isspace((unsigned char)*info)) info++;
        size_t k = 0;
        while (info < eol && !isspace((unsigned char)*info) && *info != '{' && *info != '`' && k + 1 < sizeof f.lang)
            f.lang[k++] = (char)tolower((unsigned char)*info++);
        f.lang[k] = 0;
        /* scan for the closing fence */
        const char *q = next;
        while (*q) {
            const char *qe = strchr(q, '\n');
            if (!qe) qe = q + strlen(q);
            const char *qi;
            int qt = fence_at(q, qe, &qi);
            if (qt >= ticks && blank(qi, qe)) {
                f.len = (size_t)(q - next);
                f.closed = 1;
                q = *qe ? qe + 1 : qe;
                break;
            }
            q = *qe ? qe + 1 : qe;
        }
        if (!f.closed) f.len = strlen(next);
        if (count < max) out[count] = f;
        count++;
        p = q;
    }
    return count;
}

char *reward_extract_code(const char *completion, const char *lang, CodePick pick, CodeSource *src) {
    int n = reward_find_fences(completion, NULL, 0);
    CodeFence *f = n ? cr_malloc((size_t)n * sizeof *f) : NULL;
    reward_find_fences(completion, f, n);
    int best = -1;
    CodeSource how = CODE_FROM_RAW;
    for (int rule = 0; rule < 3 && best < 0; rule++)
        for (int k = 0; k < n; k++) {
            int i = pick == CODE_LAST ? n - 1 - k : k;
            int tagged = reward_lang_matches(lang, f[i].lang), plain = f[i].lang[0] == 0;
            int ok = rule == 0 ? (f[i].closed && tagged) : rule == 1 ? (f[i].closed && plain)
                                                                     : (!f[i].closed && (tagged || plain));
            if (ok) { best = i; how = (CodeSource)rule; break; }
        }
    char *code;
    if (best >= 0) {
        code = cr_malloc(f[best].len + 1);
        memcpy(code, completion + f[best].start, f[best].len);
        code[f[best].len] = 0;
    } else code = cr_strdup(completion);
    free(f);
    if (src) *src = how;
    return code;
}

double reward_format(const char *completion, const char *lang) {
    int n = reward_find_fences(completion, NULL, 0);
    if (n == 0) return 0.0;
    CodeFence *f = cr_malloc((size_t)n * sizeof *f);
    reward_find_fences(completion, f, n);
    double r = 0.0;
    for (int i = 0; i < n; i++)
        if (f[i].closed && reward_lang_matches(lang, f[i].lang)) r = 1.0;
    free(f);
    return r;
}
