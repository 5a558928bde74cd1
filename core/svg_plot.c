/* core/svg_plot.c — see svg_plot.h */
#include "core/svg_plot.h"
#include "core/alloc.h"
#include "core/error.h"
#include "core/strbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


char *svg_escape(const char *s) {
    CrBuf b = {0};
    cr_buf_puts(&b, "");
    for (; *s; s++) {
        switch (*s) {
        case '<': cr_buf_printf(&b, "&lt;"); break;
        case '>': cr_buf_printf(&b, "&gt;"); break;
        case '&': cr_buf_printf(&b, "&amp;"); break;
        case '"': cr_buf_printf(&b, "&quot;"); break;
        case '\'': cr_buf_printf(&b, "&#39;"); break;
        default: cr_buf_printf(&b, "%c", *s);
        }
    }
    return b.p;
}

static const char *k_colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

/* A "nice" tick step for a range. */
static double nice_step(double range, int target) {
    if (!(range > 0)) return 1;
    double raw = range / target, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void frame(CrBuf *b, const char *title, int w, int h, double x0, double x1, double y0,
                  double y1, int ml, int mr, int mt, int mb) {
    char *t = svg_escape(title);
    cr_buf_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"11\">\n", w, h, w, h);
    cr_buf_printf(b, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", w, h);
    cr_buf_printf(b, "<text x=\"%d\" y=\"14\" font-size=\"13\" font-weight=\"bold\">%s</text>\n", ml, t);
    free(t);
    int pw = w - ml - mr, ph = h - mt - mb;
    cr_buf_printf(b, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#999\"/>\n", ml, mt, pw, ph);
    /* ticks by index, at most a few dozen: `v += step` can stall when the step is
     * below the spacing of doubles near v (a range of 1e-3 around 1e15) */
    double ys = nice_step(y1 - y0, 5);
    for (int k = 0; k < 64; k++) {
        double v = ceil(y0 / ys) * ys + k * ys;
        if (!(v <= y1 + 1e-12 * fabs(y1))) break;
        double py = mt + ph - (v - y0) / (y1 - y0) * ph;
        cr_buf_printf(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                   "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                ml, ml + pw, py, py, ml - 4, py + 4, fabs(v) < ys * 1e-9 ? 0.0 : v);
    }
    double xs = nice_step(x1 - x0, 6);
    for (int k = 0; k < 64; k++) {
        double v = ceil(x0 / xs) * xs + k * xs;
        if (!(v <= x1 + 1e-12 * fabs(x1))) break;
        double px = ml + (v - x0) / (x1 - x0) * pw;
        cr_buf_printf(b, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", px, mt + ph + 14, v);
    }
}

char *svg_line_plot(const char *title, const double *x, int n, const SvgSeries *series,
                    int n_series, int width, int height) {
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n; i++) {
        if (!isfinite(x[i])) continue;
        x0 = fmin(x0, x[i]);
        x1 = fmax(x1, x[i]);
        for (int s = 0; s < n_series; s++)
            if (isfinite(series[s].y[i])) { y0 = fmin(y0, series[s].y[i]); y1 = fmax(y1, series[s].y[i]); }
    }
    if (!isfinite(x0)) { x0 = 0; x1 = 1; }
    if (!isfinite(y0)) { y0 = 0; y1 = 1; }
    if (x1 == x0) { x0 -= 0.5; x1 += 0.5; }
    if (y1 == y0) { double d = fabs(y0) > 0 ? fabs(y0) * 0.1 : 0.5; y0 -= d; y1 += d; }
    double pad = (y1 - y0) * 0.05;
    y0 -= pad;
    y1 += pad;
    int ml = 56, mr = 12, mt = 22, mb = 34 + 14 * ((n_series + 2) / 3);
    CrBuf b = {0};
    cr_buf_puts(&b, "");
    frame(&b, title, width, height, x0, x1, y0, y1, ml, mr, mt, mb);
    int pw = width - ml - mr, ph = height - mt - mb;
    for (int s = 0; s < n_series; s++) {
        const char *col = k_colors[s % 10];
        int open = 0;
        for (int i = 0; i < n; i++) {
            double y = series[s].y[i];
            if (!isfinite(y) || !isfinite(x[i])) {
                if (open) cr_buf_printf(&b, "\"/>\n");
                open = 0;
                continue;
            }
            double px = ml + (x[i] - x0) / (x1 - x0) * pw, py = mt + ph - (y - y0) / (y1 - y0) * ph;
            if (!open) cr_buf_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", col);
            cr_buf_printf(&b, "%.1f,%.1f ", px, py);
            open = 1;
        }
        if (open) cr_buf_printf(&b, "\"/>\n");
        if (n == 1 && isfinite(series[s].y[0]))
            cr_buf_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", ml + pw / 2.0,
                    mt + ph - (series[s].y[0] - y0) / (y1 - y0) * ph, col);
        char *lab = svg_escape(series[s].label ? series[s].label : "");
        int lx = ml + (s % 3) * (pw / 3), ly = mt + ph + 30 + 14 * (s / 3);
        cr_buf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"3\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
                lx, ly - 4, col, lx + 14, ly, lab);
        free(lab);
    }
    cr_buf_printf(&b, "</svg>\n");
    return b.p;
}

char *svg_stacked_bars(const char *title, const double *x, int n, const double *counts,
                       const char *const *cat_labels, const char *const *cat_colors, int n_cats,
                       int width, int height) {
    double x0 = n ? x[0] : 0, x1 = n ? x[n - 1] : 1;
    for (int i = 0; i < n; i++) { x0 = fmin(x0, x[i]); x1 = fmax(x1, x[i]); }
    if (x1 == x0) { x0 -= 0.5; x1 += 0.5; }
    double span = x1 - x0;
    x0 -= span * 0.03 + 0.5;
    x1 += span * 0.03 + 0.5;
    int ml = 56, mr = 12, mt = 22, mb = 34 + 14 * ((n_cats + 4) / 5);
    CrBuf b = {0};
    cr_buf_puts(&b, "");
    frame(&b, title, width, height, x0, x1, 0, 1, ml, mr, mt, mb);
    int pw = width - ml - mr, ph = height - mt - mb;
    double bw = n > 0 ? fmax(1.0, 0.8 * pw / (x1 - x0)) : 1;
    for (int i = 0; i < n; i++) {
        double tot = 0;
        for (int c = 0; c < n_cats; c++) tot += counts[(size_t)i * n_cats + c] > 0 ? counts[(size_t)i * n_cats + c] : 0;
        if (!(tot > 0)) continue;
        double px = ml + (x[i] - x0) / (x1 - x0) * pw - bw / 2, acc = 0;
        for (int c = 0; c < n_cats; c++) {
            double v = counts[(size_t)i * n_cats + c];
            if (!(v > 0)) continue;
            double hfrac = v / tot;
            double py = mt + ph - (acc + hfrac) * ph;
            cr_buf_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", px, py, bw,
                    hfrac * ph, cat_colors ? cat_colors[c] : k_colors[c % 10]);
            acc += hfrac;
        }
    }
    for (int c = 0; c < n_cats; c++) {
        char *lab = svg_escape(cat_labels[c]);
        int lx = ml + (c % 5) * (pw / 5), ly = mt + ph + 30 + 14 * (c / 5);
        cr_buf_printf(&b, "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
                lx, ly - 9, cat_colors ? cat_colors[c] : k_colors[c % 10], lx + 14, ly, lab);
        free(lab);
    }
    cr_buf_printf(&b, "</svg>\n");
    return b.p;
}
