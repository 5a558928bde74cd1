/* tests/sandbox/test_sandbox.c — the hostile suite: every threat class of spec/sandbox.md as a
 * program under tests/sandbox/programs/, its expected verdict, and host checks after every run
 * (no box process left, no file written outside, no secret in any output, no connection to the
 * loopback listeners opened here, host processes alive, no "ESCAPE" printed by the attack).
 * Positive controls in every language must be OK, so a sandbox that refuses everything fails. */
#include "tests/test.h"
#include "sandbox/lang.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/file.h"
#include "sandbox/sandbox.h"

#define V(x) (1u << VERDICT_##x)
#define SECRET_PATH "/tmp/crucible_host_secret.txt"

typedef struct Host {
    char token[33];
    int tcp_fd, udp_fd, abs_fd, secret_fd;
    int port;
    char abs_name[64];
    pid_t sleeper;
    struct stat true_st;
} Host;

static void host_setup(Host *h) {
    memset(h, 0, sizeof *h);
    unsigned char r[16];
    if (getrandom(r, sizeof r, 0) != (ssize_t)sizeof r) abort();
    for (int i = 0; i < 16; i++) snprintf(h->token + 2 * i, 3, "%02x", r[i]);
    FILE *f = fopen(SECRET_PATH, "w");
    if (f) { fprintf(f, "SECRET %s\n", h->token); fclose(f); }
    setenv("CRUCIBLE_TEST_SECRET", h->token, 1);
    h->secret_fd = open(SECRET_PATH, O_RDONLY);  /* deliberately inheritable */
    h->tcp_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof a;
    if (bind(h->tcp_fd, (struct sockaddr *)&a, sizeof a) == 0 && listen(h->tcp_fd, 8) == 0 &&
        getsockname(h->tcp_fd, (struct sockaddr *)&a, &al) == 0)
        h->port = ntohs(a.sin_port);
    /* UDP on the same port number, v4 and v6 programs aim at it */
    h->udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (bind(h->udp_fd, (struct sockaddr *)&a, sizeof a) < 0) { close(h->udp_fd); h->udp_fd = -1; }
    snprintf(h->abs_name, sizeof h->abs_name, "crucible-test-%ld", (long)getpid());
    h->abs_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un u = { .sun_family = AF_UNIX };
    memcpy(u.sun_path + 1, h->abs_name, strlen(h->abs_name));
    if (bind(h->abs_fd, (struct sockaddr *)&u, (socklen_t)(sizeof u.sun_family + 1 + strlen(h->abs_name))) < 0 ||
        listen(h->abs_fd, 8) < 0) { close(h->abs_fd); h->abs_fd = -1; }
    h->sleeper = fork();
    if (h->sleeper == 0) { for (;;) pause(); }
    stat("/usr/bin/true", &h->true_st);
}

static void host_teardown(Host *h) {
    if (h->sleeper > 0) { kill(h->sleeper, SIGKILL); waitpid(h->sleeper, NULL, 0); }
    if (h->tcp_fd >= 0) close(h->tcp_fd);
    if (h->udp_fd >= 0) close(h->udp_fd);
    if (h->abs_fd >= 0) close(h->abs_fd);
    if (h->secret_fd >= 0) close(h->secret_fd);
    unlink(SECRET_PATH);
    sandbox_shutdown();
}

/* Processes of this process's box uids (box.c: 1000000 + supervisor pid for programs, 2000000 +
 * pid for the box's root) still alive anywhere, except the namespace holder, which is our own
 * direct child and runs nothing (PPid comes before Uid in /proc/PID/status). Other supervisors on
 * the machine (a concurrent test run) have other uids. */
static int box_processes_alive(void) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        char p[300], line[256];
        snprintf(p, sizeof p, "/proc/%s/status", de->d_name);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        long ppid = -1;
        while (fgets(line, sizeof line, f)) {
            if (strncmp(line, "PPid:", 5) == 0) ppid = strtol(line + 5, NULL, 10);
            if (strncmp(line, "Uid:", 4) == 0) {
                long uid = strtol(line + 4, NULL, 10);
                /* the sandbox's namespace holder is our own direct child and runs no program */
                long me = (long)getpid();
                if ((uid == 1000000 + me || uid == 2000000 + me) && ppid != me) {
                    n++;
                    if (getenv("CRUCIBLE_TEST_VERBOSE")) fprintf(stderr, "    box process %s uid %ld ppid %ld\n", de->d_name, uid, ppid);
                }
            }
        }
        fclose(f);
    }
    closedir(d);
    return n;
}

static int contains(const char *s, const char *needle) { return s && strstr(s, needle); }

static void host_check(TestCtx *t_, Host *h, const char *name, const SandboxResult *r) {
    for (int wait = 0; wait < 20 && box_processes_alive(); wait++) usleep(50000);
    CHECKF(box_processes_alive() == 0, "%s: a box process outlived the run", name);
    static const char *const markers[] = { "/tmp/CRUCIBLE_ESCAPE", "/tmp/CRUCIBLE_DAEMON", "/usr/bin/crucible_pwn",
                                           "/etc/crucible_pwn", "/crucible_pwn", "/tmp/crucible_state",
                                           "/tmp/fill", "/fill", NULL };
    for (int i = 0; markers[i]; i++) CHECKF(access(markers[i], F_OK) != 0, "%s: %s exists on the host", name, markers[i]);
    struct stat st;
    CHECKF(stat("/usr/bin/true", &st) == 0 && st.st_size == h->true_st.st_size &&
           st.st_mtime == h->true_st.st_mtime, "%s: /usr/bin/true changed", name);
    const char *texts[64];
    int nt = 0;
    if (r) {
        CHECKF(!contains(r->compile_output, h->token), "%s: the host secret reached the compiler output", name);
        for (int i = 0; i < r->n_tests && nt < 62; i++) { texts[nt++] = r->tests[i].stdout_data; texts[nt++] = r->tests[i].stderr_data; }
    }
    for (int i = 0; i < nt; i++) {
        CHECKF(!contains(texts[i], h->token), "%s: the host secret reached the program's output", name);
        CHECKF(!contains(texts[i], "ESCAPE"), "%s: attack succeeded: %.200s", name, strstr(texts[i], "ESCAPE"));
    }
    int c = h->tcp_fd >= 0 ? accept(h->tcp_fd, NULL, NULL) : -1;
    CHECKF(c < 0, "%s: a connection reached the host's loopback listener", name);
    if (c >= 0) close(c);
    char b[16];
    CHECKF(h->udp_fd < 0 || recv(h->udp_fd, b, sizeof b, MSG_DONTWAIT) < 0, "%s: a datagram reached the host", name);
    c = h->abs_fd >= 0 ? accept(h->abs_fd, NULL, NULL) : -1;
    CHECKF(c < 0, "%s: a connection reached the host's abstract socket", name);
    if (c >= 0) close(c);
    CHECKF(kill(h->sleeper, 0) == 0 && waitpid(h->sleeper, NULL, WNOHANG) == 0, "%s: a host process was killed", name);
}

static char *program(const char *file) {
    char path[256];
    snprintf(path, sizeof path, "tests/sandbox/programs/%s", file);
    CrError e;
    size_t n;
    char *s = cr_read_file(path, &n, &e);
    if (!s) { fprintf(stderr, "    %s\n", e.msg); abort(); }
    return s;
}

static const char *lang_of(const char *file) {
    const char *dot = strrchr(file, '.');
    if (!strcmp(dot, ".c")) return "c";
    if (!strcmp(dot, ".cpp")) return "cpp";
    if (!strcmp(dot, ".py")) return "python";
    if (!strcmp(dot, ".rs")) return "rust";
    return "javascript";
}

typedef enum { IN_NONE, IN_PORT, IN_ABSTRACT, IN_HELLO } StdinKind;

typedef struct Case {
    const char *file;
    unsigned verdicts;      /* accepted verdicts */
    int exit_code;          /* expected exit code of the (single) run, -1: any */
    const char *syscall;    /* SV: the call that must be named, NULL: any */
    double time_limit;
    StdinKind in;
} Case;

/* Run one case in run-once mode, check the verdict and the host. */
static void run_case(TestCtx *t_, Host *h, const Case *c) {
    char *src = program(c->file);
    char in[128] = "";
    if (c->in == IN_PORT) snprintf(in, sizeof in, "%d\n", h->port);
    if (c->in == IN_ABSTRACT) snprintf(in, sizeof in, "%s\n", h->abs_name);
    if (c->in == IN_HELLO) snprintf(in, sizeof in, "hello\n");
    SandboxJob job = { 0 };
    job.lang = lang_of(c->file);
    job.source = src;
    job.stdin_data = in;
    job.limits.time_limit_s = c->time_limit > 0 ? c->time_limit : 2;
    SandboxResult r;
    CrError e = { { 0 } };
    int rc = sandbox_run(&job, &r, &e);
    CHECKF(rc == 0, "%s: sandbox_run failed: %s", c->file, e.msg);
    if (rc == 0) {
        const SandboxTestResult *t = r.n_tests ? &r.tests[0] : NULL;
        fprintf(stderr, "    %-28s %-3s exit %d signal %d%s%s cpu %ld ms wall %ld ms mem %ld KB\n", c->file,
                verdict_name(r.verdict), t ? t->exit_code : -1, t ? t->signal : -1,
                t && t->blocked_syscall ? " syscall " : "", t && t->blocked_syscall ? t->blocked_syscall : "",
                t ? t->time_ms : 0, t ? t->wall_ms : 0, t ? t->memory_kb : 0);
        CHECKF(c->verdicts & (1u << r.verdict), "%s: verdict %s not expected (compile: %.300s; stderr: %.300s)",
               c->file, verdict_name(r.verdict), r.compile_output ? r.compile_output : "-",
               t && t->stderr_data ? t->stderr_data : "-");
        if (c->exit_code >= 0 && t) CHECKF(t->exit_code == c->exit_code, "%s: exit code %d, expected %d", c->file, t->exit_code, c->exit_code);
        if (c->syscall && t) CHECKF(t->blocked_syscall && strcmp(t->blocked_syscall, c->syscall) == 0,
                                    "%s: blocked syscall %s, expected %s", c->file,
                                    t->blocked_syscall ? t->blocked_syscall : "(none)", c->syscall);
        host_check(t_, h, c->file, &r);
        sandbox_result_free(&r);
    }
    free(src);
}

static void run_cases(TestCtx *t_, const Case *cases, int n) {
    Host h;
    host_setup(&h);
    for (int i = 0; i < n; i++) run_case(t_, &h, &cases[i]);
    host_teardown(&h);
}
#define RUN_CASES(arr) run_cases(t_, arr, (int)(sizeof arr / sizeof arr[0]))

TEST(sandbox_isolation_in_force) {
    const char *rep = sandbox_isolation_report();
    fprintf(stderr, "    isolation: %s\n    languages: %s\n", rep, sandbox_languages());
    CHECK(strstr(rep, "seccomp") != NULL);
    if (strstr(rep, "refused") || !strstr(rep, "user,pid,mount,ipc,uts,net"))
        SKIP("this kernel refuses some namespaces; the suite still runs with: %s", rep);
    sandbox_shutdown();
}

TEST(sandbox_hostile_processes) {
    static const Case cases[] = {
        { "fork_bomb.c", V(SV), -1, "clone", 2, IN_NONE },
        { "fork_bomb.py", V(TLE) | V(RE), -1, NULL, 1, IN_NONE },
        { "thread_bomb.c", V(RE) | V(MLE), 42, NULL, 2, IN_NONE },
        { "daemon.py", V(OK), 0, NULL, 2, IN_NONE },
        { "kill_host.c", V(RE), 42, NULL, 2, IN_NONE },
        { "setuid_binary.c", V(RE) | V(SV), -1, NULL, 2, IN_NONE },
    };
    RUN_CASES(cases);
    /* the daemon would have written its marker after 2 s */
    sleep(3);
    CHECK(access("/tmp/CRUCIBLE_DAEMON", F_OK) != 0);
    CHECK(box_processes_alive() == 0);
}

TEST(sandbox_hostile_memory_and_disk) {
    static const Case cases[] = {
        { "memory_bomb.c", V(MLE), -1, NULL, 5, IN_NONE },
        { "memory_bomb.py", V(MLE), -1, NULL, 5, IN_NONE },
        { "disk_fill.c", V(RE), -1, NULL, 5, IN_NONE },
    };
    RUN_CASES(cases);
}

TEST(sandbox_hostile_output_and_time) {
    static const Case cases[] = {
        { "infinite_output.c", V(OLE), -1, NULL, 5, IN_NONE },
        { "infinite_stderr.py", V(OLE), -1, NULL, 5, IN_NONE },
        { "cpu_spin.c", V(TLE), -1, NULL, 1, IN_NONE },
        { "sleep_wall.c", V(TLE), -1, NULL, 1, IN_NONE },
        { "ignore_signals.c", V(TLE), -1, NULL, 1, IN_NONE },
        { "raise_rlimits.c", V(RE), 42, NULL, 2, IN_NONE },
    };
    RUN_CASES(cases);
}

TEST(sandbox_hostile_syscalls) {
    static const Case cases[] = {
        { "io_uring.c", V(RE), 42, NULL, 2, IN_NONE },
        { "i386_syscall.c", V(SV), -1, NULL, 2, IN_NONE },
        { "x32_syscall.c", V(SV), -1, NULL, 2, IN_NONE },
        { "clone3_namespaces.c", V(SV), -1, "unshare", 2, IN_NONE },
        { "clone_newns.c", V(SV), -1, "clone", 2, IN_NONE },
        { "mount.c", V(SV), -1, "mount", 2, IN_NONE },
        { "ptrace.c", V(SV), -1, "ptrace", 2, IN_NONE },
        { "process_vm.c", V(SV), -1, "process_vm_readv", 2, IN_NONE },
        { "proc_mem.py", V(RE), 42, NULL, 2, IN_NONE },
        /* a filter of its own would outrank the sandbox's report of a refused call */
        { "prctl_seccomp.c", V(SV), -1, "prctl", 2, IN_NONE },
        { "seccomp_syscall.c", V(SV), -1, "seccomp", 2, IN_NONE },
    };
    RUN_CASES(cases);
}

TEST(sandbox_hostile_network) {
    static const Case cases[] = {
        { "socket_inet.c", V(SV), -1, "socket", 2, IN_PORT },
        { "socket_inet6_udp.py", V(SV), -1, "socket", 2, IN_PORT },
        { "socket_netlink.c", V(SV), -1, "socket", 2, IN_NONE },
        { "socket_packet.c", V(SV), -1, "socket", 2, IN_NONE },
        { "socket_abstract_unix.c", V(RE), 42, NULL, 2, IN_ABSTRACT },
    };
    RUN_CASES(cases);
}

TEST(sandbox_hostile_host_access) {
    static const Case cases[] = {
        { "read_secrets.c", V(RE), 42, NULL, 2, IN_NONE },
        { "read_environment.py", V(RE), 42, NULL, 2, IN_NONE },
        { "write_outside.c", V(RE), 42, NULL, 2, IN_NONE },
        { "inherited_fds.c", V(RE), 42, NULL, 2, IN_NONE },
        { "state_write.c", V(RE), 42, NULL, 2, IN_NONE },
        { "state_read.c", V(RE), 42, NULL, 2, IN_NONE },
        { "stdin_rewrite.c", V(RE), 42, NULL, 2, IN_HELLO },
    };
    RUN_CASES(cases);
}

TEST(sandbox_hostile_compile) {
    static const Case cases[] = {
        { "compile_include_secret.c", V(CE), -1, NULL, 2, IN_NONE },
        { "compile_include_shadow.c", V(CE), -1, NULL, 2, IN_NONE },
        { "compile_include_dev_zero.c", V(CE), -1, NULL, 2, IN_NONE },
        { "compile_template_blowup.cpp", V(CE), -1, NULL, 2, IN_NONE },
    };
    RUN_CASES(cases);
}

TEST(sandbox_positive_controls) {
    static const Case cases[] = {
        { "ok_controls.c", V(OK), 0, NULL, 5, IN_NONE },
        { "ok_controls.cpp", V(OK), 0, NULL, 5, IN_NONE },
        { "ok_controls.py", V(OK), 0, NULL, 5, IN_NONE },
        { "ok_controls.js", V(OK), 0, NULL, 5, IN_NONE },
        { "ok_controls.rs", V(OK), 0, NULL, 5, IN_NONE },
    };
    Host h;
    host_setup(&h);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (!strstr(sandbox_languages(), lang_of(cases[i].file))) {
            fprintf(stderr, "    %s: language not installed here, not checked\n", cases[i].file);
            continue;
        }
        run_case(t_, &h, &cases[i]);
    }
    /* The same control as a stdin/stdout test: 200 KB compared in full, both streams kept. */
    char *src = program("ok_controls.py");
    size_t cap = 300 * 1024, n = 0;
    char *want = malloc(cap);
    for (int i = 0; i < 200 * 1024 / 64; i++) n += (size_t)snprintf(want + n, cap - n, "%s\n", "111111111111111111111111111111111111111111111111111111111111111");
    long acc = 0;
    for (int k = 0; k < 100000; k++) acc += k % 7;
    snprintf(want + n, cap - n, "%ld 7 a 2d711642 {\"a\": 2.0} [3]\n", acc);
    SandboxTest test = { "", want };
    SandboxJob job = { .lang = "python", .source = src, .tests = &test, .n_tests = 1 };
    job.limits.time_limit_s = 5;
    SandboxResult r;
    CrError e;
    CHECK(sandbox_run(&job, &r, &e) == 0);
    CHECKF(r.verdict == VERDICT_OK, "200 KB stdout test: %s", verdict_name(r.verdict));
    CHECK(r.n_tests == 1 && strlen(r.tests[0].stdout_data) == SANDBOX_KEEP_BYTES);
    CHECK(r.n_tests == 1 && strlen(r.tests[0].stderr_data) == SANDBOX_KEEP_BYTES);
    sandbox_result_free(&r);
    free(want);
    free(src);
    host_teardown(&h);
}

/* A failing program under a small memory limit is RE, not MLE, and reports its own peak:
 * the box's pid 1 is a fork of this (large) process, and wait4's ru_maxrss counts the RSS a
 * process had before exec (box.h). Where a memory cgroup is in force, a C hello-world's
 * peak must be far below crucible's own RSS; a program touching 3x its limit is MLE. */
TEST(sandbox_memory_figures_small_limit) {
    static const char exit1[] = "int main(void) { return 1; }\n";
    static const char hello[] = "#include <stdio.h>\nint main(void) { puts(\"hi\"); return 0; }\n";
    static const char toobig[] =
        "#include <stdlib.h>\n#include <string.h>\n#include <stdio.h>\n"
        "int main(void) { size_t n = 96u << 20; char *p = malloc(n); if (!p) return 3;\n"
        "  memset(p, 1, n); long s = 0; for (size_t i = 0; i < n; i += 4096) s += p[i];\n"
        "  printf(\"%ld\\n\", s); return 0; }\n";
    static const char huge[] =
        "#include <stdlib.h>\n#include <string.h>\n#include <stdio.h>\n"
        "int main(void) { size_t n = 512u << 20; char *p = malloc(n); if (!p) return 3;\n"
        "  memset(p, 1, n); long s = 0; for (size_t i = 0; i < n; i += 4096) s += p[i];\n"
        "  printf(\"%ld\\n\", s); return 0; }\n";
    int cg = strstr(sandbox_isolation_report(), "memory v") != NULL;
    struct { const char *src; unsigned want; const char *what; } cases[] = {
        { exit1, V(RE), "exit 1 under 32 MB" },
        { hello, V(OK), "hello under 32 MB" },
        { toobig, V(MLE), "96 MB touched under 32 MB" },
        /* one allocation far past the limit: with a memory cgroup no RLIMIT_AS refuses the
         * malloc (a crash, RE); the cgroup's limit ends it as MLE. Without one, RLIMIT_AS is
         * the bound and the refused malloc ends as the program's own failure. */
        { huge, cg ? V(MLE) : V(RE) | V(MLE), "512 MB malloc'd under 32 MB" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        SandboxJob job = { .lang = "c", .source = cases[i].src };
        job.limits.time_limit_s = 5;
        job.limits.memory_limit_mb = 32;
        SandboxResult r;
        CrError e = { { 0 } };
        if (sandbox_run(&job, &r, &e) < 0) { CHECKF(0, "%s: %s", cases[i].what, e.msg); continue; }
        fprintf(stderr, "    %-28s %s, memory_kb %ld%s\n", cases[i].what, verdict_name(r.verdict), r.memory_kb,
                cg ? " (cgroup)" : " (rlimits only: an upper bound)");
        CHECKF((1u << r.verdict) & cases[i].want, "%s: %s", cases[i].what, verdict_name(r.verdict));
        if (cg && i < 2) CHECKF(r.memory_kb > 0 && r.memory_kb < 16 * 1024, "%s: memory_kb %ld", cases[i].what, r.memory_kb);
        sandbox_result_free(&r);
    }
    sandbox_shutdown();
}

/* V8 sizes its heap from a flag, so the limit must reach it: 320 MB of arrays run under a
 * 1024 MB limit (a fixed 256 MB heap made this an RE), and are MLE under 128 MB. */
TEST(sandbox_javascript_heap_follows_memory_limit) {
    if (!sandbox_lang_available(sandbox_lang_find("javascript"))) {
        SKIP("node is not installed: the JavaScript heap flag NOT checked");
        return;
    }
    static const char src[] =
        "const a = []; for (let i = 0; i < 40; i++) a.push(new Array(1 << 20).fill(i + 0.5));\n"
        "console.log(a.length);\n";
    long limits[] = { 1024, 128 };
    /* under 128 MB: any failure (V8 may thrash in GC until the time limit on a loaded machine) */
    unsigned want[] = { V(OK), V(MLE) | V(RE) | V(TLE) };
    for (int i = 0; i < 2; i++) {
        SandboxJob job = { .lang = "javascript", .source = src, .stdin_data = "" };
        job.limits.time_limit_s = 10;
        job.limits.memory_limit_mb = limits[i];
        SandboxResult r;
        CrError e = { { 0 } };
        if (sandbox_run(&job, &r, &e) < 0) { CHECKF(0, "%s", e.msg); continue; }
        fprintf(stderr, "    320 MB of arrays under %ld MB: %s\n", limits[i], verdict_name(r.verdict));
        CHECKF((1u << r.verdict) & want[i], "under %ld MB: %s (%s)", limits[i], verdict_name(r.verdict),
               r.n_tests ? r.tests[0].stderr_data : "");
        sandbox_result_free(&r);
    }
    sandbox_shutdown();
}

/* EvalPlus's test code imports numpy: numpy (with OpenBLAS, which asks for NUMA placement
 * and one thread per host core) must import and compute in the box. */
TEST(sandbox_python_numpy_imports) {
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        SKIP("/usr/bin/python3 has no numpy (make deps installs python3-numpy): NOT checked");
        return;
    }
    static const char src[] = "import numpy as np\nprint(int(np.arange(5).sum()), bool(np.isclose(0.1 + 0.2, 0.3)))\n";
    SandboxTest t = { .stdin_data = "", .expected_stdout = "10 True" };
    SandboxJob job = { .lang = "python", .source = src, .tests = &t, .n_tests = 1 };
    job.limits.time_limit_s = 10;
    SandboxResult r;
    CrError e = { { 0 } };
    if (sandbox_run(&job, &r, &e) < 0) { CHECKF(0, "%s", e.msg); return; }
    CHECKF(r.verdict == VERDICT_OK, "numpy in the box: %s (%s%s)", verdict_name(r.verdict),
           r.n_tests ? r.tests[0].stderr_data : "", r.n_tests && r.tests[0].blocked_syscall ? r.tests[0].blocked_syscall : "");
    sandbox_result_free(&r);
    sandbox_shutdown();
}

/* ---- verdict forging (assertion tests) ------------------------------------------ */

static const char k_add_test[] =
    "def check(candidate):\n"
    "    assert candidate(1, 2) == 3\n"
    "    assert candidate(-1, 1) == 0\n"
    "    assert candidate(10, 5) == 15\n"
    "    assert abs(candidate(0.5, 0.25) - 0.75) < 1e-9\n"
    "    assert len([candidate(1, 1)]) == 1\n";

static Verdict assert_run(TestCtx *t_, Host *h, const char *name, const char *src) {
    SandboxJob job = { .lang = "python", .source = src, .test_code = k_add_test, .entry_point = "add" };
    job.limits.time_limit_s = 3;
    SandboxResult r;
    CrError e = { { 0 } };
    if (sandbox_run(&job, &r, &e) < 0) { CHECKF(0, "%s: %s", name, e.msg); return VERDICT_IE; }
    Verdict v = r.verdict;
    fprintf(stderr, "    %-28s %s\n", name, verdict_name(v));
    host_check(t_, h, name, &r);
    for (int i = 0; i < r.n_tests; i++) CHECKF(!contains(r.tests[i].stdout_data, "0000000000000000000000000000000000") || v != VERDICT_OK, "%s", name);
    sandbox_result_free(&r);
    return v;
}

TEST(sandbox_verdict_forging) {
    Host h;
    host_setup(&h);
    /* the honest solution passes: the harness is not refusing everything */
    CHECK(assert_run(t_, &h, "honest add", "def add(a, b):\n    return a + b\n") == VERDICT_OK);
    CHECK(assert_run(t_, &h, "honest add, helper + import", "import math\ndef helper(x):\n    return x\n"
                     "def add(a, b):\n    return helper(a) + math.fsum([b])\n") == VERDICT_OK);
    CHECK(assert_run(t_, &h, "wrong add", "def add(a, b):\n    return a - b\n") == VERDICT_WA);
    static const char *const forged[] = { "forge_sys_exit.py", "forge_os_exit.py", "forge_atexit.py",
                                          "forge_excepthook.py", "forge_print_passed.py", "forge_always_equal.py",
                                          "forge_steal_nonce.py", "forge_patch_harness.py",
                                          "forge_shadow_builtins.py" };
    for (size_t i = 0; i < sizeof forged / sizeof forged[0]; i++) {
        char *src = program(forged[i]);
        Verdict v = assert_run(t_, &h, forged[i], src);
        CHECKF(v != VERDICT_OK && v != VERDICT_IE, "%s: forged a pass (verdict %s)", forged[i], verdict_name(v));
        free(src);
    }
    host_teardown(&h);
}

/* ---- judging details --------------------------------------------------------------- */

TEST(sandbox_output_comparison) {
    CHECK(sandbox_output_matches("3\n", 2, "3"));
    CHECK(sandbox_output_matches("3   \r\n\n\n", 8, "3\n"));
    CHECK(sandbox_output_matches("a b\nc\n", 6, "a b  \nc"));
    CHECK(!sandbox_output_matches(" 3\n", 3, "3"));        /* leading space matters */
    CHECK(!sandbox_output_matches("3\n4\n", 4, "3"));
    CHECK(!sandbox_output_matches("", 0, "3"));
    CHECK(!sandbox_output_matches("3\n\n4", 4, "3\n4"));  /* inner blank line matters */
    CHECK(sandbox_output_matches("", 0, "\n\n"));
}

TEST(sandbox_stdio_tests_and_json) {
    SandboxTest tests[3] = { { "1 2\n", "3\n" }, { "5 5", "11" }, { "100 -1", "99" } };
    SandboxJob job = { .lang = "c", .tests = tests, .n_tests = 3,
                       .source = "#include <stdio.h>\nint main(void){int a,b;if(scanf(\"%d %d\",&a,&b)!=2)return 1;"
                                 "printf(\"%d\\n\",a+b);return 0;}\n" };
    SandboxResult r;
    CrError e;
    CHECK(sandbox_run(&job, &r, &e) == 0);
    CHECK(r.verdict == VERDICT_WA && r.passed == 2 && r.total == 3 && r.n_tests == 3);
    CHECK(r.compiled && r.compile_exit_code == 0);
    CHECK(r.n_tests == 3 && r.tests[1].verdict == VERDICT_WA && !strcmp(r.tests[1].stdout_data, "10\n"));
    char *json = sandbox_result_to_json(&r);
    SandboxResult back;
    CHECK(sandbox_result_from_json(json, &back, &e) == 0);
    CHECK(back.verdict == r.verdict && back.passed == 2 && back.n_tests == 3 && back.compiled);
    char *json2 = sandbox_result_to_json(&back);
    CHECK(strcmp(json, json2) == 0);
    free(json);
    free(json2);
    sandbox_result_free(&back);
    sandbox_result_free(&r);
    /* compile error keeps the compiler's full output */
    SandboxJob bad = { .lang = "cpp", .source = "int main() { return undefined_name; }\n" };
    CHECK(sandbox_run(&bad, &r, &e) == 0);
    CHECK(r.verdict == VERDICT_CE && r.compile_exit_code != 0 && contains(r.compile_output, "undefined_name"));
    sandbox_result_free(&r);
    /* a runtime error and an unknown language */
    SandboxJob re = { .lang = "python", .source = "raise ValueError('boom')\n" };
    CHECK(sandbox_run(&re, &r, &e) == 0);
    CHECK(r.verdict == VERDICT_RE && r.tests[0].exit_code == 1 && contains(r.tests[0].stderr_data, "boom"));
    sandbox_result_free(&r);
    SandboxJob unk = { .lang = "cobol", .source = "x" };
    CHECK(sandbox_run(&unk, &r, &e) < 0 && strstr(e.msg, "cobol"));
    sandbox_shutdown();
}

/* ---- the CLI contract ------------------------------------------------------------------ */

static int run_cli(const char *args, char *out, size_t cap) {
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s sandbox run %s 2>/dev/null", test_crucible_bin(), args);
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(sandbox_cli_contract) {
    char *dir = test_tmpdir();
    char src[512], tests[512], bad[512], args[2048];
    snprintf(src, sizeof src, "%s/echo.py", dir);
    snprintf(tests, sizeof tests, "%s/tests.json", dir);
    snprintf(bad, sizeof bad, "%s/bad.json", dir);
    FILE *f = fopen(src, "w");
    fputs("import sys\nprint(sys.stdin.read().strip().upper())\n", f);
    fclose(f);
    f = fopen(tests, "w");
    fputs("{\"tests\": [{\"stdin\": \"ab\", \"stdout\": \"AB\"}, {\"stdin\": \"x\", \"stdout\": \"y\"}]}", f);
    fclose(f);
    f = fopen(bad, "w");
    fputs("{\"tests\": [{\"stdin\": 3}]}", f);
    fclose(f);
    char *out = malloc(1 << 20);
    snprintf(args, sizeof args, "--lang python --tests %s %s", tests, src);
    CHECK(run_cli(args, out, 1 << 20) == 0);  /* WA is still a verdict: exit 0 */
    SandboxResult r;
    CrError e;
    CHECKF(sandbox_result_from_json(out, &r, &e) == 0, "%s", e.msg);
    CHECK(r.verdict == VERDICT_WA && r.passed == 1 && r.total == 2 && !r.compiled);
    CHECK(strstr(out, "\"compile\":null") != NULL);
    CHECK(strchr(out, '\n') == out + strlen(out) - 1);  /* exactly one line, one object */
    sandbox_result_free(&r);
    snprintf(args, sizeof args, "--lang python --time-limit 1 %s", src);  /* run once, empty stdin */
    CHECK(run_cli(args, out, 1 << 20) == 0 && strstr(out, "\"verdict\":\"OK\""));
    snprintf(args, sizeof args, "--lang cobol %s", src);
    CHECK(run_cli(args, out, 1 << 20) == 2);
    snprintf(args, sizeof args, "--lang python --tests %s %s", bad, src);
    CHECK(run_cli(args, out, 1 << 20) == 2);
    snprintf(args, sizeof args, "--lang python %s/missing.py", dir);
    CHECK(run_cli(args, out, 1 << 20) == 2);
    CHECK(run_cli("--lang python", out, 1 << 20) == 2);
    free(out);
    free(dir);
}

/* ---- the pool -------------------------------------------------------------------------- */

TEST(sandbox_pool_parallel) {
    CrError e = { { 0 } };
    SandboxPool *p = sandbox_pool_create(2, &e);
    CHECKF(p != NULL, "%s", e.msg);
    if (!p) return;
    static const char *const srcs[] = { "print(1)\n", "print(2)\n", "raise SystemExit(3)\n", "while True: pass\n",
                                        "print(5)\n", "import os\nos.kill(os.getpid(), 9)\n", "print(7)\n" };
    const int n = (int)(sizeof srcs / sizeof srcs[0]);
    for (int i = 0; i < n; i++) {
        SandboxJob job = { .lang = "python", .source = srcs[i] };
        job.limits.time_limit_s = 1;
        CHECK(sandbox_pool_submit(p, &job, (uint64_t)(1000 + i), &e) == 0);
    }
    CHECK(sandbox_pool_pending(p) == n);
    int seen[7] = { 0 };
    for (int k = 0; k < n; k++) {
        uint64_t tag = 0;
        SandboxResult r;
        int rc = sandbox_pool_next(p, &tag, &r, &e);
        CHECKF(rc == 0, "%s", e.msg);
        if (rc < 0) break;
        int i = (int)(tag - 1000);
        CHECK(i >= 0 && i < n && !seen[i]);
        if (i < 0 || i >= n) { sandbox_result_free(&r); continue; }
        seen[i] = 1;
        Verdict want = i == 2 ? VERDICT_RE : i == 3 ? VERDICT_TLE : i == 5 ? VERDICT_RE : VERDICT_OK;
        CHECKF(r.verdict == want, "job %d: %s", i, verdict_name(r.verdict));
        if (want == VERDICT_OK) CHECK(r.n_tests == 1 && r.tests[0].stdout_data[0] == '0' + i + 1);
        if (i == 5) CHECK(r.tests[0].signal == 9);
        sandbox_result_free(&r);
    }
    CHECK(sandbox_pool_pending(p) == 0);
    uint64_t tag;
    SandboxResult r;
    CHECK(sandbox_pool_next(p, &tag, &r, &e) < 0);  /* nothing left: an error, not a hang */
    SandboxJob badjob = { .lang = "cobol", .source = "x" };
    CHECK(sandbox_pool_submit(p, &badjob, 7, &e) == 0);
    CHECK(sandbox_pool_next(p, &tag, &r, &e) < 0 && tag == 7 && strstr(e.msg, "cobol"));
    sandbox_pool_free(p);
}

/* ---- fallback when the kernel refuses namespaces ---------------------------------------- */

TEST(sandbox_namespace_fallback_reported) {
    /* Simulate a kernel that refuses the net and ipc namespaces: the sandbox must keep working
     * with the rest and say what is not in force. */
    sandbox_shutdown();
    setenv("CRUCIBLE_SANDBOX_DISABLE", "net,ipc", 1);
    const char *rep = sandbox_isolation_report();
    fprintf(stderr, "    %s\n", rep);
    CHECK(strstr(rep, "refused: ipc,net") != NULL);
    CHECK(strstr(rep, "namespaces: user,pid,mount,uts") != NULL);
    SandboxJob job = { .lang = "c", .source = "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n" };
    SandboxResult r;
    CrError e;
    CHECK(sandbox_run(&job, &r, &e) == 0);
    CHECK(r.verdict == VERDICT_OK && r.n_tests == 1 && !strcmp(r.tests[0].stdout_data, "hi\n"));
    sandbox_result_free(&r);
    /* seccomp still refuses sockets without the net namespace */
    char *src = program("socket_inet.c");
    SandboxJob sj = { .lang = "c", .source = src, .stdin_data = "1\n" };
    CHECK(sandbox_run(&sj, &r, &e) == 0);
    CHECK(r.verdict == VERDICT_SV);
    sandbox_result_free(&r);
    free(src);
    unsetenv("CRUCIBLE_SANDBOX_DISABLE");
    sandbox_shutdown();
}

TEST(sandbox_wire_format_rejects_garbage) {
    SandboxResult r;
    SandboxJob j;
    CrError e;
    static const char *const bad_results[] = {
        "", "{", "[]", "{\"verdict\":\"XX\",\"passed\":0,\"total\":0,\"time_ms\":0,\"memory_kb\":0,\"tests\":[]}",
        "{\"verdict\":\"OK\",\"passed\":0,\"total\":0,\"time_ms\":0,\"memory_kb\":0}",
        "{\"verdict\":\"OK\",\"passed\":1,\"total\":1,\"time_ms\":0,\"memory_kb\":0,\"tests\":[{\"verdict\":\"OK\"}]}",
    };
    for (size_t i = 0; i < sizeof bad_results / sizeof bad_results[0]; i++) {
        CHECKF(sandbox_result_from_json(bad_results[i], &r, &e) < 0, "accepted %s", bad_results[i]);
        CHECK(e.msg[0] != 0);
    }
    CHECK(sandbox_job_from_json("{\"lang\":\"c\",\"tests\":{}}", &j, &e) < 0 && strstr(e.msg, "tests"));
    CHECK(sandbox_job_from_json("{\"lang\":\"c\",\"tests\":[{\"stdin\":\"1\"}]}", &j, &e) < 0 && strstr(e.msg, "stdout"));
    CHECK(sandbox_job_from_json("not json", &j, &e) < 0);
    /* a job survives the round trip */
    SandboxTest t[2] = { { "1 2", "3" }, { NULL, "x" } };
    SandboxJob job = { .lang = "c", .source = "int main(){}", .tests = t, .n_tests = 2 };
    job.limits.time_limit_s = 1.5;
    char *s = sandbox_job_to_json(&job);
    CHECK(sandbox_job_from_json(s, &j, &e) == 0);
    CHECK(!strcmp(j.lang, "c") && j.n_tests == 2 && !strcmp(j.tests[0].expected_stdout, "3") &&
          j.tests[1].stdin_data == NULL && j.limits.time_limit_s == 1.5);
    sandbox_job_free_parsed(&j);
    free(s);
}

/* ---- host-side safety of the scratch directories ------------------------------------------ */

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) { perror(path); abort(); }
}

static int file_is(const char *path, const char *text) {
    CrError e;
    size_t n;
    char *s = cr_read_file(path, &n, &e);
    int ok = s && n == strlen(text) && memcmp(s, text, n) == 0;
    free(s);
    return ok;
}

static int dir_entries(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
    closedir(d);
    return n;
}

/* Names like the scratch directories' planted by someone else in /tmp: links to a victim
 * directory at the names of a dead supervisor (swept) and of the next one (its pid known before
 * it starts), and a real directory of another uid at a dead supervisor's name. A sandbox job and
 * its shutdown must neither write into nor remove anything of them. */
TEST(sandbox_scratch_dirs_never_follow_links) {
    char *dir = test_tmpdir();
    char victim[600], sub[700], a[700], b[800];
    snprintf(victim, sizeof victim, "%s/victim", dir);
    snprintf(sub, sizeof sub, "%s/sub", victim);
    snprintf(a, sizeof a, "%s/a.txt", victim);
    snprintf(b, sizeof b, "%s/b.txt", sub);
    CHECK(mkdir(victim, 0755) == 0 && mkdir(sub, 0755) == 0);
    write_text(a, "precious a\n");
    write_text(b, "precious b\n");
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, NULL, 0);
    int go[2];
    CHECK(pipe(go) == 0);
    pid_t sup = fork();
    if (sup == 0) {  /* the next supervisor: waits until the names are planted */
        char c;
        close(go[1]);
        if (read(go[0], &c, 1) != 1) _exit(3);
        SandboxJob job = { .lang = "c", .source = "#include <stdio.h>\nint main(void){puts(\"hi\");return 0;}\n" };
        SandboxResult r;
        CrError e;
        if (sandbox_run(&job, &r, &e) < 0) { fprintf(stderr, "    %s\n", e.msg); _exit(2); }
        int ok = r.verdict == VERDICT_OK;
        sandbox_result_free(&r);
        sandbox_shutdown();
        _exit(ok ? 0 : 1);
    }
    close(go[0]);
    char links[4][96], other[96], other_file[128];
    snprintf(links[0], sizeof links[0], "/tmp/crucible-sbx-%ld", (long)dead);
    snprintf(links[1], sizeof links[1], "/tmp/crucible-sbx-tc-%ld", (long)dead);
    snprintf(links[2], sizeof links[2], "/tmp/crucible-sbx-%ld", (long)sup);
    snprintf(links[3], sizeof links[3], "/tmp/crucible-sbx-tc-%ld", (long)sup);
    for (int i = 0; i < 4; i++) CHECKF(symlink(victim, links[i]) == 0, "symlink %s: %s", links[i], strerror(errno));
    snprintf(other, sizeof other, "/tmp/crucible-sbx-%ld-planted", (long)dead);
    snprintf(other_file, sizeof other_file, "%s/keep.txt", other);
    CHECK(mkdir(other, 0755) == 0);
    write_text(other_file, "not yours\n");
    CHECK(chown(other_file, 54321, 54321) == 0 && chown(other, 54321, 54321) == 0);
    CHECK(write(go[1], "g", 1) == 1);
    close(go[1]);
    int st = 0;
    waitpid(sup, &st, 0);
    CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the sandbox job under planted names did not end OK (status 0x%x)", st);
    CHECKF(file_is(a, "precious a\n"), "%s was removed or changed", a);
    CHECKF(file_is(b, "precious b\n"), "%s was removed or changed", b);
    int n = dir_entries(victim);
    CHECKF(n == 2, "the victim directory has %d entries, expected its 2 (the sandbox wrote into it)", n);
    CHECKF(file_is(other_file, "not yours\n"), "another uid's directory at a stale name was removed");
    fprintf(stderr, "    links at a dead (%ld) and the next (%ld) supervisor's names: victim %s; another uid's dir %s\n",
            (long)dead, (long)sup, n == 2 && file_is(a, "precious a\n") ? "intact" : "DAMAGED",
            file_is(other_file, "not yours\n") ? "kept" : "REMOVED");
    for (int i = 0; i < 4; i++) unlink(links[i]);
    unlink(other_file);
    rmdir(other);
    free(dir);
}

/* ---- no process outlives a supervisor that dies --------------------------------------------- */

/* Live (not zombie) processes whose real uid is one of a supervisor's box uids (box.c: 1000000 +
 * pid for the program, 2000000 + pid for the box's root and the namespace holder); their pids in
 * out[] when given. */
static int procs_of_supervisor(pid_t sup, pid_t *out, int cap) {
    DIR *d = opendir("/proc");
    if (!d) return 0;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] < '0' || de->d_name[0] > '9') continue;
        char p[300], line[256];
        snprintf(p, sizeof p, "/proc/%s/status", de->d_name);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        int zombie = 0;
        long uid = -1;
        while (fgets(line, sizeof line, f)) {
            if (!strncmp(line, "State:", 6) && strchr(line, 'Z')) zombie = 1;
            if (!strncmp(line, "Uid:", 4)) uid = strtol(line + 4, NULL, 10);
        }
        fclose(f);
        if (!zombie && (uid == 1000000 + (long)sup || uid == 2000000 + (long)sup)) {
            if (out && n < cap) out[n] = (pid_t)atol(de->d_name);
            n++;
        }
    }
    closedir(d);
    return n;
}

/* Wait (up to `s` seconds) until the supervisor's program runs: a process of its program uid. */
static int wait_program_running(pid_t sup, double s) {
    for (int i = 0; i < (int)(s * 20); i++) {
        pid_t p[16];
        int n = procs_of_supervisor(sup, p, 16);
        for (int k = 0; k < n && k < 16; k++) {
            char path[64], line[256];
            snprintf(path, sizeof path, "/proc/%ld/status", (long)p[k]);
            FILE *f = fopen(path, "r");
            long uid = -1;
            while (f && fgets(line, sizeof line, f)) if (!strncmp(line, "Uid:", 4)) uid = strtol(line + 4, NULL, 10);
            if (f) fclose(f);
            if (uid == 1000000 + (long)sup) return 1;
        }
        usleep(50000);
    }
    return 0;
}

/* After `sup` is gone: its box processes (the holder included) must follow within 2 s; any
 * left are reported and killed. */
static void check_none_survive(TestCtx *t_, pid_t sup, const char *how) {
    int n = 0;
    for (int i = 0; i < 40 && (n = procs_of_supervisor(sup, NULL, 0)) > 0; i++) usleep(50000);
    CHECKF(n == 0, "%s: %d process(es) of the dead supervisor %ld survive (the namespace holder?)", how, n, (long)sup);
    fprintf(stderr, "    %s: %d box process(es) left after the supervisor ended\n", how, n);
    pid_t p[64];
    n = procs_of_supervisor(sup, p, 64);
    for (int k = 0; k < n && k < 64; k++) kill(p[k], SIGKILL);
}

TEST(sandbox_no_holder_outlives_its_supervisor) {
    if (!strstr(sandbox_isolation_report(), "namespace holder")) SKIP("no namespace holder on this machine: NOT checked");
    sandbox_shutdown();
    char *dir = test_tmpdir();
    char src[600];
    snprintf(src, sizeof src, "%s/sleep.c", dir);
    write_text(src, "#include <unistd.h>\nint main(void) { sleep(30); return 0; }\n");
    /* 1. `crucible sandbox run` killed by SIGKILL while its program runs */
    pid_t sup = fork();
    if (sup == 0) {
        int nul = open("/dev/null", O_WRONLY);
        if (nul < 0 || dup2(nul, 1) < 0 || dup2(nul, 2) < 0) _exit(127);
        execl(test_crucible_bin(), "crucible", "sandbox", "run", "--lang", "c", "--time-limit", "20", src, (char *)NULL);
        _exit(127);
    }
    CHECKF(wait_program_running(sup, 30), "the sleeping program of `crucible sandbox run` never started");
    kill(sup, SIGKILL);
    waitpid(sup, NULL, 0);
    check_none_survive(t_, sup, "crucible sandbox run, SIGKILL");
    /* 2. the pool freed while its worker judges: the worker gets SIGTERM and exits at once */
    CrError e = { { 0 } };
    SandboxPool *p = sandbox_pool_create(1, &e);
    CHECKF(p != NULL, "%s", e.msg);
    if (p) {
        SandboxJob job = { .lang = "python", .source = "import time\ntime.sleep(30)\n" };
        job.limits.time_limit_s = 20;
        CHECK(sandbox_pool_submit(p, &job, 1, &e) == 0);
        /* the worker: our only child running `crucible sandbox worker` */
        pid_t w = -1;
        for (int i = 0; i < 100 && w < 0; i++) {
            DIR *d = opendir("/proc");
            struct dirent *de;
            while (d && (de = readdir(d))) {
                char path[300], line[256];
                snprintf(path, sizeof path, "/proc/%s/status", de->d_name);
                FILE *f = fopen(path, "r");
                long ppid = -1;
                while (f && fgets(line, sizeof line, f)) if (!strncmp(line, "PPid:", 5)) ppid = strtol(line + 5, NULL, 10);
                if (f) fclose(f);
                if (ppid == (long)getpid()) w = (pid_t)atol(de->d_name);
            }
            if (d) closedir(d);
            if (w < 0) usleep(50000);
        }
        CHECKF(w > 0 && wait_program_running(w, 30), "the pool's worker never started its program");
        sandbox_pool_free(p);
        if (w > 0) check_none_survive(t_, w, "pool freed while busy (SIGTERM)");
    }
    free(dir);
}

/* ---- the verdict JSON is valid UTF-8 --------------------------------------------------------- */

/* An independent check: decode each sequence to its code point, then require the shortest form,
 * no surrogate and nothing past U+10FFFF (RFC 3629). Returns the offset of the first bad byte,
 * or -1 when all of s[0..n) is valid. */
static long first_bad_utf8(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        int len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + (size_t)len > n) return (long)i;
        unsigned long cp = len == 1 ? c : c & (0xFFu >> (len + 1));
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return (long)i;
            cp = cp << 6 | (s[i + k] & 0x3F);
        }
        static const unsigned long min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
        if (cp < min_cp[len] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) return (long)i;
        i += (size_t)len;
    }
    return -1;
}

TEST(sandbox_verdict_json_is_utf8) {
    Host h;
    host_setup(&h);
    const char *files[] = { "invalid_utf8.c", "compile_invalid_utf8.c" };
    for (int f = 0; f < 2; f++) {
        char *src = program(files[f]);
        SandboxJob job = { .lang = "c", .source = src };
        job.limits.time_limit_s = 2;
        SandboxResult r;
        CrError e = { { 0 } };
        int rc = sandbox_run(&job, &r, &e);
        CHECKF(rc == 0, "%s: %s", files[f], e.msg);
        if (rc < 0) { free(src); continue; }
        char *json = sandbox_result_to_json(&r);
        long bad = first_bad_utf8((const unsigned char *)json, strlen(json));
        fprintf(stderr, "    %-24s %s, JSON %s\n", files[f], verdict_name(r.verdict), bad < 0 ? "valid UTF-8" : "NOT UTF-8");
        CHECKF(bad < 0, "%s: the verdict JSON is not UTF-8 at byte %ld: ...%.40s", files[f], bad, json + (bad > 20 ? bad - 20 : 0));
        SandboxResult back;
        CHECKF(sandbox_result_from_json(json, &back, &e) == 0, "%s: %s", files[f], e.msg);
        sandbox_result_free(&back);
        if (f == 0) {
            /* each byte that starts no well-formed sequence is one '?'; the valid edge cases stay */
            CHECK(r.verdict == VERDICT_OK && r.n_tests == 1);
            if (r.n_tests == 1) {
                const char *want = "A???B???C????D????E????F?G\x1b[31m\n"
                                   "\xed\x9f\xbf|\xee\x80\x80|\xf0\x90\x80\x80|\xf4\x8f\xbf\xbf|\xc3\xa9\n";
                CHECKF(!strcmp(r.tests[0].stdout_data, want), "stdout kept as \"%s\"", r.tests[0].stdout_data);
                CHECKF(!strcmp(r.tests[0].stderr_data, "?????"), "stderr kept as \"%s\"", r.tests[0].stderr_data);
            }
        } else {
            CHECK(r.verdict == VERDICT_CE && contains(r.compile_output, "bad bytes: ???|????|end"));
        }
        host_check(t_, &h, files[f], &r);
        free(json);
        sandbox_result_free(&r);
        free(src);
    }
    host_teardown(&h);
}

/* ---- NUL bytes: carried in a binary stdin, refused where JSON would cut them ------------------ */

TEST(sandbox_nul_bytes) {
    static const char count_src[] =
        "#include <stdio.h>\nint main(void){unsigned char b[256];size_t n=fread(b,1,sizeof b,stdin);\n"
        "unsigned long s=0;for(size_t i=0;i<n;i++)s=s*31+b[i];printf(\"%zu %lu\\n\",n,s);return 0;}\n";
    static const char bin[9] = { 'a', 'b', 'c', 0, 'd', 'e', 'f', 'g', 'h' };
    unsigned long hash = 0;
    for (int i = 0; i < 9; i++) hash = hash * 31 + (unsigned char)bin[i];
    char want[64];
    snprintf(want, sizeof want, "9 %lu\n", hash);
    /* 1. sandbox_run: a binary stdin reaches the program whole */
    SandboxJob job = { .lang = "c", .source = count_src, .stdin_data = bin, .stdin_len = sizeof bin };
    SandboxResult r;
    CrError e = { { 0 } };
    CHECKF(sandbox_run(&job, &r, &e) == 0, "%s", e.msg);
    CHECKF(r.verdict == VERDICT_OK && r.n_tests == 1 && !strcmp(r.tests[0].stdout_data, want),
           "binary stdin: %s \"%s\", expected \"%s\"", verdict_name(r.verdict), r.n_tests ? r.tests[0].stdout_data : "", want);
    sandbox_result_free(&r);
    /* 2. the pool's wire format keeps it (as stdin_hex) */
    char *js = sandbox_job_to_json(&job);
    SandboxJob back;
    CHECKF(sandbox_job_from_json(js, &back, &e) == 0, "%s", e.msg);
    CHECK(back.stdin_len == sizeof bin && back.stdin_data && !memcmp(back.stdin_data, bin, sizeof bin));
    sandbox_job_free_parsed(&back);
    free(js);
    /* 3. assertion tests: a correct candidate that printed a NUL before the harness's proof is OK */
    static const char noisy[] = "import sys\ndef add(a, b):\n    sys.stdout.write('debug\\x00\\n')\n    return a + b\n";
    SandboxJob aj = { .lang = "python", .source = noisy, .test_code = k_add_test, .entry_point = "add" };
    aj.limits.time_limit_s = 3;
    CHECKF(sandbox_run(&aj, &r, &e) == 0, "%s", e.msg);
    fprintf(stderr, "    candidate printing \"debug\\0\": %s\n", verdict_name(r.verdict));
    CHECKF(r.verdict == VERDICT_OK, "a correct candidate printing a NUL: %s", verdict_name(r.verdict));
    sandbox_result_free(&r);
    /* 4. the CLI: --stdin FILE is binary; a tests file with \u0000 is refused, naming file and field */
    char *dir = test_tmpdir();
    char src[600], in[600], t1[600], t2[600], t3[600], args[2400];
    snprintf(src, sizeof src, "%s/count.c", dir);
    snprintf(in, sizeof in, "%s/bin.in", dir);
    snprintf(t1, sizeof t1, "%s/nul_stdout.json", dir);
    snprintf(t2, sizeof t2, "%s/nul_stdin.json", dir);
    snprintf(t3, sizeof t3, "%s/escaped_backslash.json", dir);
    write_text(src, count_src);
    FILE *f = fopen(in, "wb");
    CHECK(f && fwrite(bin, 1, sizeof bin, f) == sizeof bin && fclose(f) == 0);
    write_text(t1, "{\"tests\": [{\"stdin\": \"\", \"stdout\": \"0 0\"},\n  {\"stdin\": \"\", \"stdout\": \"0 0\\u0000junk\"}]}");
    write_text(t2, "{\"tests\": [{\"stdin\": \"ab\\u0000cd\", \"stdout\": \"5\"}]}");
    write_text(t3, "{\"tests\": [{\"stdin\": \"\\\\u0000\", \"stdout\": \"6 0\"}]}");  /* the text \u0000: no NUL */
    char *out = malloc(1 << 20);
    snprintf(args, sizeof args, "--lang c --stdin %s %s", in, src);
    CHECK(run_cli(args, out, 1 << 20) == 0);
    char want_json[96];
    snprintf(want_json, sizeof want_json, "\"stdout\":\"9 %lu\\n\"", hash);  /* JSON escapes the newline */
    CHECKF(strstr(out, want_json) != NULL, "crucible sandbox run --stdin (binary): %.300s", out);
    char cmd[2600];
    const char *files[2] = { t1, t2 }, *fields[2] = { "\"stdout\"", "\"stdin\"" }, *pos[2] = { ":2:", ":1:" };
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "%s sandbox run --lang c --tests %s %s 2>&1", test_crucible_bin(), files[i], src);
        FILE *p = popen(cmd, "r");
        size_t n = p ? fread(out, 1, (1 << 20) - 1, p) : 0;
        out[n] = 0;
        int st = p ? pclose(p) : -1;
        fprintf(stderr, "    %s\n", out[0] ? strtok(out, "\n") : "(no output)");
        CHECKF(WIFEXITED(st) && WEXITSTATUS(st) == 2, "%s: a tests file with \\u0000 was not refused", files[i]);
        CHECKF(strstr(out, files[i]) && strstr(out, fields[i]) && strstr(out, pos[i]) && strstr(out, "NUL"),
               "%s: the error does not name the file, line and field: %s", files[i], out);
    }
    snprintf(args, sizeof args, "--lang c --tests %s %s", t3, src);
    CHECK(run_cli(args, out, 1 << 20) == 0 && strstr(out, "\"verdict\":\"WA\""));  /* judged, not refused */
    size_t line = 0, col = 0;
    char key[32];
    CHECK(!sandbox_json_find_nul("{\"a\\\\u0000\": \"\\\\\\\\u0000\"}", 24, &line, &col, key, sizeof key));
    CHECK(sandbox_json_find_nul("{\"a\": 1,\n \"b\": \"x\\u0000\"}", 25, &line, &col, key, sizeof key) &&
          line == 2 && col == 9 && !strcmp(key, "b"));
    free(out);
    free(dir);
    sandbox_shutdown();
}
