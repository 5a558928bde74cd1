/* tests/data/test_ingest_filters.c — DeepSeek-Coder file filters at their exact
 * boundaries (hand-derived), language detection, MinHash estimates vs exact Jaccard. */
#include "tests/test.h"
#include "data/code_filter.h"
#include "data/minhash.h"
#include "core/alloc.h"
#include "core/rng.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* n lines of `w` letters each (with '\n'), optionally one extra line of `last` letters */
static char *lines_of(int n, int w) {
    char *s = cr_malloc((size_t)n * (size_t)(w + 1) + 1);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < w; j++) s[k++] = 'a' + (j % 26);
        s[k++] = '\n';
    }
    s[k] = 0;
    return s;
}

TEST(data_filter_boundaries) {
    char *s = lines_of(10, 100);   /* average exactly 100 */
    CHECK(code_filter("c", s, strlen(s)) == NULL);
    free(s);
    s = lines_of(10, 101);
    const char *why = code_filter("c", s, strlen(s));
    CHECKF(why && strstr(why, "average line length 101.0"), "%s", why ? why : "(passed)");
    free(s);
    /* one 1000-char line among short ones passes; 1001 fails */
    for (int L = 1000; L <= 1001; L++) {
        size_t n = 40 * 11 + (size_t)L + 2;
        char *t = cr_malloc(n + 1);
        size_t k = 0;
        for (int i = 0; i < 40; i++) { memcpy(t + k, "abcdefghij\n", 11); k += 11; }
        for (int j = 0; j < L; j++) t[k++] = 'x';
        t[k++] = '\n';
        t[k] = 0;
        /* average = (400 + L) / 41 < 100 */
        why = code_filter("c", t, k);
        if (L == 1000) CHECKF(why == NULL, "%s", why);
        else CHECKF(why && strstr(why, "max line length 1001"), "%s", why ? why : "(passed)");
        free(t);
    }
    /* alphabetic fraction: 25 letters in 100 bytes passes, 24 fails */
    char buf[101];
    for (int letters = 24; letters <= 25; letters++) {
        for (int i = 0; i < 100; i++) buf[i] = i < letters ? 'q' : (i % 10 == 9 ? '\n' : '1');
        buf[100] = 0;
        why = code_filter("python", buf, 100);
        if (letters == 25) CHECKF(why == NULL, "%s", why);
        else CHECK(why && strstr(why, "alphabetic"));
    }
    CHECK(code_filter("c", "", 0) && strstr(code_filter("c", "", 0), "empty"));
    CHECK(strstr(code_filter("c", "int x;\0y", 8), "binary"));
    CHECK(strstr(code_filter("c", "int \xff x;\n", 9), "UTF-8"));
    CHECK(code_filter("c", "int \xc3\xa9t\xc3\xa9 = 1; /* caf\xc3\xa9 */\n", 24) == NULL);
    /* JSON / YAML sizes: [50, 5000] */
    char js[5002];
    memset(js, 'a', sizeof js);
    for (int i = 40; i < 5002; i += 41) js[i] = '\n';
    CHECK(code_filter("json", js, 49) != NULL);
    CHECK(code_filter("json", js, 50) == NULL);
    CHECK(code_filter("yaml", js, 5000) == NULL);
    CHECK(code_filter("yaml", js, 5001) != NULL);
    CHECK(code_filter("c", js, 5001) == NULL);
}

TEST(data_filter_html_visible_text) {
    /* visible: 120 letters of text; markup around it */
    char page[4096];
    char text[121];
    for (int i = 0; i < 120; i++) text[i] = (i % 12 == 11) ? ' ' : 'w';
    text[120] = 0;
    snprintf(page, sizeof page, "<html>\n<head><title>t</title></head>\n<body>\n<p>%s</p>\n</body>\n</html>\n", text);
    CHECK(code_filter("html", page, strlen(page)) == NULL);
    /* same text buried under a big script: < 20% visible */
    char big[8192];
    char script[3000];
    for (size_t i = 0; i < sizeof script - 1; i++) script[i] = (i % 60 == 59) ? '\n' : 'v';
    script[sizeof script - 1] = 0;
    snprintf(big, sizeof big, "<html><body><script>\n%s\n</script>\n<p>%s</p></body></html>\n", script, text);
    const char *why = code_filter("html", big, strlen(big));
    CHECKF(why && strstr(why, "html visible"), "%s", why ? why : "(passed)");
    /* the same as a .js-less, non-html language is not subject to the rule */
    CHECK(code_filter("xml", big, strlen(big)) == NULL);
}

TEST(data_filter_languages) {
    CHECK(strcmp(code_language("src/a.c"), "c") == 0);
    CHECK(strcmp(code_language("x/y/Foo.HPP"), "cpp") == 0);
    CHECK(strcmp(code_language("lib/util.py"), "python") == 0);
    CHECK(strcmp(code_language("Makefile"), "makefile") == 0);
    CHECK(strcmp(code_language("a/CMakeLists.txt"), "cmake") == 0);
    CHECK(code_language("img.png") == NULL);
    CHECK(code_language(".bashrc") == NULL);
    CHECK(code_language("README") == NULL);
}

static double exact_jaccard(const char *a, const char *b) {
    int na, nb;
    uint64_t *sa = minhash_shingles(a, strlen(a), &na), *sb = minhash_shingles(b, strlen(b), &nb);
    int i = 0, j = 0, inter = 0;
    while (i < na && j < nb) {
        if (sa[i] == sb[j]) { inter++; i++; j++; }
        else if (sa[i] < sb[j]) i++;
        else j++;
    }
    free(sa); free(sb);
    return (double)inter / (double)(na + nb - inter);
}

/* A text of n random words from a small vocabulary (deterministic). */
static char *words(uint64_t seed, int n) {
    CrRng r;
    cr_rng_init(&r, seed, 0, 0);
    char *s = cr_malloc((size_t)n * 8 + 1);
    size_t k = 0;
    for (int i = 0; i < n; i++) k += (size_t)sprintf(s + k, "w%03d ", (int)(cr_rng_u64(&r) % 500));
    s[k] = 0;
    return s;
}

TEST(data_minhash_estimates_jaccard) {
    char *a = words(1, 400);
    double max_err = 0;
    for (int cut = 20; cut <= 360; cut += 85) {
        /* b = a with words [cut, cut+40) replaced: exact Jaccard varies with cut */
        char *b = cr_strdup(a);
        char *p = b;
        for (int i = 0; i < cut; i++) p = strchr(p, ' ') + 1;
        for (int i = 0; i < 40 * 5; i++) if (p[i] != ' ') p[i] = (p[i] == 'w') ? 'z' : p[i];
        MinHash ma, mb;
        minhash_compute(a, strlen(a), &ma);
        minhash_compute(b, strlen(b), &mb);
        double est = minhash_jaccard(&ma, &mb), ex = exact_jaccard(a, b);
        double err = fabs(est - ex);
        if (err > max_err) max_err = err;
        /* 4 standard errors at K = 128 */
        CHECKF(err <= 4 * sqrt(ex * (1 - ex) / MINHASH_K) + 1e-9, "estimate %.3f exact %.3f", est, ex);
        free(b);
    }
    /* whitespace-only changes keep the shingles */
    CHECK(exact_jaccard("int  f(int x){return x+1;}", "int f ( int x ) { return x + 1 ; }") == 1.0);
    /* unrelated texts are far apart */
    char *c = words(2, 400);
    MinHash ma, mc;
    minhash_compute(a, strlen(a), &ma);
    minhash_compute(c, strlen(c), &mc);
    CHECK(minhash_jaccard(&ma, &mc) < 0.1);
    /* the LSH index finds the near duplicate and not the unrelated text */
    MinHashIndex *ix = minhash_index_new();
    CHECK(minhash_index_find_or_add(ix, &ma, 0.85) == -1);
    CHECK(minhash_index_find_or_add(ix, &mc, 0.85) == -1);
    char *d = cr_strdup(a);
    d[strlen(d) / 2] = 'Q';  /* one word changed */
    MinHash md;
    minhash_compute(d, strlen(d), &md);
    CHECK(minhash_index_find_or_add(ix, &md, 0.85) == 0);
    /* many unrelated entries: none collides */
    int false_hits = 0;
    for (int i = 0; i < 300; i++) {
        char *x = words(100 + (uint64_t)i, 100);
        MinHash mx;
        minhash_compute(x, strlen(x), &mx);
        false_hits += minhash_index_find_or_add(ix, &mx, 0.85) >= 0;
        free(x);
    }
    CHECK(false_hits == 0);
    minhash_index_free(ix);
    free(a); free(c); free(d);
}
