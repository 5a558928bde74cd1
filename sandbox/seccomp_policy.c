/* sandbox/seccomp_policy.c — allow-lists -> BPF with libseccomp (see seccomp_policy.h). */
#include "sandbox/seccomp_policy.h"

#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/alloc.h"

/* What any program needs: files (the mount namespace decides what exists), memory, signals
 * inside its own pid namespace, time, threads' futexes, polling, AF_UNIX IPC. */
static const char *const k_base[] = {
    "read", "write", "readv", "writev", "pread64", "pwrite64", "preadv", "pwritev", "preadv2",
    "pwritev2", "lseek", "close", "close_range", "fstat", "stat", "lstat", "newfstatat", "statx",
    "statfs", "fstatfs", "open", "openat", "openat2", "access", "faccessat", "faccessat2",
    "readlink", "readlinkat", "getdents", "getdents64", "getcwd", "chdir", "fchdir", "mkdir",
    "mkdirat", "rmdir", "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat",
    "symlink", "symlinkat", "ftruncate", "truncate", "fsync", "fdatasync", "fcntl", "flock",
    "dup", "dup2", "dup3", "pipe", "pipe2", "umask", "chmod", "fchmod", "fchmodat", "utimensat",
    "futimesat", "utimes", "utime", "sendfile", "copy_file_range", "splice", "tee", "fadvise64",
    "mmap", "munmap", "mprotect", "mremap", "brk", "madvise", "mincore", "msync", "mlock",
    "munlock", "get_mempolicy", "membarrier",
    "rt_sigaction", "rt_sigprocmask", "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait",
    "rt_sigpending", "rt_sigqueueinfo", "rt_tgsigqueueinfo", "sigaltstack", "kill", "tgkill",
    "tkill", "pause", "alarm", "setitimer", "getitimer",
    "exit", "exit_group", "wait4", "waitid", "execve", "execveat",
    "getpid", "gettid", "getppid", "getuid", "geteuid", "getgid", "getegid", "getresuid",
    "getresgid", "getgroups", "getpgrp", "getpgid", "getsid", "setsid", "setpgid",
    "clock_gettime", "clock_getres", "clock_nanosleep", "nanosleep", "gettimeofday", "time",
    "times", "getrusage", "sysinfo", "uname", "getcpu",
    "futex", "futex_waitv", "set_robust_list", "get_robust_list", "set_tid_address", "rseq",
    "arch_prctl", "prlimit64", "getrlimit", "setrlimit",
    "sched_yield", "sched_getaffinity", "sched_setaffinity", "sched_getparam",
    "sched_getscheduler", "sched_get_priority_max", "sched_get_priority_min", "getpriority",
    "capget", "getrandom", "memfd_create", "eventfd", "eventfd2", "poll", "ppoll", "select", "pselect6",
    "epoll_create", "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "timerfd_create", "timerfd_settime", "timerfd_gettime", "signalfd", "signalfd4",
    "timer_create", "timer_settime", "timer_gettime", "timer_delete", "timer_getoverrun",
    "connect", "bind", "listen", "accept", "accept4", "sendto", "recvfrom", "sendmsg", "recvmsg",
    "sendmmsg", "recvmmsg", "shutdown", "getsockname", "getpeername", "setsockopt", "getsockopt",
    /* System V IPC: the box has its own IPC namespace */
    "shmget", "shmat", "shmdt", "shmctl", "semget", "semop", "semtimedop", "semctl", "msgget", "msgsnd",
    "msgrcv", "msgctl",
    NULL,
};

/* The compile step (gcc -> cc1/as/ld, javac) needs a little more around files. */
static const char *const k_compile_extra[] = {
    "fallocate", "fchown", "chown", "lchown", "fchownat", "sync_file_range", NULL,
};

/* Fail softly: runtimes probe these and fall back. */
static const char *const k_enosys[] = {
    "clone3", "io_uring_setup", "io_uring_enter", "io_uring_register",
    /* NUMA placement hints (OpenBLAS under numpy calls mbind): nothing to place in a box */
    "mbind", "set_mempolicy", NULL,
};

#define NS_FLAGS ((scmp_datum_t)(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | \
                                 CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP))

static int allow_names(scmp_filter_ctx c, const char *const *names, uint32_t action, CrError *e) {
    for (int i = 0; names && names[i]; i++) {
        int nr = seccomp_syscall_resolve_name(names[i]);
        if (nr == __NR_SCMP_ERROR) continue;  /* unknown to this libseccomp: not allowed */
        int rc = seccomp_rule_add(c, action, nr, 0);
        if (rc < 0 && rc != -EEXIST)
            return cr_error_set(e, "seccomp: rule for %s: %s", names[i], strerror(-rc));
    }
    return 0;
}

int seccomp_policy_build(SeccompStep step, int allow_fork, const char *const *extra,
                         SeccompProgram *out, CrError *e) {
    memset(out, 0, sizeof *out);
    scmp_filter_ctx c = seccomp_init(SCMP_ACT_NOTIFY);
    if (!c) return cr_error_set(e, "seccomp_init failed");
    int rc = 0;
#define TRY(x) do { if ((rc = (x)) < 0) { cr_error_set(e, "seccomp: %s: %s", #x, strerror(-rc)); goto fail; } } while (0)
    TRY(seccomp_attr_set(c, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS));
    TRY(seccomp_attr_set(c, SCMP_FLTATR_CTL_NNP, 0));  /* the child sets no_new_privs itself */
    if (allow_names(c, k_base, SCMP_ACT_ALLOW, e) < 0) goto fail;
    if (step == SECCOMP_STEP_COMPILE && allow_names(c, k_compile_extra, SCMP_ACT_ALLOW, e) < 0) goto fail;
    if (allow_names(c, extra, SCMP_ACT_ALLOW, e) < 0) goto fail;
    if (allow_names(c, k_enosys, SCMP_ACT_ERRNO(ENOSYS), e) < 0) goto fail;
    /* clone: never with namespace flags; processes only where allowed. */
    if (allow_fork || step == SECCOMP_STEP_COMPILE) {
        TRY(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, NS_FLAGS, 0)));
        TRY(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(fork), 0));
        TRY(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(vfork), 0));
    } else {
        TRY(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, NS_FLAGS | CLONE_THREAD, CLONE_THREAD)));
    }
    /* prctl: every option but PR_SET_SECCOMP. A filter the program stacks on ours would win over
     * the notification that reports a refused call (an errno action takes precedence), turning
     * SV into OK. (The seccomp syscall itself is not on the list.) The kernel reads the option
     * as an int, so the test is on the low 32 bits (a 64-bit "!= 22" lets 22 | 1 << 32 pass);
     * libseccomp has no masked "!=", so: allowed when any one of those bits differs from 22's. */
    for (int b = 0; b < 32; b++) {
        scmp_datum_t bit = (scmp_datum_t)1 << b;
        TRY(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(prctl), 1,
                             SCMP_A0(SCMP_CMP_MASKED_EQ, bit, ~(scmp_datum_t)PR_SET_SECCOMP & bit)));
    }
    /* Sockets: AF_UNIX only (the net namespace is empty anyway). */
    TRY(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX)));
    TRY(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, SCMP_A0(SCMP_CMP_EQ, AF_UNIX)));
    /* ioctl: everything but TIOCSTI. (libseccomp cannot compare one argument twice, so a command
     * with high bits set above TIOCSTI passes; harmless here: the box has no terminal at all.) */
    TRY(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                         SCMP_A1(SCMP_CMP_LT, (scmp_datum_t)TIOCSTI)));
    TRY(seccomp_rule_add(c, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
                         SCMP_A1(SCMP_CMP_GT, (scmp_datum_t)TIOCSTI)));
#undef TRY
    /* Export to a memfd and read the program back. */
    int fd = memfd_create("seccomp-bpf", MFD_CLOEXEC);
    if (fd < 0) { cr_error_set(e, "memfd_create: %s", strerror(errno)); goto fail; }
    if ((rc = seccomp_export_bpf(c, fd)) < 0) {
        close(fd);
        cr_error_set(e, "seccomp_export_bpf: %s", strerror(-rc));
        goto fail;
    }
    off_t len = lseek(fd, 0, SEEK_END);
    if (len <= 0 || len % (off_t)sizeof(struct sock_filter) != 0 ||
        len / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
        close(fd);
        cr_error_set(e, "seccomp: exported program has bad size %ld", (long)len);
        goto fail;
    }
    out->insns = cr_malloc((size_t)len);
    out->n = (unsigned short)(len / (off_t)sizeof(struct sock_filter));
    if (pread(fd, out->insns, (size_t)len, 0) != len) {
        close(fd);
        seccomp_program_free(out);
        cr_error_set(e, "seccomp: reading the exported program: %s", strerror(errno));
        goto fail;
    }
    close(fd);
    seccomp_release(c);
    return 0;
fail:
    seccomp_release(c);
    return -1;
}

void seccomp_program_free(SeccompProgram *p) {
    free(p->insns);
    p->insns = NULL;
    p->n = 0;
}

void seccomp_syscall_label(unsigned arch, int nr, char *buf, size_t cap) {
    char *name = seccomp_syscall_resolve_num_arch(arch, nr);
    if (name) snprintf(buf, cap, "%s", name);
    else snprintf(buf, cap, "syscall_%d", nr);
    free(name);
}
