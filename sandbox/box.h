/* sandbox/box.h — run one program in a fresh isolated box and supervise it.
 * Defines: BoxSpec, BoxOutcome, box_run, box_outcome_free, box_isolation_report, box_shutdown.
 *
 * The child, in this order (spec/sandbox.md "Isolation, in order"): new user/pid/mount/ipc/uts/net
 * namespaces (the ones this kernel refuses are left out and reported once); a private root on a
 * tmpfs with read-only binds of /usr (+ the /bin, /lib* links) and a few /etc files, /dev with
 * null/zero/random/urandom only, a fresh /proc, a fresh size-capped /tmp, the submission dir at
 * /box (writable for the compile step only) and a fresh size-capped /work as cwd for runs; the
 * namespace's pid 1 is a tiny reaper that reports the program's status; the program (pid 2)
 * gets rlimits, setsid, an unprivileged uid, only fds 0-2, a scrubbed environment,
 * no_new_privs, the seccomp filter, then execve. The supervisor joins the box to a cgroup
 * (memory + pids, v1, where available), drains stdout and stderr concurrently with caps, kills
 * the whole pid namespace on wall-clock timeout, output overflow or a refused syscall, and reads
 * CPU time and peak memory from wait4 (+ the cgroup's OOM counter).
 *
 * Speed: where the kernel allows, a per-process "holder" keeps one user namespace, one empty net
 * namespace and a mount namespace whose root is the prepared read-only tree; each run joins them
 * and unshares only mount/ipc/uts/pid, so a run costs ~1.4 ms over a bare fork+exec instead of
 * rebuilding the tree and a net namespace (~5 ms). Boxes of one process run one at a time, so the
 * shared user/net namespaces hold nothing between runs (no capabilities, loopback down).
 *
 * Not thread-safe: one box at a time per process (the pool uses processes). */
#ifndef CRUCIBLE_SANDBOX_BOX_H
#define CRUCIBLE_SANDBOX_BOX_H

#include <stddef.h>
#include "core/error.h"
#include "sandbox/seccomp_policy.h"

typedef struct BoxSpec {
    const char *const *argv;     /* argv[0]: absolute path inside the box */
    const char *box_dir;         /* host dir mounted at /box */
    int box_writable;            /* compile step: /box writable and cwd; else cwd = fresh /work */
    const char *stdin_data;      /* may be NULL (empty stdin) */
    size_t stdin_len;
    double cpu_limit_s, wall_limit_s;
    long memory_limit_bytes;
    long as_limit_bytes;         /* RLIMIT_AS, 0 = none */
    int as_limit_fallback;       /* apply as_limit_bytes only when the box has no memory cgroup:
                                  * the cgroup's OOM kill is the accurate MLE signal, while a
                                  * malloc refused by RLIMIT_AS ends as an ordinary crash (RE) */
    long output_limit_bytes;     /* per stream */
    int nproc;
    const SeccompProgram *filter;
} BoxSpec;

typedef struct BoxOutcome {
    int exited, exit_code, signal;   /* how the program (pid 2) ended */
    int wall_killed, output_exceeded, oom_killed;
    int cpu_exceeded;                /* CPU time >= limit (or SIGXCPU) */
    int badarch_killed;              /* SIGSYS from the kernel (i386/x32 ABI) */
    char blocked_syscall[64];        /* set when the policy refused a call */
    long cpu_ms, wall_ms;
    /* The program's peak memory: the box's memory cgroup peak when there is one (what the
     * program and its children charged); else wait4's ru_maxrss, an upper bound, since the
     * RSS a process had before exec counts in it (the box's pid 1 is a fork of crucible). */
    long peak_kb;
    long inherited_kb;               /* without a cgroup: that pre-exec RSS (pid 1's at fork) */
    int peak_from_cgroup;
    char *out, *err;                 /* captured streams (NUL-terminated), up to the limit */
    size_t out_len, err_len;
    char internal_error[256];        /* non-empty: the box could not be set up (verdict IE) */
} BoxOutcome;

/* Returns 0 with *o filled (free with box_outcome_free), or -1 when the sandbox cannot work. */
int box_run(const BoxSpec *s, BoxOutcome *o, CrError *e);
void box_outcome_free(BoxOutcome *o);
/* A fresh submission directory on the host (malloc'd path) writable by the box uid. */
char *box_make_submission_dir(CrError *e);
void box_remove_dir(const char *path);
/* One line: the isolation in force here (static storage). */
const char *box_isolation_report(void);
/* Remove this process's cgroups and scratch directories (also registered with atexit). */
void box_shutdown(void);

#endif
