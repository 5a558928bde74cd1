/* core/svg_plot.h — small self-contained SVG charts for report.html (no scripts, no
 * external resources). Defines: SvgSeries, svg_line_plot, svg_stacked_bars, svg_escape.
 * Every function returns a malloc'd string the caller frees. Non-finite points are
 * skipped (a gap), never drawn at 0. */
#ifndef CRUCIBLE_CORE_SVG_PLOT_H
#define CRUCIBLE_CORE_SVG_PLOT_H

typedef struct SvgSeries {
    const char *label;
    const double *y;   /* [n] */
} SvgSeries;

/* Line chart of n_series series over shared x[n]. */
char *svg_line_plot(const char *title, const double *x, int n, const SvgSeries *series,
                    int n_series, int width, int height);
/* Stacked bars: counts[i * n_cats + c] for bar i and category c (shown as fractions).
 * cat_colors: one CSS colour per category, or NULL for the default palette. */
char *svg_stacked_bars(const char *title, const double *x, int n, const double *counts,
                       const char *const *cat_labels, const char *const *cat_colors, int n_cats,
                       int width, int height);
/* HTML/XML escape of a NUL-terminated string. */
char *svg_escape(const char *s);

#endif
