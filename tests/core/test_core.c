/* tests/core/test_core.c — core: RNG streams, atomic files, flag parsing. */
#include "tests/test.h"
#include "core/args.h"
#include "core/file.h"
#include "core/rng.h"
#include "core/strbuf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

TEST(core_rng_streams_independent_and_reproducible) {
    CrRng a, b, c;
    cr_rng_init(&a, 42, 3, 7);
    cr_rng_init(&b, 42, 3, 7);
    cr_rng_init(&c, 42, 7, 3);
    int same_ab = 1, same_ac = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = cr_rng_u64(&a), y = cr_rng_u64(&b), z = cr_rng_u64(&c);
        same_ab &= x == y;
        same_ac += x == z;
    }
    CHECK(same_ab);
    CHECK(same_ac == 0);
    /* uniform mean/variance over many draws */
    double s = 0, s2 = 0;
    int n = 200000;
    for (int i = 0; i < n; i++) { double u = cr_rng_uniform(&a); s += u; s2 += u * u; CHECK(u >= 0 && u < 1); if (FAILED()) return; }
    CHECK_NEAR(s / n, 0.5, 0.01);
    CHECK_NEAR(s2 / n - (s / n) * (s / n), 1.0 / 12, 0.01);
}

TEST(core_atomic_write_replaces_whole_file) {
    char *d = test_tmpdir();
    char *p = cr_path_join(d, "x.txt");
    CrError e;
    CHECK(cr_write_file_atomic(p, "old", 3, &e) == 0);
    CHECK(cr_write_file_atomic(p, "new contents", 12, &e) == 0);
    size_t n;
    char *t = cr_read_file(p, &n, &e);
    CHECK(t && n == 12 && !memcmp(t, "new contents", 12));
    CHECK(cr_read_file("/nonexistent/zzz", &n, &e) == NULL);
    CHECK(strstr(e.msg, "/nonexistent/zzz") != NULL);
    free(t); free(p); free(d);
}

TEST(core_args_flags_override_config) {
    char *d = test_tmpdir();
    char *cfg = cr_path_join(d, "c.json");
    const char *js = "{\"lr\": 0.5, \"steps\": 10, \"name\": \"fromfile\", \"stop\": [\"a\",\"b\"], \"flag\": true}";
    CrError e;
    CHECK(cr_write_file_atomic(cfg, js, strlen(js), &e) == 0);
    double lr = 1; long steps = 1; const char *name = NULL; int flag = 0; CrStrList stop = {0};
    ArgSpec specs[] = {
        {"lr", ARG_FLOAT, &lr, "learning rate", 0},
        {"steps", ARG_INT, &steps, "steps", 0},
        {"name", ARG_STR, &name, "name", 1},
        {"stop", ARG_STR_LIST, &stop, "stop", 0},
        {"flag", ARG_BOOL, &flag, "flag", 0},
        {NULL, 0, NULL, NULL, 0}};
    char *argv[] = {"--config", cfg, "--steps=20", "pos1", "--stop", "z"};
    const char **pos; int npos;
    CHECK(cr_args_parse("t", specs, 6, argv, &pos, &npos, &e) == 0);
    CHECK_NEAR(lr, 0.5, 0);
    CHECK(steps == 20);
    CHECK(name && !strcmp(name, "fromfile"));
    CHECK(flag == 1);
    CHECK(stop.n == 1 && !strcmp(stop.items[0], "z"));
    CHECK(npos == 1 && !strcmp(pos[0], "pos1"));
    char *bad[] = {"--steps", "abc"};
    CHECK(cr_args_parse("t", specs, 2, bad, NULL, NULL, &e) == -1);
    CHECK(strstr(e.msg, "steps") != NULL);
    char *unk[] = {"--nope", "1"};
    CHECK(cr_args_parse("t", specs, 2, unk, NULL, NULL, &e) == -1);
    CHECK(strstr(e.msg, "--nope") != NULL);
    free(cfg); free(d);
}

TEST(core_strbuf_appends_and_formats) {
    CrBuf b = {0};
    cr_buf_puts(&b, "");
    CHECK(b.p && b.n == 0 && b.p[0] == 0);
    cr_buf_add(&b, "ab\0c", 4);  /* binary: the NUL inside is kept, one more after */
    CHECK(b.n == 4 && !memcmp(b.p, "ab\0c", 5));
    cr_buf_printf(&b, "%d-%s", 42, "x");
    CHECK(b.n == 8 && !memcmp(b.p + 4, "42-x", 5));
    /* a formatted piece longer than the on-stack attempt, and growth over many appends */
    char big[1000];
    memset(big, 'z', sizeof big - 1);
    big[sizeof big - 1] = 0;
    cr_buf_printf(&b, "[%s]", big);
    CHECK(b.n == 8 + 1001 && b.p[8] == '[' && b.p[9 + 998] == 'z' && b.p[b.n - 1] == ']' && b.p[b.n] == 0);
    for (int i = 0; i < 5000; i++) cr_buf_puts(&b, "0123456789");
    CHECK(b.n == 1009 + 50000 && strlen(b.p + 1009) == 50000 && b.cap > b.n);
    free(b.p);
}
