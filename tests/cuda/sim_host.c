/* tests/cuda/sim_host.c — see sim_host.h. */
#include "tests/cuda/sim_host.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/file.h"
#include "core/strbuf.h"
#include "tests/test.h"

const char *sim_host_cuda_include(void) {
    static char path[512];
    const char *home = getenv("CUDA_HOME");
    snprintf(path, sizeof path, "%s/include", home && *home ? home : "/usr/local/cuda");
    char probe[600];
    snprintf(probe, sizeof probe, "%s/cuda_runtime.h", path);
    return access(probe, R_OK) == 0 ? path : NULL;
}

int sim_host_have_gxx(void) { return system("command -v g++ >/dev/null 2>&1") == 0; }

const char *sim_host_nvcc(void) {
    static char path[512];
    const char *home = getenv("CUDA_HOME");
    if (home && *home) {
        snprintf(path, sizeof path, "%s/bin/nvcc", home);
        if (access(path, X_OK) == 0) return path;
    }
    return access("/usr/local/cuda/bin/nvcc", X_OK) == 0 ? "/usr/local/cuda/bin/nvcc" : NULL;
}

int sim_host_run(const char *cmd, const char *want) {
    FILE *f = popen(cmd, "r");
    if (!f) return 0;
    char line[1024];
    int seen = want == NULL;
    /* CRUCIBLE_SIM_VERBOSE=1: every line (a sanitizer's whole report, e.g.) */
    const char *verbose = getenv("CRUCIBLE_SIM_VERBOSE");
    int all = verbose && !strcmp(verbose, "1");
    while (fgets(line, sizeof line, f)) {
        if (all || strstr(line, "FAIL") || strstr(line, "error") || strstr(line, "ERROR") || strstr(line, "WARNING"))
            fprintf(stderr, "    %s", line);
        if (want && strstr(line, want)) seen = 1;
    }
    int st = pclose(f);
    return st == 0 && seen;
}

/* ---- the rewrite -------------------------------------------------------------------- */


static int is_ident(char c) { return isalnum((unsigned char)c) || c == '_' || c == ':'; }

/* Length of the comment, string or character literal at s (0 when none). */
static size_t skip_literal(const char *s) {
    const char *p = s;
    if (p[0] == '/' && p[1] == '/') {
        while (*p && *p != '\n') p++;
        return (size_t)(p - s);
    }
    if (p[0] == '/' && p[1] == '*') {
        const char *e = strstr(p + 2, "*/");
        return e ? (size_t)(e + 2 - s) : strlen(s);
    }
    if (*p == '"' || *p == '\'') {
        char q = *p++;
        while (*p && *p != q) p += (*p == '\\' && p[1]) ? 2 : 1;
        return (size_t)(p - s) + (*p ? 1 : 0);
    }
    return 0;
}

/* Start of the kernel expression that ends just before `end` (a name with template
 * arguments), in text s; NULL when there is none. */
static const char *kernel_start(const char *s, const char *end) {
    const char *p = end;
    while (p > s && isspace((unsigned char)p[-1])) p--;
    if (p > s && p[-1] == '>') { /* template arguments: back to the matching '<' */
        int depth = 0;
        do {
            p--;
            if (*p == '>') depth++;
            else if (*p == '<') depth--;
        } while (p > s && depth > 0);
        if (depth) return NULL;
        while (p > s && isspace((unsigned char)p[-1])) p--;
    }
    const char *q = p;
    while (q > s && is_ident(q[-1])) q--;
    return q < p ? q : NULL;
}

/* text with the one occurrence of `from` replaced by `to` (text freed), or NULL. */
static char *replace_once(char *text, const char *from, const char *to, const char *src) {
    char *at = strstr(text, from);
    if (!at || strstr(at + 1, from)) {
        fprintf(stderr, "sim_host_rewrite: %s: \"%s\" occurs %s\n", src, from, at ? "more than once" : "nowhere");
        free(text);
        return NULL;
    }
    size_t n = strlen(text) - strlen(from) + strlen(to) + 1, pre = (size_t)(at - text);
    char *out = malloc(n);
    if (out) snprintf(out, n, "%.*s%s%s", (int)pre, text, to, at + strlen(from));
    free(text);
    return out;
}

int sim_host_rewrite(const char *src, const char *dst, const char *const *subst) {
    size_t len = 0;
    CrError err = {0};
    char *text = cr_read_file(src, &len, &err);
    if (!text) {
        fprintf(stderr, "sim_host_rewrite: %s\n", err.msg);
        return -1;
    }
    for (int i = 0; subst && subst[i] && subst[i + 1] && text; i += 2)
        text = replace_once(text, subst[i], subst[i + 1], src);
    if (!text) return -1;
    CrBuf out = {0};
    char head[700];
    snprintf(head, sizeof head, "#line 1 \"%s\"\n", src);
    int bad = 0;
    cr_buf_puts(&out, head);
    const char *s = text, *p = text, *done = text; /* text[done, p) not yet copied */
    while (*p && !bad) {
        size_t lit = skip_literal(p);
        if (lit) {
            p += lit;
            continue;
        }
        if (!strncmp(p, "<<<", 3)) {
            const char *k = kernel_start(s, p), *cfg = p + 3, *cend = strstr(cfg, ">>>");
            if (!k || k < done || !cend) {
                fprintf(stderr, "sim_host_rewrite: %s: a launch the rewrite does not understand near byte %ld\n", src,
                        (long)(p - s));
                bad = 1;
                break;
            }
            const char *a = cend + 3;
            while (isspace((unsigned char)*a)) a++;
            if (*a != '(') {
                fprintf(stderr, "sim_host_rewrite: %s: no arguments after a launch near byte %ld\n", src,
                        (long)(p - s));
                bad = 1;
                break;
            }
            const char *a1 = a + 1;
            while (isspace((unsigned char)*a1)) a1++;
            cr_buf_add(&out, done, (size_t)(k - done));
            cr_buf_puts(&out, "sim_launch(SimCfg(");
            cr_buf_add(&out, cfg, (size_t)(cend - cfg));
            cr_buf_puts(&out, "), ");
            cr_buf_add(&out, k, (size_t)(p - k));
            if (*a1 != ')') cr_buf_puts(&out, ", ");
            p = done = a + 1;
            continue;
        }
        if (!strncmp(p, "extern __shared__", 17) && (p == s || !is_ident(p[-1]))) {
            const char *semi = strchr(p, ';'), *br = semi ? strstr(p, "[]") : NULL;
            if (!semi || !br || br > semi) {
                fprintf(stderr, "sim_host_rewrite: %s: an extern __shared__ declaration not of the form T name[];\n",
                        src);
                bad = 1;
                break;
            }
            const char *ne = br;
            while (ne > p && isspace((unsigned char)ne[-1])) ne--;
            const char *nb = ne;
            while (nb > p && is_ident(nb[-1])) nb--;
            const char *tb = p + 17;
            const char *al = strstr(tb, "__align__("); /* drop an alignment: the arena is 256-byte aligned */
            if (al && al < nb) {
                const char *close = strchr(al, ')');
                if (close && close < nb) tb = close + 1;
            }
            while (isspace((unsigned char)*tb)) tb++;
            const char *te = nb;
            while (te > tb && isspace((unsigned char)te[-1])) te--;
            if (nb == ne || te == tb) {
                fprintf(stderr, "sim_host_rewrite: %s: cannot read an extern __shared__ declaration\n", src);
                bad = 1;
                break;
            }
            cr_buf_add(&out, done, (size_t)(p - done));
            cr_buf_add(&out, tb, (size_t)(te - tb));
            cr_buf_puts(&out, " *const ");
            cr_buf_add(&out, nb, (size_t)(ne - nb));
            cr_buf_puts(&out, " = (");
            cr_buf_add(&out, tb, (size_t)(te - tb));
            cr_buf_puts(&out, " *)sim_dynamic_smem();");
            p = done = semi + 1;
            continue;
        }
        p++;
    }
    if (!bad) cr_buf_puts(&out, done);
    free(text);
    if (!bad && cr_write_file_atomic(dst, out.p, out.n, &err) != 0) {
        fprintf(stderr, "sim_host_rewrite: %s\n", err.msg);
        bad = 1;
    }
    free(out.p);
    return bad ? -1 : 0;
}

/* ---- build -------------------------------------------------------------------------- */

int sim_host_build(const char *dir, const char *exe, const char *cc, const char *cu, const char *const *subst,
                   const char *const *c_srcs, const char *san) {
    const char *inc = sim_host_cuda_include();
    if (!inc) return 0;
    char rewritten[600] = "", objs[4096] = "", cmd[8192], define[700] = "";
    if (cu) { /* NULL: a simulator file with no .cu under test */
        const char *base = strrchr(cu, '/');
        base = base ? base + 1 : cu;
        snprintf(rewritten, sizeof rewritten, "%s/%s.sim.cu", dir, base);
        if (sim_host_rewrite(cu, rewritten, subst) != 0) return 0;
        snprintf(define, sizeof define, "-DSIM_CU='\"%s\"'", rewritten);
    }
    /* AddressSanitizer without its fake stack: gcc 13's libasan turns stack-use-after-return
     * detection on by default, and rollout/sampler.c's AVX-512 function (a 64-byte
     * realigned frame) then faulted on an AVX-512 host (H100 machine, 2026-11-23); the
     * checks wanted here are heap/stack overruns, not use-after-return */
    const char *no_uar = strstr(san, "address") ? " --param=asan-use-after-return=0" : "";
    for (int i = 0; c_srcs && c_srcs[i]; i++) {
        char obj[600];
        snprintf(obj, sizeof obj, "%s/%s.ref%d.o", dir, exe, i);
        snprintf(
            cmd, sizeof cmd,
            "gcc -std=c17 -O1 -g -D_GNU_SOURCE -fsanitize=%s%s -fno-sanitize-recover=undefined -I. -c '%s' -o '%s' 2>&1",
            san, no_uar, c_srcs[i], obj);
        if (!sim_host_run(cmd, NULL)) {
            fprintf(stderr, "    gcc could not build %s\n", c_srcs[i]);
            return 0;
        }
        size_t n = strlen(objs);
        snprintf(objs + n, sizeof objs - n, " '%s'", obj);
    }
    snprintf(cmd, sizeof cmd,
             "g++ -std=c++17 -O1 -g -fsanitize=%s%s -fno-sanitize-recover=undefined -D_GNU_SOURCE -Itests/cuda/sim -I. "
             "-I'%s' %s -o '%s/%s' '%s'%s -lpthread -lm 2>&1",
             san, no_uar, inc, define, dir, exe, cc, objs);
    if (!sim_host_run(cmd, NULL)) {
        fprintf(stderr, "    g++ could not build %s with %s\n", cc, cu ? cu : "no .cu file");
        return 0;
    }
    return 1;
}

/* Builds exe with san and runs it with each argument; failures counted and described. */
static int sim_host_runs(const char *dir, const char *exe, const char *cc, const char *cu, const char *const *subst,
                         const char *const *c_srcs, const char *const *runs, const char *san) {
    if (!sim_host_build(dir, exe, cc, cu, subst, c_srcs, san)) {
        fprintf(stderr, "    could not build %s with %s (-fsanitize=%s)\n", cc, cu ? cu : "no .cu file", san);
        return 1;
    }
    int failed = 0;
    for (int i = 0; runs && runs[i]; i++) {
        char cmd[1200];
        snprintf(cmd, sizeof cmd, "'%s/%s' %s 2>&1", dir, exe, runs[i]);
        if (!sim_host_run(cmd, "all ok")) {
            fprintf(stderr, "    simulated run failed: %s %s (-fsanitize=%s)\n", cc, runs[i], san);
            failed++;
        }
    }
    return failed;
}

int sim_host_check(const char *dir, const char *cc, const char *cu, const char *const *subst,
                   const char *const *c_srcs, const char *const *runs, const char *const *tsan_runs) {
    int failed = sim_host_runs(dir, "sim_asan", cc, cu, subst, c_srcs, runs, "address,undefined");
    if (test_check_all())
        failed += sim_host_runs(dir, "sim_tsan", cc, cu, subst, c_srcs, tsan_runs, "thread");
    else
        fprintf(stderr, "    (ThreadSanitizer run only under make check-all)\n");
    return failed;
}
