/* core/progress.h — one progress line for long work: rewritten in place on a TTY
 * (stderr), plain log lines otherwise. Defines: Progress, progress_init, progress_update,
 * progress_done, progress_eta. */
#ifndef CRUCIBLE_CORE_PROGRESS_H
#define CRUCIBLE_CORE_PROGRESS_H

typedef struct Progress {
    int tty;
    double t0;
    int open;   /* a TTY line is open (needs a newline before other output) */
} Progress;

void progress_init(Progress *p);
/* Seconds since progress_init. */
double progress_elapsed(const Progress *p);
/* Print a line (no trailing newline needed). */
void progress_update(Progress *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* End an open TTY line. */
void progress_done(Progress *p);
/* "1h02m", "3m05s", "12s" for an estimate of remaining seconds (buf >= 16). */
const char *progress_eta(double seconds, char *buf);
double progress_now(void);

#endif
