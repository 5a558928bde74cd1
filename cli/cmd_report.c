/* cli/cmd_report.c — `crucible report RUN`: RUN/report.html, one self-contained page
 * (inline SVG, no scripts, no external resources) drawn from RUN/run.db: reward, pass
 * rate, KL, loss, completion length and the verdict mix over steps, and a table of
 * sample completions with their verdicts. Opens the store read-only, so it works while
 * the run is still writing. */
#include "cli/command.h"
#include "core/alloc.h"
#include "core/args.h"
#include "core/file.h"
#include "core/svg_plot.h"
#include "data/runstore.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cmd_report_summary[] = "write RUN/report.html (plots of the run's metrics, sample completions)";

typedef struct { char *s; size_t n, cap; } Html;

static void hput(Html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hput(Html *h, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(h->s + h->n, h->cap - h->n, fmt, ap);
        va_end(ap);
        if (k < 0) CR_DIE("vsnprintf failed");
        if ((size_t)k < h->cap - h->n) { h->n += (size_t)k; return; }
        h->cap = (h->cap + (size_t)k + 1) * 2;
        h->s = cr_realloc(h->s, h->cap);
    }
}

/* Charts: a title and the metric names drawn on it (the first present ones). */
typedef struct { const char *title; const char *metrics[4]; } Chart;
static const Chart k_charts[] = {
    {"reward", {"reward_mean", "reward_std", NULL}},
    {"pass rate", {"pass_rate", NULL}},
    {"KL to reference", {"kl_mean", NULL}},
    {"loss", {"loss", "eval_loss", NULL}},
    {"completion length (tokens)", {"completion_len_mean", "completion_len_max", NULL}},
    {"clip fraction", {"clip_frac", NULL}},
    {"learning rate", {"lr", NULL}},
    {"gradient norm", {"grad_norm", NULL}},
};

typedef struct { Html *h; int n; } SampleCtx;

static const char *verdict_color(const char *v) {
    static const struct { const char *v, *c; } k[] = {
        {"OK", "#2ca02c"}, {"WA", "#ff7f0e"}, {"CE", "#1f77b4"}, {"RE", "#d62728"}, {"TLE", "#9467bd"},
        {"MLE", "#8c564b"}, {"OLE", "#e377c2"}, {"SV", "#000000"}, {"IE", "#7f7f7f"}};
    for (size_t i = 0; i < sizeof k / sizeof k[0]; i++)
        if (!strcmp(v, k[i].v)) return k[i].c;
    return "#bcbd22";
}

static void put_escaped(Html *h, const char *s, size_t max) {
    if (!s) return;
    size_t len = strlen(s);
    char *cut = cr_malloc((len < max ? len : max) + 1);
    memcpy(cut, s, len < max ? len : max);
    cut[len < max ? len : max] = 0;
    char *esc = svg_escape(cut);
    hput(h, "%s%s", esc, len > max ? "…" : "");
    free(esc);
    free(cut);
}

static int sample_row(void *ctx, const RsExample *x) {
    SampleCtx *c = ctx;
    Html *h = c->h;
    hput(h, "<tr><td>%lld</td><td class=\"v v%s\">%s</td><td>%.3g</td><td><pre>", (long long)x->step,
         x->verdict ? x->verdict : "", x->verdict ? x->verdict : "", x->reward);
    put_escaped(h, x->prompt, 400);
    hput(h, "</pre></td><td><pre>");
    put_escaped(h, x->completion, 1200);
    hput(h, "</pre></td><td><pre>");
    put_escaped(h, x->compile_output, 600);
    hput(h, "</pre></td></tr>\n");
    c->n++;
    return 0;
}

static int write_report(const char *run_dir, CrError *e) {
    char *db = cr_path_join(run_dir, "run.db");
    if (!cr_file_exists(db)) {
        cr_error_set(e, "%s: no run store (is %s a run directory?)", db, run_dir);
        free(db);
        return -1;
    }
    RunStore *rs = runstore_open_readonly(db, e);
    if (!rs) { free(db); return -1; }
    int rc = -1;
    Html h = {cr_malloc(1 << 16), 0, 1 << 16};
    h.s[0] = 0;
    int64_t run = runstore_latest_run(rs, e);
    if (run <= 0) {
        if (run == 0) cr_error_set(e, "%s: the store holds no run yet", db);
        goto out;
    }
    char *title = svg_escape(run_dir);
    hput(&h, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>crucible report: %s</title>\n"
             "<style>body{font-family:sans-serif;margin:20px;color:#222}"
             ".charts{display:flex;flex-wrap:wrap;gap:12px}"
             "table{border-collapse:collapse;font-size:12px;width:100%%}"
             "td,th{border:1px solid #ccc;padding:4px;vertical-align:top;text-align:left}"
             "pre{margin:0;white-space:pre-wrap;max-height:240px;overflow:auto}"
             ".v{font-weight:bold}.vOK{color:#2a7a2a}.vWA,.vRE,.vCE,.vTLE,.vMLE,.vOLE,.vSV{color:#b22}"
             "</style></head><body>\n<h1>crucible report: %s</h1>\n", title, title);
    free(title);
    char **names = NULL;
    int n_names = 0;
    if (runstore_metric_names(rs, run, &names, &n_names, e)) goto out;
    hput(&h, "<p>run %lld; %d metrics recorded", (long long)run, n_names);
    int64_t last = runstore_last_step(rs, run, e);
    hput(&h, "; last committed step %lld</p>\n<div class=\"charts\">\n", (long long)last);
    int drawn = 0;
    for (size_t c = 0; c < sizeof k_charts / sizeof k_charts[0]; c++) {
        SvgSeries ser[4];
        int64_t *steps[4] = {0};
        double *vals[4] = {0};
        int ns = 0, npts = 0;
        double *x = NULL;
        for (int m = 0; m < 4 && k_charts[c].metrics[m]; m++) {
            int64_t *st;
            double *v;
            int n;
            if (runstore_metric_series(rs, run, k_charts[c].metrics[m], &st, &v, &n, e)) goto out;
            if (n == 0) { free(st); free(v); continue; }
            if (ns == 0) {
                npts = n;
                x = cr_malloc(sizeof(double) * (size_t)n);
                for (int i = 0; i < n; i++) x[i] = (double)st[i];
            }
            /* align on the first series' steps */
            double *al = cr_malloc(sizeof(double) * (size_t)npts);
            for (int i = 0, j = 0; i < npts; i++) {
                while (j < n && (double)st[j] < x[i]) j++;
                al[i] = j < n && (double)st[j] == x[i] ? v[j] : NAN;
            }
            free(v);
            steps[ns] = st;
            vals[ns] = al;
            ser[ns].label = k_charts[c].metrics[m];
            ser[ns].y = al;
            ns++;
        }
        if (ns > 0) {
            char *svg = svg_line_plot(k_charts[c].title, x, npts, ser, ns, 440, 260);
            hput(&h, "%s", svg);
            free(svg);
            drawn++;
        }
        for (int i = 0; i < ns; i++) { free(steps[i]); free(vals[i]); }
        free(x);
    }
    /* verdict mix per step */
    {
        char **vnames;
        int64_t *vcounts;
        int nv;
        if (runstore_verdict_histogram(rs, run, -1, -1, &vnames, &vcounts, &nv, e)) goto out;
        if (nv > 0 && last >= 0) {
            int64_t *st;
            double *v;
            int n;
            /* steps that have executions: use every step up to last */
            int nsteps = (int)(last + 1);
            double *x = cr_malloc(sizeof(double) * (size_t)nsteps);
            double *cnt = cr_calloc((size_t)nsteps * (size_t)nv, sizeof(double));
            int any = 0;
            for (int s = 0; s < nsteps; s++) {
                x[s] = s;
                char **sv;
                int64_t *sc;
                int sn;
                if (runstore_verdict_histogram(rs, run, s, s, &sv, &sc, &sn, e)) {
                    free(x); free(cnt);
                    goto out;
                }
                for (int i = 0; i < sn; i++) {
                    for (int k = 0; k < nv; k++)
                        if (!strcmp(sv[i], vnames[k])) { cnt[(size_t)s * nv + k] = (double)sc[i]; any = 1; }
                    free(sv[i]);
                }
                free(sv);
                free(sc);
            }
            (void)st; (void)v; (void)n;
            if (any) {
                /* fixed colours per verdict so that reports read alike: OK green, errors warm */
                const char **cols = cr_malloc(sizeof(char *) * (size_t)nv);
                for (int k = 0; k < nv; k++) cols[k] = verdict_color(vnames[k]);
                char *svg = svg_stacked_bars("verdict mix per step", x, nsteps, cnt,
                                             (const char *const *)vnames, cols, nv, 440, 260);
                free(cols);
                hput(&h, "%s", svg);
                free(svg);
                drawn++;
            }
            free(x);
            free(cnt);
        }
        for (int i = 0; i < nv; i++) free(vnames[i]);
        free(vnames);
        free(vcounts);
    }
    hput(&h, "</div>\n");
    if (drawn == 0) hput(&h, "<p>No metrics recorded yet.</p>\n");
    /* other metrics as a table of last values */
    hput(&h, "<h2>All metrics (last value)</h2>\n<table><tr><th>metric</th><th>step</th><th>value</th></tr>\n");
    for (int i = 0; i < n_names; i++) {
        int64_t *st;
        double *v;
        int n;
        if (runstore_metric_series(rs, run, names[i], &st, &v, &n, e)) goto out;
        char *esc = svg_escape(names[i]);
        if (n > 0) hput(&h, "<tr><td>%s</td><td>%lld</td><td>%.6g</td></tr>\n", esc, (long long)st[n - 1], v[n - 1]);
        free(esc);
        free(st);
        free(v);
    }
    hput(&h, "</table>\n<h2>Sample completions (latest step)</h2>\n"
             "<table><tr><th>step</th><th>verdict</th><th>reward</th><th>prompt</th><th>completion</th>"
             "<th>compiler output</th></tr>\n");
    SampleCtx sc = {&h, 0};
    if (runstore_each_execution(rs, run, last >= 0 ? last : -1, -1, 24, sample_row, &sc, e) < 0) goto out;
    hput(&h, "</table>\n%s</body></html>\n", sc.n ? "" : "<p>No executions recorded.</p>\n");
    for (int i = 0; i < n_names; i++) free(names[i]);
    free(names);
    char *out_path = cr_path_join(run_dir, "report.html");
    rc = cr_write_file_atomic(out_path, h.s, h.n, e);
    if (rc == 0) fprintf(stderr, "report: wrote %s\n", out_path);
    free(out_path);
out:
    free(h.s);
    runstore_close(rs);
    free(db);
    return rc;
}

int cmd_report(int argc, char **argv) {
    ArgSpec specs[] = {{NULL, 0, NULL, NULL, 0}};
    const char **pos = NULL;
    int npos = 0;
    CrError e;
    int rc = cr_args_parse("crucible report RUN", specs, argc, argv, &pos, &npos, &e);
    if (rc == CR_ARGS_HELP) return 0;
    if (rc || npos != 1) {
        fprintf(stderr, "crucible report: %s\n", rc ? e.msg : "expected exactly one RUN directory");
        free(pos);
        return 2;
    }
    int r = write_report(pos[0], &e);
    if (r) fprintf(stderr, "crucible report: %s\n", e.msg);
    free(pos);
    return r ? 1 : 0;
}
