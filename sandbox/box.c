/* sandbox/box.c — one isolated, supervised run (see box.h). */
#include "sandbox/box.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/alloc.h"
#include "core/strbuf.h"
#include "sandbox/lang.h"

#define BOX_INNER_ID 1000           /* uid/gid of the program inside its user namespace */
#define BOX_UID_BASE 1000000        /* outside uid = base + supervisor pid: one uid per box owner */
#define BOX_ROOT_BASE 2000000       /* outside uid of the box's own root (setup, pid 1) */
#define BOX_TMP_SIZE "64m"
#define BOX_FSIZE_BYTES (64L << 20)
#define BOX_NOFILE 256
#define MAX_ROOT_ENTRIES 24

typedef enum { ENT_LINK, ENT_DIR_BIND, ENT_FILE_BIND } EntKind;
/* `staged`: a toolchain the box's root cannot reach (under /root); the holder, while still host
 * root, binds it at base/tcN first and builds the tree from there. */
typedef struct { EntKind kind; char path[128]; char target[64]; int staged; } RootEntry;

/* Per-process state, owned by this module, created on first use (and again in a forked child
 * that uses the sandbox: keyed by pid). */
typedef struct BoxCtx {
    pid_t owner;
    char base[96];              /* /tmp/crucible-sbx-PID-XXXXXX (mkdtemp) */
    char root[128];             /* base/root: mount point of each box's root tmpfs */
    char stage[96];             /* /tmp/crucible-sbx-tc-PID-XXXXXX: staged toolchains (holder only) */
    int ns_flags;               /* namespaces in force */
    uid_t box_uid;              /* outside uid of the program */
    char cg_mem[320], cg_pids[320], cg_cpu[320];
    RootEntry ents[MAX_ROOT_ENTRIES];
    int n_ents;
    int seq;
    char report[512];
    /* The holder: a process that keeps one user + net namespace and a mount namespace whose root
     * is the prepared box tree; each run joins them and unshares only mount/ipc/uts/pid, so the
     * tree is built once per process instead of once per run. */
    pid_t holder;
    int ns_fd[3];               /* user, mnt, net of the holder; -1 when there is no holder */
} BoxCtx;

static BoxCtx g_ctx;            /* module-owned; g_ctx.owner == getpid() when valid */
static int g_atexit_done;

static const int k_ns[] = { CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUTS, CLONE_NEWNET };
static const char *const k_ns_name[] = { "user", "pid", "mount", "ipc", "uts", "net" };

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int write_file_str(const char *path, const char *s) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = write(fd, s, strlen(s));
    int saved = errno;
    close(fd);
    errno = saved;
    return n == (ssize_t)strlen(s) ? 0 : -1;
}

static long read_file_long(const char *path) {
    char buf[64];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    return strtol(buf, NULL, 10);
}

/* "oom_kill N" from memory.oom_control (v1), -1 if absent. */
static long read_oom_kills(const char *cg) {
    char path[400], buf[512];
    snprintf(path, sizeof path, "%s/memory.oom_control", cg);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return -1;
    buf[n] = 0;
    char *p = strstr(buf, "oom_kill ");
    return p ? strtol(p + 9, NULL, 10) : -1;
}

/* ---- namespace probe ---------------------------------------------------------- */

/* Which namespaces can a child create? Each is tried in a throw-away child (inside a new user
 * namespace when that one works, as the real clone will do). */
static int probe_namespaces(void) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return 0;
    pid_t pid = fork();
    if (pid < 0) { close(fds[0]); close(fds[1]); return 0; }
    if (pid == 0) {
        int ok = 0;
        if (unshare(CLONE_NEWUSER) == 0) ok |= CLONE_NEWUSER;
        for (size_t i = 1; i < sizeof k_ns / sizeof k_ns[0]; i++)
            if (unshare(k_ns[i]) == 0) ok |= k_ns[i];
        if (write(fds[1], &ok, sizeof ok) != sizeof ok) _exit(1);
        _exit(0);
    }
    close(fds[1]);
    int ok = 0;
    if (read(fds[0], &ok, sizeof ok) != sizeof ok) ok = 0;
    close(fds[0]);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {}
    return ok;
}

/* ---- cgroups (v1 memory + pids + cpuacct) ------------------------------------------ */

static void sweep_stale(const char *dir, const char *prefix);
static void remove_tree_at(int parent, const char *name, int must_own);

static int cgroup_setup(const char *controller, char *out, size_t cap) {
    out[0] = 0;
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f) return -1;
    char line[512], rel[400] = "";
    int found = 0;
    while (fgets(line, sizeof line, f)) {
        char *a = strchr(line, ':');
        char *b = a ? strchr(a + 1, ':') : NULL;
        if (!b) continue;
        *b = 0;
        /* the controller list may be "cpu,cpuacct" */
        char *list = a + 1;
        for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
            if (strcmp(tok, controller) == 0) {
                snprintf(rel, sizeof rel, "%s", b + 1);
                rel[strcspn(rel, "\n")] = 0;
                found = 1;
            }
    }
    fclose(f);
    if (!found) return -1;
    char parent[400], path[480];
    snprintf(parent, sizeof parent, "/sys/fs/cgroup/%s%s", controller, strcmp(rel, "/") == 0 ? "" : rel);
    sweep_stale(parent, "crucible-sbx-");
    snprintf(path, sizeof path, "%s/crucible-sbx-%ld", parent, (long)getpid());
    if (mkdir(path, 0755) < 0 && errno != EEXIST) return -1;
    snprintf(out, cap, "%s", path);
    return 0;
}

/* Remove leftovers of supervisors that died without cleaning up (pid no longer alive). In /tmp,
 * where anyone may plant a name, only a real directory (never a link) owned by us is removed. */
static void sweep_stale(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    size_t pl = strlen(prefix);
    int in_tmp = strncmp(dir, "/tmp", 4) == 0;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, prefix, pl) != 0) continue;
        long pid = strtol(de->d_name + pl, NULL, 10);
        if (pid <= 0 || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue;
        if (in_tmp) { remove_tree_at(dirfd(d), de->d_name, 1); continue; }
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
        rmdir(p);  /* a cgroup: removable once empty */
    }
    closedir(d);
}

/* ---- root layout ----------------------------------------------------------------- */

static void add_entry(BoxCtx *c, EntKind k, const char *path, const char *target) {
    if (c->n_ents >= MAX_ROOT_ENTRIES) return;
    RootEntry *r = &c->ents[c->n_ents++];
    r->kind = k;
    r->staged = 0;
    snprintf(r->path, sizeof r->path, "%s", path);
    snprintf(r->target, sizeof r->target, "%s", target ? target : "");
}

static void plan_root(BoxCtx *c) {
    static const char *const top[] = { "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32" };
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++) {
        struct stat st;
        if (lstat(top[i], &st) < 0) continue;
        if (S_ISLNK(st.st_mode)) {
            char t[64];
            ssize_t n = readlink(top[i], t, sizeof t - 1);
            if (n <= 0) continue;
            t[n] = 0;
            add_entry(c, ENT_LINK, top[i], t);
        } else if (S_ISDIR(st.st_mode)) {
            add_entry(c, ENT_DIR_BIND, top[i], NULL);
        }
    }
    /* Toolchains outside /usr (a table entry's toolchain_dir), each at its own path. */
    for (int i = 0; i < sandbox_lang_count(); i++) {
        const char *d = sandbox_lang_at(i)->toolchain_dir;
        struct stat st;
        if (d && stat(d, &st) == 0 && S_ISDIR(st.st_mode)) {
            add_entry(c, ENT_DIR_BIND, d, NULL);
            c->ents[c->n_ents - 1].staged = 1;
        }
    }
    /* The few /etc pieces toolchains read; nothing else of the host's /etc. */
    static const char *const etc[] = { "/etc/ld.so.cache", "/etc/alternatives" };
    for (size_t i = 0; i < sizeof etc / sizeof etc[0]; i++) {
        struct stat st;
        if (stat(etc[i], &st) < 0) continue;
        add_entry(c, S_ISDIR(st.st_mode) ? ENT_DIR_BIND : ENT_FILE_BIND, etc[i], NULL);
    }
}


static void bind_ro(int errfd, const char *src, const char *dst, int is_dir, unsigned long extra);
static _Noreturn void child_die(int errfd, const char *what);
static int write_id_map(pid_t pid, const char *which, unsigned outside);

/* The read-only part of every box's root, built at R (also used per run without the holder). */
static void build_template(const BoxCtx *c, int ef, int staged) {
    char path[256];
    const char *R = c->root;
    if (mount("tmpfs", R, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0755") < 0) child_die(ef, "root tmpfs");
    for (int i = 0; i < c->n_ents; i++) {
        const RootEntry *r = &c->ents[i];
        if (r->staged && !staged) continue;  /* reachable only through the holder */
        snprintf(path, sizeof path, "%s%s", R, r->path);
        /* parents of nested entries (/etc/..., a toolchain's path) */
        for (char *q = path + strlen(R) + 1; (q = strchr(q, '/')); q++) {
            *q = 0;
            if (mkdir(path, 0755) < 0 && errno != EEXIST) child_die(ef, path);
            *q = '/';
        }
        char src[256];
        if (r->staged) snprintf(src, sizeof src, "%s/tc%d", c->stage, i);
        else snprintf(src, sizeof src, "%s", r->path);
        if (r->kind == ENT_LINK) { if (symlink(r->target, path) < 0) child_die(ef, path); }
        else bind_ro(ef, src, path, r->kind == ENT_DIR_BIND, MS_NODEV);
    }
    static const char *const devs[] = { "null", "zero", "random", "urandom" };
    snprintf(path, sizeof path, "%s/dev", R);
    if (mkdir(path, 0755) < 0) child_die(ef, path);
    for (size_t i = 0; i < sizeof devs / sizeof devs[0]; i++) {
        char src[64];
        snprintf(src, sizeof src, "/dev/%s", devs[i]);
        snprintf(path, sizeof path, "%s/dev/%s", R, devs[i]);
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
        if (fd < 0) child_die(ef, path);
        close(fd);
        if (mount(src, path, NULL, MS_BIND, NULL) < 0) child_die(ef, src);
    }
    static const char *const fdl[][2] = { { "fd", "/proc/self/fd" }, { "stdin", "/proc/self/fd/0" },
                                          { "stdout", "/proc/self/fd/1" }, { "stderr", "/proc/self/fd/2" } };
    for (size_t i = 0; i < sizeof fdl / sizeof fdl[0]; i++) {
        snprintf(path, sizeof path, "%s/dev/%s", R, fdl[i][0]);
        if (symlink(fdl[i][1], path) < 0) child_die(ef, path);
    }
    static const char *const dirs[] = { "proc", "tmp", "box", "work" };
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        snprintf(path, sizeof path, "%s/%s", R, dirs[i]);
        if (mkdir(path, 0755) < 0) child_die(ef, path);
    }
}

/* Dies with the supervisor: set (again) after every change of the effective uid, which clears
 * the parent-death signal; a parent already gone meanwhile shows as another getppid(). */
static void holder_die_with(int ef, pid_t parent) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_die(ef, "pdeathsig");
    if (getppid() != parent) _exit(1);
}

static _Noreturn void holder_main(BoxCtx *c, int to_parent, int from_parent, pid_t parent) {
    int ef = to_parent;
    char b;
    holder_die_with(ef, parent);
    /* Still host root: stage the toolchains the box's root could not reach, in a mount namespace
     * of our own (nothing changes on the host). */
    if (unshare(CLONE_NEWNS) < 0) child_die(ef, "holder: mount namespace");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_die(ef, "holder: make / private");
    for (int i = 0; i < c->n_ents; i++) {
        if (!c->ents[i].staged || !c->stage[0]) continue;
        char tc[256];
        snprintf(tc, sizeof tc, "%s/tc%d", c->stage, i);
        if (mkdir(tc, 0755) < 0 && errno != EEXIST) child_die(ef, tc);
        if (mount(c->ents[i].path, tc, NULL, MS_BIND | MS_REC, NULL) < 0) child_die(ef, c->ents[i].path);
    }
    if (unshare(CLONE_NEWUSER) < 0) child_die(ef, "holder: user namespace");
    if (write(to_parent, "u", 1) != 1 || read(from_parent, &b, 1) != 1) _exit(1);
    if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0) child_die(ef, "holder: become box root");
    holder_die_with(ef, parent);  /* the uid change above cleared it */
    if (unshare(CLONE_NEWNS | CLONE_NEWNET) < 0) child_die(ef, "holder: mount/net namespaces");
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_die(ef, "holder: make / private");
    build_template(c, ef, 1);
    char path[256];
    /* The host's /proc stays under the box's /proc (a fresh proc is mounted over it per run; a user
     * namespace may only mount proc where a full one is visible). The submission dirs at /.subs
     * are detached in every run once /box is bound. */
    snprintf(path, sizeof path, "%s/proc", c->root);
    if (mount("/proc", path, NULL, MS_BIND | MS_REC, NULL) < 0) child_die(ef, "holder: bind /proc");
    snprintf(path, sizeof path, "%s/.subs", c->root);
    if (mkdir(path, 0700) < 0) child_die(ef, path);
    if (mount(c->base, path, NULL, MS_BIND, NULL) < 0) child_die(ef, "holder: bind the submission dirs");
    if (chdir(c->root) < 0) child_die(ef, "chdir root");
    if (syscall(SYS_pivot_root, ".", ".") < 0) child_die(ef, "pivot_root");
    if (umount2(".", MNT_DETACH) < 0) child_die(ef, "detach old root");
    if (chdir("/") < 0) child_die(ef, "chdir /");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        child_die(ef, "remount / read-only");
    if (write(to_parent, "r", 1) != 1) _exit(1);
    close(to_parent);
    for (;;) pause();
}

static int holder_start(BoxCtx *c) {
    int up[2], down[2];
    if (pipe2(up, O_CLOEXEC) < 0) return -1;
    if (pipe2(down, O_CLOEXEC) < 0) { close(up[0]); close(up[1]); return -1; }
    pid_t self = getpid();
    pid_t h = fork();
    if (h < 0) { close(up[0]); close(up[1]); close(down[0]); close(down[1]); return -1; }
    if (h == 0) {
        close(up[0]);
        close(down[1]);
        holder_main(c, up[1], down[0], self);
    }
    close(up[1]);
    close(down[0]);
    char b[256];
    int ok = read(up[0], b, 1) == 1 && b[0] == 'u' && write_id_map(h, "uid_map", c->box_uid) == 0 &&
             write_id_map(h, "gid_map", c->box_uid) == 0 && write(down[1], "m", 1) == 1;
    ssize_t n = ok ? read(up[0], b, sizeof b - 1) : 0;
    ok = ok && n == 1 && b[0] == 'r';
    if (!ok && n > 1) { b[n] = 0; fprintf(stderr, "sandbox: no namespace holder (%s); building each box's root per run\n", b); }
    close(up[0]);
    close(down[1]);
    static const char *const which[3] = { "user", "mnt", "net" };
    for (int i = 0; ok && i < 3; i++) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/ns/%s", (long)h, which[i]);
        if ((c->ns_fd[i] = open(path, O_RDONLY | O_CLOEXEC)) < 0) ok = 0;
    }
    if (!ok) {
        for (int i = 0; i < 3; i++) if (c->ns_fd[i] >= 0) { close(c->ns_fd[i]); c->ns_fd[i] = -1; }
        kill(h, SIGKILL);
        while (waitpid(h, NULL, 0) < 0 && errno == EINTR) {}
        return -1;
    }
    c->holder = h;
    return 0;
}

static BoxCtx *ctx_get(CrError *e) {
    BoxCtx *c = &g_ctx;
    if (c->owner == getpid()) return c;
    if (c->owner)  /* inherited from a parent process: its descriptors, not its holder */
        for (int i = 0; i < 3; i++) if (c->ns_fd[i] >= 0) close(c->ns_fd[i]);
    memset(c, 0, sizeof *c);
    c->ns_fd[0] = c->ns_fd[1] = c->ns_fd[2] = -1;
    sweep_stale("/tmp", "crucible-sbx-");
    sweep_stale("/tmp", "crucible-sbx-tc-");
    /* Fresh names (mkdtemp: created here, never an existing path reused), so nothing planted at a
     * predictable name is written into or removed later. The pid stays first for the sweep. 0711:
     * the box's root (an unprivileged outside uid) must traverse base to reach its submission. */
    snprintf(c->stage, sizeof c->stage, "/tmp/crucible-sbx-tc-%ld-XXXXXX", (long)getpid());
    if (!mkdtemp(c->stage)) c->stage[0] = 0;
    else if (chmod(c->stage, 0711) < 0) { box_remove_dir(c->stage); c->stage[0] = 0; }
    snprintf(c->base, sizeof c->base, "/tmp/crucible-sbx-%ld-XXXXXX", (long)getpid());
    int made = mkdtemp(c->base) != NULL;
    if (!made || chmod(c->base, 0711) < 0) {
        cr_error_set(e, "sandbox: cannot create %s: %s", c->base, strerror(errno));
        if (made) box_remove_dir(c->base);
        if (c->stage[0]) box_remove_dir(c->stage);
        return NULL;
    }
    snprintf(c->root, sizeof c->root, "%s/root", c->base);
    if (mkdir(c->root, 0755) < 0) {
        cr_error_set(e, "sandbox: cannot create %s: %s", c->root, strerror(errno));
        box_remove_dir(c->base);
        if (c->stage[0]) box_remove_dir(c->stage);
        return NULL;
    }
    c->box_uid = (uid_t)(BOX_UID_BASE + getpid());
    c->ns_flags = probe_namespaces();
    /* CRUCIBLE_SANDBOX_DISABLE=net,ipc,... leaves namespaces out as if the kernel refused them
     * (to exercise the fallback; never needed in normal use). */
    const char *dis = getenv("CRUCIBLE_SANDBOX_DISABLE");
    for (size_t i = 0; dis && i < sizeof k_ns / sizeof k_ns[0]; i++)
        if (strstr(dis, k_ns_name[i])) c->ns_flags &= ~k_ns[i];
    if (geteuid() != 0 && !(c->ns_flags & CLONE_NEWUSER)) {
        /* the fresh (still empty) scratch dirs go, or every retry would leave two more */
        rmdir(c->root);
        rmdir(c->base);
        if (c->stage[0]) rmdir(c->stage);
        return cr_error_set(e, "sandbox: neither root nor user namespaces: cannot isolate"), NULL;
    }
    cgroup_setup("memory", c->cg_mem, sizeof c->cg_mem);
    cgroup_setup("pids", c->cg_pids, sizeof c->cg_pids);
    cgroup_setup("cpuacct", c->cg_cpu, sizeof c->cg_cpu);
    plan_root(c);
    int want = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWPID;
    const char *nh = getenv("CRUCIBLE_SANDBOX_NO_HOLDER");
    if ((c->ns_flags & want) == want && !(nh && *nh && strcmp(nh, "0"))) holder_start(c);
    /* The report: what is in force, what is not. */
    char ns[128] = "", missing[128] = "";
    for (size_t i = 0; i < sizeof k_ns / sizeof k_ns[0]; i++) {
        char *dst = (c->ns_flags & k_ns[i]) ? ns : missing;
        strncat(dst, dst[0] ? "," : "", sizeof ns - strlen(dst) - 1);
        strncat(dst, k_ns_name[i], sizeof ns - strlen(dst) - 1);
    }
    snprintf(c->report, sizeof c->report,
             "namespaces: %s%s%s%s; root: private tmpfs + read-only /usr%s; cgroup: memory %s, pids %s, cpuacct %s; "
             "seccomp: allow-list, native arch only; rlimits, setsid, no_new_privs, fds 0-2; root tree %s",
             ns[0] ? ns : "none", missing[0] ? " (refused: " : "", missing[0] ? missing : "", missing[0] ? ")" : "",
             (c->ns_flags & CLONE_NEWNS) ? "" : " (NOT in force: no mount namespace)",
             c->cg_mem[0] ? "v1" : "unavailable (rlimits only)", c->cg_pids[0] ? "v1" : "unavailable",
             c->cg_cpu[0] ? "v1" : "unavailable (per-process RLIMIT_CPU only)",
             c->holder > 0 ? "prepared once (namespace holder)" : "built per run");
    if (missing[0] || !c->cg_mem[0])
        fprintf(stderr, "sandbox: isolation reduced on this machine: %s\n", c->report);
    c->owner = getpid();
    if (!g_atexit_done) { atexit(box_shutdown); g_atexit_done = 1; }
    return c;
}

const char *box_isolation_report(void) {
    CrError e;
    BoxCtx *c = ctx_get(&e);
    return c ? c->report : "sandbox unavailable";
}

/* Empty the directory open at `fd` (closed here), never following a link: every entry is
 * reached through openat/unlinkat relative to its parent's descriptor, so a link planted
 * anywhere in the tree (or swapped in meanwhile) is unlinked, not entered. */
static void empty_dir_fd(int fd, int depth) {
    DIR *d = fdopendir(fd);
    if (!d) { close(fd); return; }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
            if (depth < 256) {  /* bounded: one descriptor per level */
                int sub = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (sub >= 0) empty_dir_fd(sub, depth + 1);
            }
            unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR);
        } else {
            unlinkat(dirfd(d), de->d_name, 0);
        }
    }
    closedir(d);
}

/* Remove parent/name when it is a real directory (not a link to one); with must_own, only when
 * it is also owned by our effective uid (a name in /tmp that someone else planted stays). */
static void remove_tree_at(int parent, const char *name, int must_own) {
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISDIR(st.st_mode) || (must_own && st.st_uid != geteuid())) {
        close(fd);
        return;
    }
    empty_dir_fd(fd, 0);
    unlinkat(parent, name, AT_REMOVEDIR);
}

void box_remove_dir(const char *path) {
    remove_tree_at(AT_FDCWD, path, 0);
}

void box_shutdown(void) {
    BoxCtx *c = &g_ctx;
    if (c->owner != getpid()) return;
    for (int i = 0; i < 3; i++) if (c->ns_fd[i] >= 0) { close(c->ns_fd[i]); c->ns_fd[i] = -1; }
    if (c->holder > 0) {
        kill(c->holder, SIGKILL);
        while (waitpid(c->holder, NULL, 0) < 0 && errno == EINTR) {}
        c->holder = 0;
    }
    if (c->cg_mem[0]) rmdir(c->cg_mem);
    if (c->cg_pids[0]) rmdir(c->cg_pids);
    if (c->cg_cpu[0]) rmdir(c->cg_cpu);
    box_remove_dir(c->base);
    if (c->stage[0]) box_remove_dir(c->stage);
    c->owner = 0;
}

char *box_make_submission_dir(CrError *e) {
    BoxCtx *c = ctx_get(e);
    if (!c) return NULL;
    char *p = cr_malloc(160);
    snprintf(p, 160, "%s/s%d", c->base, c->seq++);
    if (mkdir(p, 0700) < 0 || chown(p, c->box_uid, c->box_uid) < 0) {
        cr_error_set(e, "sandbox: cannot create %s: %s", p, strerror(errno));
        free(p);
        return NULL;
    }
    return p;
}

/* ---- the child ------------------------------------------------------------------- */

/* Everything the child needs, prepared in the parent (the child allocates nothing). */
typedef struct ChildPlan {
    const BoxCtx *c;
    const BoxSpec *s;
    char *const *envp;
    int sync_r, err_w, status_w, sock_w, in_fd, out_w, err_pipe_w;
    int userns;
    int holder;                 /* joined the holder's namespaces (see ctx) */
    const char *box_inner;      /* /.subs/NAME: the submission dir inside the holder's tree */
} ChildPlan;

static _Noreturn void child_die(int errfd, const char *what) {
    char buf[200];
    int n = snprintf(buf, sizeof buf, "%s: %s", what, strerror(errno));
    if (n > 0 && write(errfd, buf, (size_t)n) < 0) {}
    _exit(127);
}

/* MS_ flags a bind remount must keep (locked in a user namespace). */
static unsigned long locked_flags(const char *path) {
    struct statvfs sv;
    unsigned long f = 0;
    if (statvfs(path, &sv) < 0) return 0;
    if (sv.f_flag & ST_NOSUID) f |= MS_NOSUID;
    if (sv.f_flag & ST_NODEV) f |= MS_NODEV;
    if (sv.f_flag & ST_NOEXEC) f |= MS_NOEXEC;
    if (sv.f_flag & ST_NOATIME) f |= MS_NOATIME;
    if (sv.f_flag & ST_NODIRATIME) f |= MS_NODIRATIME;
    if (sv.f_flag & ST_RELATIME) f |= MS_RELATIME;
    return f;
}

static void bind_ro(int errfd, const char *src, const char *dst, int is_dir, unsigned long extra) {
    if (is_dir) { if (mkdir(dst, 0755) < 0 && errno != EEXIST) child_die(errfd, dst); }
    else {
        int fd = open(dst, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0) child_die(errfd, dst);
        close(fd);
    }
    if (mount(src, dst, NULL, MS_BIND | MS_REC, NULL) < 0) child_die(errfd, src);
    unsigned long fl = MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | extra | locked_flags(dst);
    if (mount(NULL, dst, NULL, fl, NULL) < 0) child_die(errfd, dst);
}

/* The per-run part of the root: fresh /proc, /tmp and /work, the submission at /box. `box_src`
 * is the submission dir as seen here (host path, or /.subs/NAME inside the holder's tree). */
static void mount_run_dirs(const ChildPlan *p, const char *R, const char *box_src) {
    int ef = p->err_w;
    char path[256];
    snprintf(path, sizeof path, "%s/proc", R);
    if ((p->c->ns_flags & CLONE_NEWPID) &&
        mount("proc", path, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0) child_die(ef, "mount /proc");
    snprintf(path, sizeof path, "%s/tmp", R);
    if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "size=" BOX_TMP_SIZE ",mode=1777") < 0)
        child_die(ef, "mount /tmp");
    snprintf(path, sizeof path, "%s/box", R);
    if (p->s->box_dir) {
        if (mount(box_src, path, NULL, MS_BIND, NULL) < 0) child_die(ef, "bind /box");
        unsigned long fl = MS_BIND | MS_REMOUNT | MS_NOSUID | MS_NODEV | locked_flags(path);
        if (!p->s->box_writable) fl |= MS_RDONLY;
        if (mount(NULL, path, NULL, fl, NULL) < 0) child_die(ef, "remount /box");
    }
    snprintf(path, sizeof path, "%s/work", R);
    if (!p->s->box_writable) {
        char opts[96];
        unsigned id = p->userns ? BOX_INNER_ID : (unsigned)p->c->box_uid;
        snprintf(opts, sizeof opts, "size=" BOX_TMP_SIZE ",mode=0755,uid=%u,gid=%u", id, id);
        if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, opts) < 0) child_die(ef, "mount /work");
    }
}

static void build_root(const ChildPlan *p) {
    int ef = p->err_w;
    if (p->holder) {  /* already inside the prepared tree */
        mount_run_dirs(p, "", p->box_inner);
        if (umount2("/.subs", MNT_DETACH) < 0) child_die(ef, "detach /.subs");
        if (chdir("/") < 0) child_die(ef, "chdir /");
        return;
    }
    if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) child_die(ef, "make / private");
    build_template(p->c, ef, 0);
    mount_run_dirs(p, p->c->root, p->s->box_dir);
    /* Switch to the new root and drop the old one entirely. */
    if (chdir(p->c->root) < 0) child_die(ef, "chdir root");
    if (syscall(SYS_pivot_root, ".", ".") < 0) child_die(ef, "pivot_root");
    if (umount2(".", MNT_DETACH) < 0) child_die(ef, "detach old root");
    if (chdir("/") < 0) child_die(ef, "chdir /");
    if (mount(NULL, "/", NULL, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
        child_die(ef, "remount / read-only");
}

static void set_rlimit(int ef, int res, rlim_t v) {
    struct rlimit rl = { v, v };
    if (setrlimit(res, &rl) < 0) child_die(ef, "setrlimit");
}

/* pid 2: limits, identity, descriptors, filter, exec. */
static _Noreturn void exec_program(const ChildPlan *p) {
    const BoxSpec *s = p->s;
    int ef = p->err_w;
    if (setsid() < 0) child_die(ef, "setsid");
    /* Descriptors: 0-2 from the plan, the error pipe and the socket moved to 3 and 4. */
    if (dup2(p->in_fd, 0) < 0 || dup2(p->out_w, 1) < 0 || dup2(p->err_pipe_w, 2) < 0) child_die(ef, "dup2");
    int e2 = fcntl(p->err_w, F_DUPFD_CLOEXEC, 64), s2 = fcntl(p->sock_w, F_DUPFD_CLOEXEC, 64);
    if (e2 < 0 || s2 < 0 || dup3(e2, 3, O_CLOEXEC) < 0) child_die(ef, "dup3");
    ef = 3;
    if (dup3(s2, 4, O_CLOEXEC) < 0) child_die(ef, "dup3");
    if (syscall(SYS_close_range, 5U, ~0U, 0U) < 0) child_die(ef, "close_range");
    long cpu = (long)s->cpu_limit_s + 1;  /* whole seconds, per process; the supervisor enforces the
                                           * exact limit on the whole box through cpuacct */
    struct rlimit rl = { (rlim_t)cpu, (rlim_t)cpu + 1 };
    if (setrlimit(RLIMIT_CPU, &rl) < 0) child_die(ef, "RLIMIT_CPU");
    if (s->as_limit_bytes > 0 && !(s->as_limit_fallback && p->c->cg_mem[0]))
        set_rlimit(ef, RLIMIT_AS, (rlim_t)s->as_limit_bytes);
    set_rlimit(ef, RLIMIT_CORE, 0);
    set_rlimit(ef, RLIMIT_FSIZE, (rlim_t)BOX_FSIZE_BYTES);
    set_rlimit(ef, RLIMIT_NOFILE, BOX_NOFILE);
    set_rlimit(ef, RLIMIT_NPROC, (rlim_t)s->nproc);
    set_rlimit(ef, RLIMIT_MEMLOCK, 0);
    set_rlimit(ef, RLIMIT_MSGQUEUE, 0);
    struct rlimit st = { 8L << 20, 8L << 20 };
    if (setrlimit(RLIMIT_STACK, &st) < 0) child_die(ef, "RLIMIT_STACK");
    /* Identity: an unprivileged uid, no supplementary groups; this drops every capability. */
    unsigned id = p->userns ? BOX_INNER_ID : (unsigned)p->c->box_uid;
    if (setgroups(0, NULL) < 0) child_die(ef, "setgroups");
    if (setresgid(id, id, id) < 0) child_die(ef, "setresgid");
    if (setresuid(id, id, id) < 0) child_die(ef, "setresuid");
    if (chdir(s->box_writable ? "/box" : "/work") < 0) child_die(ef, "chdir");
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) child_die(ef, "no_new_privs");
    struct sock_fprog prog = { s->filter->n, s->filter->insns };
    int lfd = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
    if (lfd < 0) child_die(ef, "seccomp");
    /* Hand the listener to the supervisor, then keep nothing but 0-2 across exec. */
    char cbuf[CMSG_SPACE(sizeof(int))];
    memset(cbuf, 0, sizeof cbuf);
    char byte = 'L';
    struct iovec iov = { &byte, 1 };
    struct msghdr mh = { 0 };
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &lfd, sizeof(int));
    if (sendmsg(4, &mh, 0) != 1) child_die(ef, "sending the seccomp listener");
    close(lfd);
    close(4);
    execve(s->argv[0], (char *const *)s->argv, p->envp);
    child_die(ef, s->argv[0]);
}

/* This process's resident set now (kB), from /proc/self/statm; 0 when unreadable. Only
 * async-signal-safe calls: pid 1 is a fork of a threaded process. */
static long self_rss_kb(void) {
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    char buf[128];
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = 0;
    long pages = 0;
    const char *q = buf;
    while (*q >= '0' && *q <= '9') q++;  /* size */
    while (*q == ' ') q++;
    for (; *q >= '0' && *q <= '9'; q++) pages = pages * 10 + (*q - '0');  /* resident */
    return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

/* pid 1 of the box: build the root, start the program, reap everything, report its status. */
static _Noreturn void box_init(const ChildPlan *p) {
    char go;
    if (read(p->sync_r, &go, 1) != 1) _exit(126);  /* the supervisor went away */
    close(p->sync_r);
    /* Become the namespace's root (keeps the namespace's capabilities; files it creates are owned
     * by a mapped uid). */
    if (p->userns && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)) child_die(p->err_w, "become box root");
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_die(p->err_w, "pdeathsig");
    if (p->c->ns_flags & CLONE_NEWNS) build_root(p);
    if ((p->c->ns_flags & CLONE_NEWUTS) && sethostname("box", 3) < 0) child_die(p->err_w, "sethostname");
    long rss_kb = self_rss_kb();  /* what the program inherits in its pre-exec RSS */
    pid_t q = fork();
    if (q < 0) child_die(p->err_w, "fork");
    if (q == 0) exec_program(p);
    /* Keep only the status pipe (as fd 3): nothing of the supervisor's stays open here. */
    int sfd = fcntl(p->status_w, F_DUPFD_CLOEXEC, 64);
    if (sfd < 0 || dup3(sfd, 3, O_CLOEXEC) < 0) _exit(125);
    close(0); close(1); close(2);
    if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0) _exit(125);
    if (!(p->c->ns_flags & CLONE_NEWPID)) {
        /* Not an init: cannot reap others; just wait for the program. */
        int st;
        struct rusage ru;
        while (wait4(q, &st, 0, &ru) < 0) if (errno != EINTR) _exit(125);
        long msg[2] = {st, rss_kb};
        if (write(3, msg, sizeof msg) < 0) {}
        _exit(0);
    }
    for (;;) {
        int st;
        pid_t w = waitpid(-1, &st, __WALL);
        if (w == q) {
            long msg[2] = {st, rss_kb};
            if (write(3, msg, sizeof msg) < 0) {}
            _exit(0);  /* as pid 1, this ends every other process in the box */
        }
        if (w < 0 && errno != EINTR) _exit(125);
    }
}

/* ---- the supervisor ---------------------------------------------------------------- */


static int recv_fd(int sock) {
    char cbuf[CMSG_SPACE(sizeof(int))];
    char byte;
    struct iovec iov = { &byte, 1 };
    struct msghdr mh = { 0 };
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = cbuf;
    mh.msg_controllen = sizeof cbuf;
    ssize_t n;
    while ((n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR) {}
    if (n != 1) return -1;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    if (!cm || cm->cmsg_type != SCM_RIGHTS) return -1;
    int fd;
    memcpy(&fd, CMSG_DATA(cm), sizeof fd);
    return fd;
}

static int stdin_fd(const char *data, size_t len) {
    int fd = memfd_create("box-stdin", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0) return -1;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w < 0) { if (errno == EINTR) continue; close(fd); return -1; }
        off += (size_t)w;
    }
    /* The program cannot rewrite what it reads: a memfd is mode 0777, so a read-only descriptor
     * alone does not stop open("/proc/self/fd/0", O_RDWR); the seals refuse every write, and
     * 0444 refuses that open itself (reading /dev/stdin by name still works). */
    if (fcntl(fd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0 ||
        fchmod(fd, 0444) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    /* Reopen read-only (a descriptor opened for writing is not handed over). */
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    int ro = open(path, O_RDONLY | O_CLOEXEC);
    close(fd);
    return ro;
}

static void cg_prepare(const BoxCtx *c, const BoxSpec *s) {
    char path[400], v[64];
    if (c->cg_mem[0]) {
        snprintf(v, sizeof v, "%ld", s->memory_limit_bytes);
        /* memory <= memory+swap must hold after every write: raising needs memsw first, lowering
         * memory first; writing memory, memsw, memory again covers both. memsw is absent without
         * swap accounting. */
        char mem[400], memsw[400];
        snprintf(mem, sizeof mem, "%s/memory.limit_in_bytes", c->cg_mem);
        snprintf(memsw, sizeof memsw, "%s/memory.memsw.limit_in_bytes", c->cg_mem);
        int ok = write_file_str(mem, v) == 0;
        if (write_file_str(memsw, v) < 0) {}
        if (!ok && write_file_str(mem, v) < 0) {}
        snprintf(path, sizeof path, "%s/memory.max_usage_in_bytes", c->cg_mem);
        if (write_file_str(path, "0") < 0) {}
        snprintf(path, sizeof path, "%s/memory.failcnt", c->cg_mem);
        if (write_file_str(path, "0") < 0) {}
    }
    if (c->cg_cpu[0]) {
        snprintf(path, sizeof path, "%s/cpuacct.usage", c->cg_cpu);
        if (write_file_str(path, "0") < 0) {}
    }
    if (c->cg_pids[0]) {
        snprintf(v, sizeof v, "%d", s->nproc + 2);
        snprintf(path, sizeof path, "%s/pids.max", c->cg_pids);
        if (write_file_str(path, v) < 0) {}
    }
}

static int cg_attach(const char *cg, pid_t pid) {
    if (!cg[0]) return 0;
    char path[400], v[32];
    snprintf(path, sizeof path, "%s/cgroup.procs", cg);
    snprintf(v, sizeof v, "%ld", (long)pid);
    return write_file_str(path, v);
}

/* Inside 0 (the setup, pid 1) and inside BOX_INNER_ID (the program) map to two unprivileged
 * outside uids that no host account uses. */
static int write_id_map(pid_t pid, const char *which, unsigned outside) {
    char path[64], v[96];
    snprintf(path, sizeof path, "/proc/%ld/%s", (long)pid, which);
    snprintf(v, sizeof v, "0 %u 1\n%u %u 1\n", (unsigned)(BOX_ROOT_BASE + getpid()), BOX_INNER_ID, outside);
    return write_file_str(path, v);
}

/* SIGKILL to the box's pid 1 (which ends its whole pid namespace), through the pidfd when there is
 * one so that a recycled pid is never hit. */
static void box_kill(int pidfd, pid_t pid) {
    if (pidfd >= 0) { if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0) == 0) return; }
    else if (pid > 0) kill(pid, SIGKILL);
}

int box_run(const BoxSpec *s, BoxOutcome *o, CrError *e) {
    memset(o, 0, sizeof *o);
    BoxCtx *c = ctx_get(e);
    if (!c) return -1;
    static char *const envp[] = { "PATH=/usr/local/bin:/usr/bin:/bin", "HOME=/work", "TMPDIR=/tmp",
                                  "LANG=C.UTF-8", "LC_ALL=C.UTF-8",
                                  /* numerical libraries start one thread per host core,
                                   * past the box's process limit on a large machine */
                                  "OPENBLAS_NUM_THREADS=1", "OMP_NUM_THREADS=1", NULL };
    int outp[2] = { -1, -1 }, errp[2] = { -1, -1 }, syncp[2] = { -1, -1 }, ep[2] = { -1, -1 },
        stp[2] = { -1, -1 }, sk[2] = { -1, -1 };
    int in_fd = -1, lfd = -1, pidfd = -1, pidp[2] = { -1, -1 };
    pid_t reap = -1;            /* our direct child: P (no holder) or P0 (holder) */
    CrBuf out = { 0 }, err = { 0 }, emsg = { 0 };
    int rc = -1;
    pid_t pid = -1;
    if (pipe2(outp, O_CLOEXEC) < 0 || pipe2(errp, O_CLOEXEC) < 0 || pipe2(syncp, O_CLOEXEC) < 0 ||
        pipe2(ep, O_CLOEXEC) < 0 || pipe2(stp, O_CLOEXEC) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sk) < 0) {
        cr_error_set(e, "sandbox: pipe: %s", strerror(errno));
        goto done;
    }
    if ((in_fd = stdin_fd(s->stdin_data ? s->stdin_data : "", s->stdin_data ? s->stdin_len : 0)) < 0) {
        cr_error_set(e, "sandbox: stdin memfd: %s", strerror(errno));
        goto done;
    }
    cg_prepare(c, s);
    long oom_before = c->cg_mem[0] ? read_oom_kills(c->cg_mem) : -1;
    int userns = (c->ns_flags & CLONE_NEWUSER) != 0;
    int holder = c->holder > 0;
    char box_inner[160] = "";
    if (holder && s->box_dir) {
        const char *slash = strrchr(s->box_dir, '/');
        snprintf(box_inner, sizeof box_inner, "/.subs/%s", slash ? slash + 1 : s->box_dir);
    }
    ChildPlan plan = { c, s, envp, syncp[0], ep[1], stp[1], sk[1], in_fd, outp[1], errp[1], userns,
                       holder, box_inner };
    double t0 = now_s();
    /* With the holder: a plain child (P0) joins the holder's namespaces, unshares the rest and
     * forks the box's pid 1 (P), reporting P's pid; P0 then only waits for P. Without: one clone. */
    if (holder) {
        if (pipe2(pidp, O_CLOEXEC) < 0) { cr_error_set(e, "sandbox: pipe: %s", strerror(errno)); goto done; }
        reap = (pid_t)syscall(SYS_clone, (unsigned long)SIGCHLD, NULL, NULL, NULL, NULL);
    } else {
        reap = (pid_t)syscall(SYS_clone, (unsigned long)(c->ns_flags | SIGCHLD), NULL, NULL, NULL, NULL);
    }
    if (reap < 0) {
        cr_error_set(e, "sandbox: clone with namespaces 0x%x: %s", (unsigned)c->ns_flags, strerror(errno));
        goto done;
    }
    if (reap == 0) {
        if (!holder) box_init(&plan);
        char go;
        if (read(syncp[0], &go, 1) != 1) _exit(126);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) child_die(ep[1], "pdeathsig");
        if (setns(c->ns_fd[0], CLONE_NEWUSER) < 0) child_die(ep[1], "join the holder's user namespace");
        if (setns(c->ns_fd[1], CLONE_NEWNS) < 0) child_die(ep[1], "join the holder's mount namespace");
        if (setns(c->ns_fd[2], CLONE_NEWNET) < 0) child_die(ep[1], "join the holder's net namespace");
        if (unshare(CLONE_NEWNS | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWPID) < 0) child_die(ep[1], "unshare");
        pid_t q = fork();
        if (q < 0) child_die(ep[1], "fork");
        if (q == 0) box_init(&plan);
        if (write(pidp[1], &q, sizeof q) != sizeof q) _exit(125);
        if (syscall(SYS_close_range, 0U, ~0U, 0U) < 0) {}
        int st;
        while (waitpid(q, &st, 0) < 0) if (errno != EINTR) _exit(125);
        _exit(0);
    }
    close(syncp[0]); syncp[0] = -1;
    close(ep[1]); ep[1] = -1;
    close(stp[1]); stp[1] = -1;
    close(sk[1]); sk[1] = -1;
    close(outp[1]); outp[1] = -1;
    close(errp[1]); errp[1] = -1;
    close(in_fd); in_fd = -1;
    if (pidp[1] >= 0) { close(pidp[1]); pidp[1] = -1; }
    int setup_ok = 1;
    if (!holder) {
        pid = reap;
        pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
        if (userns && (write_id_map(pid, "uid_map", c->box_uid) < 0 || write_id_map(pid, "gid_map", c->box_uid) < 0)) {
            snprintf(o->internal_error, sizeof o->internal_error, "writing uid/gid map: %s", strerror(errno));
            setup_ok = 0;
        }
    }
    if (setup_ok && (cg_attach(c->cg_mem, reap) < 0 || cg_attach(c->cg_pids, reap) < 0 ||
                     cg_attach(c->cg_cpu, reap) < 0)) {
        snprintf(o->internal_error, sizeof o->internal_error, "joining the cgroup: %s", strerror(errno));
        setup_ok = 0;
    }
    if (setup_ok && write(syncp[1], "g", 1) != 1) setup_ok = 0;
    if (holder && setup_ok) {
        /* P's pid, then a pidfd on it before P may proceed (so a signal can never hit a reused pid) */
        pid_t q = -1;
        ssize_t n;
        while ((n = read(pidp[0], &q, sizeof q)) < 0 && errno == EINTR) {}
        if (n == sizeof q && q > 0) {
            pid = q;
            pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
            if (pidfd < 0 || write(syncp[1], "g", 1) != 1) setup_ok = 0;
        } else {
            setup_ok = 0;  /* P0 failed: its message is on the error pipe */
        }
    }
    close(syncp[1]); syncp[1] = -1;
    if (!setup_ok) { box_kill(pidfd, pid); kill(reap, SIGKILL); }
    lfd = setup_ok ? recv_fd(sk[0]) : -1;
    /* The error pipe closes on exec (success) or carries the setup failure. */
    for (;;) {
        char b[256];
        ssize_t n = read(ep[0], b, sizeof b);
        if (n > 0) { cr_buf_add(&emsg, b, (size_t)n); continue; }
        if (n < 0 && errno == EINTR) continue;
        break;
    }
    if (emsg.n && !o->internal_error[0]) snprintf(o->internal_error, sizeof o->internal_error, "box setup: %s", emsg.p);
    if (!o->internal_error[0] && lfd < 0) snprintf(o->internal_error, sizeof o->internal_error, "box setup: no seccomp listener");
    if (o->internal_error[0]) { box_kill(pidfd, pid); kill(reap, SIGKILL); }

    /* Drain both streams, watch the listener and the clock. */
    double deadline = t0 + s->wall_limit_s;
    int fl = fcntl(outp[0], F_GETFL);
    if (fl >= 0) fcntl(outp[0], F_SETFL, fl | O_NONBLOCK);
    fl = fcntl(errp[0], F_GETFL);
    if (fl >= 0) fcntl(errp[0], F_SETFL, fl | O_NONBLOCK);
    int exited = 0, killed = o->internal_error[0] != 0;
    size_t total_out = 0, total_err = 0;
    char *chunk = cr_malloc(65536);
    char cpu_path[400] = "";
    if (c->cg_cpu[0]) snprintf(cpu_path, sizeof cpu_path, "%s/cpuacct.usage", c->cg_cpu);
    long cpu_limit_ns_ms = (long)(s->cpu_limit_s * 1000);
    while (outp[0] >= 0 || errp[0] >= 0 || !exited) {
        struct pollfd pf[4];
        int np = 0, i_out = -1, i_err = -1, i_l = -1, i_pid = -1;
        if (outp[0] >= 0) { i_out = np; pf[np++] = (struct pollfd){ outp[0], POLLIN, 0 }; }
        if (errp[0] >= 0) { i_err = np; pf[np++] = (struct pollfd){ errp[0], POLLIN, 0 }; }
        if (lfd >= 0 && !killed) { i_l = np; pf[np++] = (struct pollfd){ lfd, POLLIN, 0 }; }
        if (pidfd >= 0 && !exited) { i_pid = np; pf[np++] = (struct pollfd){ pidfd, POLLIN, 0 }; }
        int timeout = -1;
        if (!killed) {
            double left = deadline - now_s();
            if (left <= 0) {
                box_kill(pidfd, pid);
                killed = 1;
                o->wall_killed = 1;
                continue;
            }
            timeout = (int)(left * 1000) + 1;
            /* The whole box's CPU time (all processes and threads), checked every 50 ms. */
            if (cpu_path[0]) {
                long used_ms = read_file_long(cpu_path) / 1000000;
                if (used_ms >= cpu_limit_ns_ms) {
                    box_kill(pidfd, pid);
                    killed = 1;
                    o->cpu_exceeded = 1;
                    continue;
                }
                if (timeout > 50) timeout = 50;
            }
        }
        if (pidfd < 0 && (timeout < 0 || timeout > 50)) timeout = 50;  /* no pidfd: poll for exit */
        int r = poll(pf, (nfds_t)np, timeout);
        if (r < 0) {
            if (errno == EINTR) continue;
            box_kill(pidfd, pid);
            cr_error_set(e, "sandbox: poll: %s", strerror(errno));
            free(chunk);
            goto done;
        }
        for (int k = 0; k < 2; k++) {
            int idx = k == 0 ? i_out : i_err;
            int *fdp = k == 0 ? &outp[0] : &errp[0];
            if (idx < 0 || !pf[idx].revents) continue;
            ssize_t n = read(*fdp, chunk, 65536);
            if (n > 0) {
                size_t *tot = k == 0 ? &total_out : &total_err;
                CrBuf *b = k == 0 ? &out : &err;
                size_t room = (size_t)s->output_limit_bytes > b->n ? (size_t)s->output_limit_bytes - b->n : 0;
                cr_buf_add(b, chunk, (size_t)n < room ? (size_t)n : room);
                *tot += (size_t)n;
                if (*tot > (size_t)s->output_limit_bytes && !o->output_exceeded) {
                    o->output_exceeded = 1;
                    if (!killed) { box_kill(pidfd, pid); killed = 1; }
                }
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(*fdp);
                *fdp = -1;
            }
        }
        if (i_l >= 0 && pf[i_l].revents) {
            if (pf[i_l].revents & POLLIN) {
                struct seccomp_notif req;
                memset(&req, 0, sizeof req);
                if (ioctl(lfd, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0) {
                    box_kill(pidfd, pid);  /* the call never runs; the whole box ends */
                    killed = 1;
                    seccomp_syscall_label(req.data.arch, req.data.nr, o->blocked_syscall,
                                          sizeof o->blocked_syscall);
                }
            } else {
                close(lfd);  /* no filtered task left */
                lfd = -1;
            }
        }
        if (i_pid >= 0 && pf[i_pid].revents) exited = 1;
        if (pidfd < 0 && !exited) {
            siginfo_t si;
            memset(&si, 0, sizeof si);
            if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == pid) exited = 1;
        }
    }
    free(chunk);
    int st = 0;
    struct rusage ru;
    memset(&ru, 0, sizeof ru);
    while (wait4(reap, &st, 0, &ru) < 0 && errno == EINTR) {}
    reap = pid = -1;
    o->wall_ms = (long)((now_s() - t0) * 1000);
    long msg[2] = {0, 0};
    ssize_t sn = read(stp[0], msg, sizeof msg);
    int reaped = sn == (ssize_t)sizeof msg;
    int prog_st = reaped ? (int)msg[0] : holder ? SIGKILL : st;  /* killed before the program ended */
    o->inherited_kb = reaped ? msg[1] : 0;
    if (WIFEXITED(prog_st)) { o->exited = 1; o->exit_code = WEXITSTATUS(prog_st); }
    else if (WIFSIGNALED(prog_st)) o->signal = WTERMSIG(prog_st);
    o->cpu_ms = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000L +
                (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000L;
    o->peak_kb = ru.ru_maxrss;
    if (cpu_path[0]) {
        long ms = read_file_long(cpu_path) / 1000000;
        if (ms > o->cpu_ms) o->cpu_ms = ms;
    }
    if (c->cg_mem[0]) {
        /* the cgroup's peak (reset before the run) holds what the box charged: the program,
         * not the RSS its pid 1 inherited from crucible (charged to crucible's cgroup) */
        char path[400];
        snprintf(path, sizeof path, "%s/memory.max_usage_in_bytes", c->cg_mem);
        long peak = read_file_long(path);
        if (peak >= 0) o->peak_kb = peak / 1024, o->peak_from_cgroup = 1;
    }
    if (o->signal == SIGXCPU || o->cpu_ms >= cpu_limit_ns_ms) o->cpu_exceeded = 1;
    if (o->signal == SIGSYS && !o->blocked_syscall[0]) o->badarch_killed = 1;
    if (c->cg_mem[0]) {
        long oom_after = read_oom_kills(c->cg_mem);
        if (oom_after > oom_before && oom_before >= 0) o->oom_killed = 1;
        char path[400];
        snprintf(path, sizeof path, "%s/memory.failcnt", c->cg_mem);
        if (!o->oom_killed && read_file_long(path) > 0 && !(o->exited && o->exit_code == 0)) o->oom_killed = 1;
    }
    o->out = out.p ? out.p : cr_strdup("");
    o->out_len = out.n;
    o->err = err.p ? err.p : cr_strdup("");
    o->err_len = err.n;
    out.p = err.p = NULL;
    rc = 0;
done:
    if (pid > 0) box_kill(pidfd, pid);
    if (reap > 0) { kill(reap, SIGKILL); while (waitpid(reap, NULL, 0) < 0 && errno == EINTR) {} }
    int *fds[] = { &outp[0], &outp[1], &errp[0], &errp[1], &syncp[0], &syncp[1], &ep[0], &ep[1],
                   &stp[0], &stp[1], &sk[0], &sk[1], &in_fd, &lfd, &pidfd, &pidp[0], &pidp[1] };
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) if (*fds[i] >= 0) close(*fds[i]);
    free(out.p);
    free(err.p);
    free(emsg.p);
    return rc;
}

void box_outcome_free(BoxOutcome *o) {
    free(o->out);
    free(o->err);
    o->out = o->err = NULL;
}
