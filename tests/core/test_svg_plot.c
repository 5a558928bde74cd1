/* tests/core/test_svg_plot.c — SVG charts: well-formed output, gaps for NaN, escaping. */
#include "tests/test.h"
#include "core/svg_plot.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int count(const char *s, const char *sub) {
    int n = 0;
    for (const char *p = strstr(s, sub); p; p = strstr(p + 1, sub)) n++;
    return n;
}

TEST(core_svg_line_plot_gaps_and_escape) {
    double x[5] = {0, 1, 2, 3, 4}, y1[5] = {0.1, 0.2, NAN, 0.4, 0.5}, y2[5] = {1, 1, 1, 1, 1};
    SvgSeries s[2] = {{"reward <mean>", y1}, {"pass&rate", y2}};
    char *svg = svg_line_plot("t<1>", x, 5, s, 2, 480, 240);
    CHECK(strncmp(svg, "<svg", 4) == 0);
    CHECK(strstr(svg, "</svg>") != NULL);
    /* the NaN splits series 0 into two polylines; series 1 is one */
    CHECK(count(svg, "<polyline") == 3);
    CHECK(strstr(svg, "reward &lt;mean&gt;") && strstr(svg, "pass&amp;rate") && strstr(svg, "t&lt;1&gt;"));
    CHECK(!strstr(svg, "nan") && !strstr(svg, "inf"));
    free(svg);
}

TEST(core_svg_stacked_bars_fractions) {
    double x[2] = {1, 2}, c[6] = {1, 1, 2, 0, 0, 0};
    const char *labels[3] = {"OK", "WA", "CE"};
    char *svg = svg_stacked_bars("verdicts", x, 2, c, labels, NULL, 3, 480, 240);
    /* bar 1 has 3 rects, bar 2 has none (all zero); plus 3 legend swatches + background + frame */
    CHECK(count(svg, "<rect") == 3 + 3 + 2);
    CHECK(!strstr(svg, "nan"));
    free(svg);
}

TEST(core_svg_ticks_terminate_near_huge_values) {
    /* a range far below the spacing of doubles around the values: a tick loop that adds
     * the step to v would never advance */
    double x[2] = {1, 2}, y[2] = {1e15, 1e15 + 0.125};
    SvgSeries s = {"big", y};
    char *svg = svg_line_plot("huge", x, 2, &s, 1, 300, 200);
    CHECK(svg != NULL && strstr(svg, "</svg>") != NULL && strlen(svg) < 65536);
    free(svg);
}
