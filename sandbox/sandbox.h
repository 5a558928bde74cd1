/* sandbox/sandbox.h — compile and run untrusted programs, judge them, never be fooled.
 * Defines: Verdict, SandboxLimits, SandboxTest, SandboxJob, SandboxTestResult, SandboxResult,
 *          sandbox_run, sandbox_result_to_json/from_json, sandbox_job_to_json/from_json,
 *          SandboxPool (sandbox_pool_create/submit/next/free), sandbox_isolation_report.
 *
 * Threat model and policy: shared/spec/sandbox.md. Every program runs in a fresh child with new
 * user/pid/mount/ipc/uts/net namespaces (those the kernel refuses are reported once on stderr and
 * in sandbox_isolation_report), a private read-only root, rlimits + cgroup memory/pids where
 * available, setsid, a scrubbed environment, fds 0-2 only, no_new_privs and a seccomp allow-list
 * (compile and run steps have separate lists, per language). A call that is not allowed stops the
 * whole box with verdict SV naming the syscall.
 *
 * Ownership: a SandboxResult owns every string in it; free it with sandbox_result_free.
 * Errors: sandbox_run returns -1 only when the sandbox itself cannot work (bad job fields such as an
 * unknown language are such errors too; the message names the field); any behaviour of the
 * program is a verdict, never an error. */
#ifndef CRUCIBLE_SANDBOX_SANDBOX_H
#define CRUCIBLE_SANDBOX_SANDBOX_H

#include <stddef.h>
#include <stdint.h>
#include "core/error.h"

typedef enum Verdict {
    VERDICT_OK, VERDICT_WA, VERDICT_CE, VERDICT_RE, VERDICT_TLE,
    VERDICT_MLE, VERDICT_OLE, VERDICT_SV, VERDICT_IE
} Verdict;
#define VERDICT_COUNT 9
const char *verdict_name(Verdict v);            /* "OK", "WA", ... */
int verdict_from_name(const char *s, Verdict *v); /* 0 or -1 */

typedef struct SandboxLimits {
    double time_limit_s;       /* CPU seconds per run; wall clock = 2x + 1 s */
    long memory_limit_mb;      /* peak memory per run */
    long output_limit_bytes;   /* per stream; beyond it: OLE */
} SandboxLimits;
/* 10 s, 512 MB, 16 MB. Zero fields of a job's limits mean "default". */
void sandbox_limits_default(SandboxLimits *l);

/* The compile step has its own limits. */
#define SANDBOX_COMPILE_TIME_S 30.0
#define SANDBOX_COMPILE_MEMORY_MB 1024L
/* At most this much of each stream is kept in a result (and so in the JSON). */
#define SANDBOX_KEEP_BYTES (64L * 1024)

/* C strings: the loaders of tests files refuse a NUL in either (sandbox_json_find_nul); a binary
 * stdin goes through SandboxJob.stdin_data + stdin_len (run-once mode). */
typedef struct SandboxTest { const char *stdin_data; const char *expected_stdout; } SandboxTest;

typedef struct SandboxJob {
    const char *lang;  const char *source;
    const SandboxTest *tests; int n_tests;          /* stdin/stdout tests, or */
    const char *test_code; const char *entry_point;  /* assertion tests (HumanEval: source = prompt + completion) */
    const char *stdin_data;                          /* run-once mode when no tests */
    SandboxLimits limits;
    size_t stdin_len;                                /* bytes of stdin_data (binary, NULs kept); 0: strlen */
} SandboxJob;

typedef struct SandboxTestResult {
    Verdict verdict;
    int exit_code, signal;
    long time_ms, memory_kb;        /* CPU time, peak memory */
    char *stdout_data, *stderr_data; /* first SANDBOX_KEEP_BYTES of each stream */
    char *blocked_syscall;           /* SV only: the syscall's name, else NULL */
    long wall_ms;
} SandboxTestResult;

/* verdict: the first non-OK test's verdict (CE/IE from the compile step), else OK. time_ms and
 * memory_kb: the maximum over the tests run. Tests stop after the first TLE/MLE/OLE/SV/IE (the
 * rest count in total, not in passed). compile_output: the compiler's stdout + stderr, up to
 * 256 KB. */
typedef struct SandboxResult {
    Verdict verdict; int passed, total; long time_ms, memory_kb;
    int compiled;                 /* 1 when the language has a compile step (then compile_* are set) */
    int compile_exit_code; long compile_time_ms; char *compile_output;
    SandboxTestResult *tests; int n_tests;
} SandboxResult;

/* Compile once, then run every test in its own box. Returns 0 with *out filled (caller frees),
 * or -1 (e set) only when the sandbox itself cannot work or the job is malformed.
 * Not thread-safe, and each run forks the calling process: large processes (trainers) should use
 * the pool, whose workers are small. */
int sandbox_run(const SandboxJob *job, SandboxResult *out, CrError *e);
void sandbox_result_free(SandboxResult *r);

/* The CLI contract's object (malloc'd, one line). */
char *sandbox_result_to_json(const SandboxResult *r);
/* Parse what sandbox_result_to_json wrote (the pool's wire format). */
int sandbox_result_from_json(const char *json, SandboxResult *out, CrError *e);
/* The job as one JSON line (malloc'd) and back; from_json allocates into *arena_out
 * (free with sandbox_job_free_parsed). A stdin holding a NUL travels as "stdin_hex". */
char *sandbox_job_to_json(const SandboxJob *job);
int sandbox_job_from_json(const char *json, SandboxJob *job, CrError *e);
void sandbox_job_free_parsed(SandboxJob *job);

/* Output comparison used for stdin/stdout tests: equal after dropping trailing whitespace on
 * every line and trailing blank lines. */
int sandbox_output_matches(const char *got, size_t got_len, const char *want);
/* JSON strings (cJSON) end at a NUL, so a "\u0000" escape in a JSON text would silently cut
 * the string it is in (a stdin, an expected stdout). Returns 1 when `text` has one inside a
 * string, with its 1-based line and column and the object key it comes under (the nearest key
 * before it, "" when none), else 0. Loaders of tests refuse such files with that position. */
int sandbox_json_find_nul(const char *text, size_t len, size_t *line, size_t *col, char *key, size_t key_cap);
/* Remove this process's scratch directories and cgroups now (also done at exit). */
void sandbox_shutdown(void);

/* Languages known to this build that exist on the machine, e.g. "c cpp python ..." (static). */
const char *sandbox_languages(void);
/* The checks sandbox_run makes of a job's language (known and installed here) and of its
 * limits (0 fields: the defaults; in range): 0, else -1 with e saying why. For callers
 * that judge many jobs (eval, grpo) to refuse bad input up front, not judge it IE. */
int sandbox_lang_check(const char *lang, CrError *e);
int sandbox_limits_check(const SandboxLimits *lim, CrError *e);
/* One line naming the isolation in force on this machine (namespaces, cgroup, seccomp), static. */
const char *sandbox_isolation_report(void);

/* ---- worker pool ----------------------------------------------------------------
 * N worker processes (`crucible sandbox worker`), started with posix_spawn at creation — create
 * the pool before any GPU context exists. Jobs travel as JSON lines over pipes. submit() queues a
 * job (blocks while 2N jobs are pending: back-pressure); next() returns any finished job with the
 * tag given at submit. The worker binary is $CRUCIBLE_SANDBOX_WORKER, else `crucible` next to
 * /proc/self/exe (or one directory up), else /proc/self/exe. A worker that dies yields verdict IE for its job and is
 * replaced. */
typedef struct SandboxPool SandboxPool;
SandboxPool *sandbox_pool_create(int n_workers, CrError *e);
int sandbox_pool_submit(SandboxPool *p, const SandboxJob *job, uint64_t tag, CrError *e);
int sandbox_pool_next(SandboxPool *p, uint64_t *tag, SandboxResult *out, CrError *e);
int sandbox_pool_pending(const SandboxPool *p); /* submitted and not yet returned by next() */
void sandbox_pool_free(SandboxPool *p);
/* The worker's loop: read job lines from in_fd, write result lines to out_fd, until EOF. */
int sandbox_worker_main(int in_fd, int out_fd);

#endif
