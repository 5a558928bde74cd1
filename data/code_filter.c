/* data/code_filter.c — see code_filter.h */
#include "data/code_filter.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

typedef struct { const char *ext, *lang; } ExtLang;
static const ExtLang k_ext[] = {
    {"c", "c"}, {"h", "c"}, {"cc", "cpp"}, {"cpp", "cpp"}, {"cxx", "cpp"}, {"hpp", "cpp"},
    {"hh", "cpp"}, {"hxx", "cpp"}, {"cu", "cuda"}, {"cuh", "cuda"}, {"py", "python"},
    {"pyi", "python"}, {"java", "java"}, {"js", "javascript"}, {"mjs", "javascript"},
    {"cjs", "javascript"}, {"jsx", "javascript"}, {"ts", "typescript"}, {"tsx", "typescript"},
    {"go", "go"}, {"rs", "rust"}, {"rb", "ruby"}, {"php", "php"}, {"cs", "csharp"},
    {"kt", "kotlin"}, {"kts", "kotlin"}, {"swift", "swift"}, {"scala", "scala"}, {"lua", "lua"},
    {"pl", "perl"}, {"pm", "perl"}, {"hs", "haskell"}, {"jl", "julia"}, {"r", "r"},
    {"m", "objective-c"}, {"mm", "objective-cpp"}, {"sh", "shell"}, {"bash", "shell"},
    {"zsh", "shell"}, {"sql", "sql"}, {"html", "html"}, {"htm", "html"}, {"css", "css"},
    {"scss", "css"}, {"json", "json"}, {"yaml", "yaml"}, {"yml", "yaml"}, {"toml", "toml"},
    {"xml", "xml"}, {"md", "markdown"}, {"tex", "tex"}, {"f90", "fortran"}, {"f", "fortran"},
    {"zig", "zig"}, {"dart", "dart"}, {"ex", "elixir"}, {"exs", "elixir"}, {"erl", "erlang"},
    {"ml", "ocaml"}, {"clj", "clojure"}, {"vue", "vue"}, {"cmake", "cmake"}, {"asm", "assembly"},
    {"s", "assembly"},
};

const char *code_language(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if (strcmp(base, "Makefile") == 0 || strcmp(base, "makefile") == 0 || strcmp(base, "GNUmakefile") == 0)
        return "makefile";
    if (strcmp(base, "Dockerfile") == 0) return "dockerfile";
    if (strcmp(base, "CMakeLists.txt") == 0) return "cmake";
    const char *dot = strrchr(base, '.');
    if (!dot || dot == base) return NULL;
    for (size_t i = 0; i < sizeof k_ext / sizeof k_ext[0]; i++)
        if (strcasecmp(dot + 1, k_ext[i].ext) == 0) return k_ext[i].lang;
    return NULL;
}

/* 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
static int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        int k;
        unsigned min;
        if ((c & 0xE0) == 0xC0) { k = 1; min = 0x80; c &= 0x1F; }
        else if ((c & 0xF0) == 0xE0) { k = 2; min = 0x800; c &= 0x0F; }
        else if ((c & 0xF8) == 0xF0) { k = 3; min = 0x10000; c &= 0x07; }
        else return 0;
        for (int j = 1; j <= k; j++) {
            if (i + (size_t)j >= n || (s[i + (size_t)j] & 0xC0) != 0x80) return 0;
            c = (c << 6) | (s[i + (size_t)j] & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

/* Characters outside tags, <script> and <style> that are not white space. */
static size_t html_visible(const char *s, size_t n) {
    size_t vis = 0;
    for (size_t i = 0; i < n;) {
        if (s[i] == '<') {
            const char *end_tag = NULL;
            if (n - i > 7 && strncasecmp(s + i, "<script", 7) == 0) end_tag = "</script";
            else if (n - i > 6 && strncasecmp(s + i, "<style", 6) == 0) end_tag = "</style";
            else if (n - i > 4 && strncmp(s + i, "<!--", 4) == 0) end_tag = "-->";
            if (end_tag) {
                size_t L = strlen(end_tag), j = i + 1;
                while (j + L <= n && strncasecmp(s + j, end_tag, L) != 0) j++;
                i = j + L <= n ? j + L : n;
            }
            while (i < n && s[i] != '>') i++;
            i++;
            continue;
        }
        unsigned char c = (unsigned char)s[i++];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r') vis++;
    }
    return vis;
}

const char *code_filter(const char *language, const char *text, size_t len) {
    static _Thread_local char why[128];
    if (len == 0) return "empty file";
    if (memchr(text, 0, len)) return "binary (NUL byte)";
    if (!utf8_valid((const unsigned char *)text, len)) return "not valid UTF-8";
    size_t lines = 0, cur = 0, max_line = 0, alpha = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\n') {
            lines++;
            if (cur > max_line) max_line = cur;
            cur = 0;
            continue;
        }
        cur++;
        alpha += (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    }
    if (cur > 0) { lines++; if (cur > max_line) max_line = cur; }
    /* line length counts bytes without the newline; average over lines */
    double avg = (double)(len - (lines - (cur > 0 ? 1 : 0))) / (double)lines;
    if (max_line > 1000) { snprintf(why, sizeof why, "max line length %zu > 1000", max_line); return why; }
    if (avg > 100) { snprintf(why, sizeof why, "average line length %.1f > 100", avg); return why; }
    if ((double)alpha < 0.25 * (double)len) {
        snprintf(why, sizeof why, "alphabetic fraction %.3f < 0.25", (double)alpha / (double)len);
        return why;
    }
    if (language && strcmp(language, "html") == 0) {
        size_t vis = html_visible(text, len);
        if ((double)vis < 0.2 * (double)len || vis < 100) {
            snprintf(why, sizeof why, "html visible text %zu chars (%.3f) < 20%% or < 100", vis, (double)vis / (double)len);
            return why;
        }
    }
    if (language && (strcmp(language, "json") == 0 || strcmp(language, "yaml") == 0)) {
        if (len < 50 || len > 5000) { snprintf(why, sizeof why, "%s size %zu outside [50, 5000]", language, len); return why; }
    }
    return NULL;
}
