/* core/progress.c — see progress.h */
#include "core/progress.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>

double progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void progress_init(Progress *p) {
    p->tty = isatty(2);
    p->t0 = progress_now();
    p->open = 0;
}

double progress_elapsed(const Progress *p) { return progress_now() - p->t0; }

void progress_update(Progress *p, const char *fmt, ...) {
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (p->tty) {
        fprintf(stderr, "\r\033[K%s", line);
        p->open = 1;
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

void progress_done(Progress *p) {
    if (p->tty && p->open) fputc('\n', stderr);
    p->open = 0;
}

const char *progress_eta(double s, char *buf) {
    if (!isfinite(s) || s < 0) { snprintf(buf, 16, "?"); return buf; }
    long t = (long)(s + 0.5);
    if (t >= 3600) snprintf(buf, 16, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
    else if (t >= 60) snprintf(buf, 16, "%ldm%02lds", t / 60, t % 60);
    else snprintf(buf, 16, "%lds", t);
    return buf;
}
