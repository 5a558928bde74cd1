/* sandbox/judge.c — sandbox_run: compile once, run each test in its own box, decide verdicts. */
#include "sandbox/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "core/alloc.h"
#include "sandbox/box.h"
#include "sandbox/harness.h"
#include "sandbox/lang.h"

#define COMPILE_OUTPUT_KEEP (256L * 1024)
#define MAX_LANGS 16

/* Filters are built once per process and never change (module-owned cache). */
typedef struct FilterCache {
    int built[MAX_LANGS][2];
    SeccompProgram prog[MAX_LANGS][2];
} FilterCache;
static FilterCache g_filters;

static const SeccompProgram *filter_for(int li, const SandboxLang *l, SeccompStep step, CrError *e) {
    int k = step == SECCOMP_STEP_COMPILE ? 0 : 1;
    if (!g_filters.built[li][k]) {
        if (seccomp_policy_build(step, step == SECCOMP_STEP_COMPILE || l->run_allow_fork,
                                 l->run_extra, &g_filters.prog[li][k], e) < 0)
            return NULL;
        g_filters.built[li][k] = 1;
    }
    return &g_filters.prog[li][k];
}

const char *sandbox_languages(void) {
    static char buf[128];
    if (!buf[0])
        for (int i = 0; i < sandbox_lang_count(); i++)
            if (sandbox_lang_available(sandbox_lang_at(i))) {
                if (buf[0]) strncat(buf, " ", sizeof buf - strlen(buf) - 1);
                strncat(buf, sandbox_lang_at(i)->name, sizeof buf - strlen(buf) - 1);
            }
    return buf;
}

const char *sandbox_isolation_report(void) { return box_isolation_report(); }
void sandbox_shutdown(void) { box_shutdown(); }

/* Length of the well-formed UTF-8 sequence at s[0..n) (RFC 3629, table 3-7 of Unicode: no
 * overlong forms, no surrogates D800-DFFF, nothing above U+10FFFF), 0 if there is none. NUL is
 * refused too: the JSON strings are C strings. */
static size_t utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned char c = s[0];
    if (c >= 0x01 && c <= 0x7F) return 1;
    size_t len;
    unsigned char lo = 0x80, hi = 0xBF;  /* range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) len = 2;
    else if (c == 0xE0) len = 3, lo = 0xA0;
    else if (c == 0xED) len = 3, hi = 0x9F;
    else if (c >= 0xE1 && c <= 0xEF) len = 3;
    else if (c == 0xF0) len = 4, lo = 0x90;
    else if (c == 0xF4) len = 4, hi = 0x8F;
    else if (c >= 0xF1 && c <= 0xF3) len = 4;
    else return 0;
    if (len > n || s[1] < lo || s[1] > hi) return 0;
    for (size_t k = 2; k < len; k++)
        if (s[k] < 0x80 || s[k] > 0xBF) return 0;
    return len;
}

/* Copy at most `keep` bytes as valid UTF-8 (each byte that does not start a well-formed
 * sequence, and NUL, becomes '?'), so the JSON is always valid and never cut inside a character. */
static char *keep_text(const char *s, size_t n, size_t keep) {
    if (n > keep) n = keep;
    char *o = cr_malloc(n + 1);
    size_t i = 0, j = 0;
    while (i < n) {
        size_t len = utf8_seq_len((const unsigned char *)s + i, n - i);
        if (!len) { o[j++] = '?'; i++; continue; }
        memcpy(o + j, s + i, len);
        i += len;
        j += len;
    }
    o[j] = 0;
    return o;
}

/* Output comparison: trailing whitespace on each line and trailing blank lines ignored. */
static const char *line_end(const char *p, const char *end) {
    while (p < end && *p != '\n') p++;
    return p;
}
static size_t trimmed_len(const char *p, const char *e) {
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r' || e[-1] == '\f' || e[-1] == '\v')) e--;
    return (size_t)(e - p);
}
static const char *skip_trailing_blank(const char *p, const char *end) {
    /* returns end if everything from p on is whitespace, else p */
    for (const char *q = p; q < end; q++)
        if (!(*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n' || *q == '\f' || *q == '\v')) return p;
    return end;
}
int sandbox_output_matches(const char *got, size_t got_len, const char *want) {
    const char *a = got, *ae = got + got_len, *b = want, *be = want + strlen(want);
    for (;;) {
        if (skip_trailing_blank(a, ae) == ae && skip_trailing_blank(b, be) == be) return 1;
        if (a >= ae || b >= be) return 0;
        const char *la = line_end(a, ae), *lb = line_end(b, be);
        size_t na = trimmed_len(a, la), nb = trimmed_len(b, lb);
        if (na != nb || memcmp(a, b, na) != 0) return 0;
        a = la < ae ? la + 1 : ae;
        b = lb < be ? lb + 1 : be;
    }
}

/* Verdict of one finished run, before output comparison. OK means "ended normally". */
static Verdict run_verdict(const BoxOutcome *o, const BoxSpec *s) {
    if (o->internal_error[0]) return VERDICT_IE;
    if (o->blocked_syscall[0] || o->badarch_killed) return VERDICT_SV;
    if (o->output_exceeded) return VERDICT_OLE;
    if (o->oom_killed) return VERDICT_MLE;
    if (o->wall_killed || o->cpu_exceeded) return VERDICT_TLE;
    if (!o->exited || o->exit_code != 0) {
        /* Without a cgroup (whose OOM kills are counted above), a failure at the memory
         * ceiling is the memory limit — when the program itself grew there: wait4's peak
         * also holds the RSS the box's pid 1 inherited from crucible (box.h). */
        if (!o->peak_from_cgroup && o->peak_kb > o->inherited_kb + 1024 &&
            o->peak_kb * 1024L >= s->memory_limit_bytes * 9 / 10)
            return VERDICT_MLE;
        return VERDICT_RE;
    }
    return VERDICT_OK;
}

static void fill_test(SandboxTestResult *t, Verdict v, const BoxOutcome *o, const char *out, size_t out_len) {
    t->verdict = v;
    t->exit_code = o->exited ? o->exit_code : 0;
    t->signal = o->signal;
    t->time_ms = o->cpu_ms;
    t->wall_ms = o->wall_ms;
    t->memory_kb = o->peak_kb;
    t->stdout_data = keep_text(out, out_len, SANDBOX_KEEP_BYTES);
    t->stderr_data = keep_text(o->err, o->err_len, SANDBOX_KEEP_BYTES);
    if (o->blocked_syscall[0]) t->blocked_syscall = cr_strdup(o->blocked_syscall);
    else if (o->badarch_killed) t->blocked_syscall = cr_strdup("(non-native ABI: i386 or x32)");
    if (o->internal_error[0]) {
        free(t->stderr_data);
        t->stderr_data = keep_text(o->internal_error, strlen(o->internal_error), SANDBOX_KEEP_BYTES);
    }
}

static int write_source(const char *dir, const char *name, const char *src, CrError *e) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return cr_error_set(e, "sandbox: %s: %s", path, strerror(errno));
    size_t n = strlen(src), off = 0;
    while (off < n) {
        ssize_t w = write(fd, src + off, n - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return cr_error_set(e, "sandbox: writing %s: %s", path, strerror(errno));
        }
        off += (size_t)w;
    }
    return close(fd) == 0 ? 0 : cr_error_set(e, "sandbox: closing %s: %s", path, strerror(errno));
}

/* The language a job names, known and installed here. */
static int check_lang(const char *name, const SandboxLang **lang, CrError *e) {
    if (!name) return cr_error_set(e, "job: field \"lang\" missing");
    *lang = sandbox_lang_find(name);
    if (!*lang) return cr_error_set(e, "job: lang \"%s\" unknown (available here: %s)", name, sandbox_languages());
    if (!sandbox_lang_available(*lang))
        return cr_error_set(e, "job: lang \"%s\": toolchain not installed on this machine", name);
    return 0;
}

/* *lim = the defaults overridden by the job's positive fields, in range. */
static int check_limits(const SandboxLimits *req, SandboxLimits *lim, CrError *e) {
    sandbox_limits_default(lim);
    if (req->time_limit_s > 0) lim->time_limit_s = req->time_limit_s;
    if (req->memory_limit_mb > 0) lim->memory_limit_mb = req->memory_limit_mb;
    if (req->output_limit_bytes > 0) lim->output_limit_bytes = req->output_limit_bytes;
    if (req->time_limit_s < 0 || req->memory_limit_mb < 0 || req->output_limit_bytes < 0)
        return cr_error_set(e, "job: limits must not be negative");
    if (lim->time_limit_s > 3600) return cr_error_set(e, "job: time limit %.0f s exceeds 3600 s", lim->time_limit_s);
    if (lim->memory_limit_mb > 65536 || lim->memory_limit_mb < 16)
        return cr_error_set(e, "job: memory limit %ld MB outside [16, 65536]", lim->memory_limit_mb);
    return 0;
}

static int validate(const SandboxJob *job, const SandboxLang **lang, int *li, SandboxLimits *lim, CrError *e) {
    if (check_lang(job->lang, lang, e)) return -1;
    *li = (int)(*lang - sandbox_lang_at(0));
    if (!job->source) return cr_error_set(e, "job: field \"source\" missing");
    if (job->n_tests < 0 || (job->n_tests > 0 && !job->tests)) return cr_error_set(e, "job: bad tests array");
    for (int i = 0; i < job->n_tests; i++)
        if (!job->tests[i].expected_stdout) return cr_error_set(e, "job: tests[%d].stdout missing", i);
    if (job->test_code) {
        if (!job->entry_point || !job->entry_point[0])
            return cr_error_set(e, "job: assertion tests need \"entry_point\"");
        if (!(*lang)->harness)
            return cr_error_set(e, "job: assertion tests (test_code) are supported for python only, not \"%s\"", job->lang);
        if (job->n_tests > 0) return cr_error_set(e, "job: give either tests or test_code, not both");
    }
    return check_limits(&job->limits, lim, e);
}

int sandbox_lang_check(const char *lang, CrError *e) {
    const SandboxLang *l;
    return check_lang(lang, &l, e);
}

int sandbox_limits_check(const SandboxLimits *lim, CrError *e) {
    SandboxLimits out;
    return check_limits(lim, &out, e);
}

/* The run step's argv: the language's, with SANDBOX_ARG_MEMORY_MB replaced by the limit. */
typedef struct RunArgv { const char *argv[12]; char mem_arg[96]; } RunArgv;

static void run_argv_fill(RunArgv *ra, const SandboxLang *l, long memory_limit_mb) {
    const size_t tail = strlen(SANDBOX_ARG_MEMORY_MB);
    int a = 0;
    for (; l->run_argv[a] && a < 11; a++) {
        const char *x = l->run_argv[a];
        size_t n = strlen(x);
        if (n >= tail && !strcmp(x + n - tail, SANDBOX_ARG_MEMORY_MB) && n - tail < 64) {
            snprintf(ra->mem_arg, sizeof ra->mem_arg, "%.*s%ld", (int)(n - tail), x, memory_limit_mb);
            x = ra->mem_arg;
        }
        ra->argv[a] = x;
    }
    ra->argv[a] = NULL;
}

static void run_spec(BoxSpec *s, const RunArgv *ra, const SandboxLang *l, const SandboxLimits *lim, const char *dir,
                     const SeccompProgram *f) {
    memset(s, 0, sizeof *s);
    s->argv = ra->argv;
    s->box_dir = dir;
    s->cpu_limit_s = lim->time_limit_s;
    s->wall_limit_s = 2 * lim->time_limit_s + 1;
    s->memory_limit_bytes = lim->memory_limit_mb << 20;
    s->as_limit_bytes = l->as_headroom_mb < 0 ? 0 : (lim->memory_limit_mb + l->as_headroom_mb) << 20;
    s->as_limit_fallback = 1;
    s->output_limit_bytes = lim->output_limit_bytes;
    s->nproc = l->nproc;
    s->filter = f;
}

int sandbox_run(const SandboxJob *job, SandboxResult *out, CrError *e) {
    memset(out, 0, sizeof *out);
    const SandboxLang *l = NULL;
    int li = 0;
    SandboxLimits lim;
    if (validate(job, &l, &li, &lim, e) < 0) return -1;
    const SeccompProgram *frun = filter_for(li, l, SECCOMP_STEP_RUN, e);
    const SeccompProgram *fcomp = l->compile_argv[0] ? filter_for(li, l, SECCOMP_STEP_COMPILE, e) : NULL;
    if (!frun || (l->compile_argv[0] && !fcomp)) return -1;
    char *dir = box_make_submission_dir(e);
    if (!dir) return -1;
    int rc = -1;
    if (write_source(dir, l->src_name, job->source, e) < 0) goto done;
    int n_planned = job->test_code ? 1 : job->n_tests > 0 ? job->n_tests : 1;
    out->total = n_planned;
    out->verdict = VERDICT_OK;

    if (l->compile_argv[0]) {
        BoxSpec cs;
        memset(&cs, 0, sizeof cs);
        cs.argv = l->compile_argv;
        cs.box_dir = dir;
        cs.box_writable = 1;
        cs.cpu_limit_s = SANDBOX_COMPILE_TIME_S;
        cs.wall_limit_s = 2 * SANDBOX_COMPILE_TIME_S;
        cs.memory_limit_bytes = SANDBOX_COMPILE_MEMORY_MB << 20;
        cs.as_limit_bytes = l->as_headroom_mb < 0 ? 0 : (2 * SANDBOX_COMPILE_MEMORY_MB) << 20;
        cs.output_limit_bytes = 4L << 20;
        cs.nproc = 64;
        cs.filter = fcomp;
        BoxOutcome co;
        if (box_run(&cs, &co, e) < 0) goto done;
        out->compiled = 1;
        out->compile_exit_code = co.exited ? co.exit_code : 128 + co.signal;
        out->compile_time_ms = co.cpu_ms;
        /* the compiler's full output (stdout then stderr), capped */
        size_t n = co.out_len + co.err_len;
        char *all = cr_malloc(n + 256);
        memcpy(all, co.out, co.out_len);
        memcpy(all + co.out_len, co.err, co.err_len);
        all[n] = 0;
        Verdict cv = run_verdict(&co, &cs);
        if (cv != VERDICT_OK && cv != VERDICT_IE && !co.err_len) {
            n += (size_t)snprintf(all + n, 256, "crucible: compile step ended: %s%s%s\n", verdict_name(cv),
                                  co.blocked_syscall[0] ? " blocked syscall " : "", co.blocked_syscall);
        }
        if (cv == VERDICT_IE) n += (size_t)snprintf(all + n, 256, "crucible: %s\n", co.internal_error);
        out->compile_output = keep_text(all, n, COMPILE_OUTPUT_KEEP);
        free(all);
        box_outcome_free(&co);
        if (cv == VERDICT_IE) { out->verdict = VERDICT_IE; rc = 0; goto done; }
        if (cv != VERDICT_OK) { out->verdict = VERDICT_CE; rc = 0; goto done; }
    }

    out->tests = cr_calloc((size_t)n_planned, sizeof *out->tests);
    for (int i = 0; i < n_planned; i++) {
        BoxSpec rs;
        RunArgv ra;
        run_argv_fill(&ra, l, lim.memory_limit_mb);
        run_spec(&rs, &ra, l, &lim, dir, frun);
        char nonce[33] = "";
        char *stdin_buf = NULL;
        const char *argv_h[8];
        if (job->test_code) {
            unsigned char rnd[16];
            if (getrandom(rnd, sizeof rnd, 0) != (ssize_t)sizeof rnd) {
                cr_error_set(e, "sandbox: getrandom: %s", strerror(errno));
                goto done;
            }
            for (int k = 0; k < 16; k++) snprintf(nonce + 2 * k, 3, "%02x", rnd[k]);
            size_t tl = strlen(job->test_code);
            stdin_buf = cr_malloc(tl + 40);
            memcpy(stdin_buf, nonce, 32);
            stdin_buf[32] = '\n';
            memcpy(stdin_buf + 33, job->test_code, tl + 1);
            rs.stdin_data = stdin_buf;
            rs.stdin_len = tl + 33;
            int a = 0;
            for (; ra.argv[a] && strcmp(ra.argv[a], "/box/main.py") != 0; a++) argv_h[a] = ra.argv[a];
            argv_h[a++] = "-c";
            argv_h[a++] = k_py_harness;
            argv_h[a++] = "/box/main.py";
            argv_h[a++] = job->entry_point;
            argv_h[a] = NULL;
            rs.argv = argv_h;
        } else {
            const char *in = job->n_tests > 0 ? job->tests[i].stdin_data : job->stdin_data;
            size_t in_len = job->n_tests > 0 ? 0 : job->stdin_len;
            rs.stdin_data = in;
            rs.stdin_len = !in ? 0 : in_len ? in_len : strlen(in);  /* binary stdin keeps its NULs */
        }
        BoxOutcome o;
        int brc = box_run(&rs, &o, e);
        free(stdin_buf);
        if (brc < 0) goto done;
        Verdict v = run_verdict(&o, &rs);
        const char *shown = o.out;
        size_t shown_len = o.out_len;
        char *stripped = NULL;
        if (job->test_code) {
            /* The proof: the nonce on its own line, written by the harness after check() returned. */
            char needle[40];
            snprintf(needle, sizeof needle, "\n%s\n", nonce);
            size_t nl = strlen(needle);
            /* over the whole output: a NUL the program printed before it must not hide it */
            char *hit = memmem(o.out, o.out_len, needle, nl);
            if (v == VERDICT_OK && !hit) v = VERDICT_WA;
            if (v == VERDICT_RE && o.exited && o.exit_code == 3) v = VERDICT_WA;
            if (hit) {
                stripped = cr_malloc(o.out_len + 1);
                size_t pre = (size_t)(hit - o.out);
                memcpy(stripped, o.out, pre);
                memcpy(stripped + pre, hit + nl, o.out_len - pre - nl);
                shown_len = o.out_len - nl;
                stripped[shown_len] = 0;
                shown = stripped;
            }
        } else if (v == VERDICT_OK && job->n_tests > 0 &&
                   !sandbox_output_matches(o.out, o.out_len, job->tests[i].expected_stdout)) {
            v = VERDICT_WA;
        }
        fill_test(&out->tests[i], v, &o, shown, shown_len);
        out->n_tests = i + 1;
        free(stripped);
        box_outcome_free(&o);
        if (o.cpu_ms > out->time_ms) out->time_ms = o.cpu_ms;
        if (o.peak_kb > out->memory_kb) out->memory_kb = o.peak_kb;
        if (v == VERDICT_OK) out->passed++;
        else if (out->verdict == VERDICT_OK) out->verdict = v;
        /* Abuse and resource verdicts end the submission: no need to burn more time on it. */
        if (v == VERDICT_TLE || v == VERDICT_MLE || v == VERDICT_OLE || v == VERDICT_SV || v == VERDICT_IE) break;
    }
    rc = 0;
done:
    box_remove_dir(dir);
    free(dir);
    if (rc < 0) sandbox_result_free(out);
    return rc;
}
