/* sandbox/seccomp_policy.h — the seccomp allow-lists, compiled once in the parent to BPF.
 * Defines: SeccompProgram, seccomp_policy_build, seccomp_program_free, seccomp_syscall_label.
 *
 * Policy (spec/sandbox.md §5): native x86-64 only (i386 `int 0x80` and x32 numbers hit the
 * bad-arch action, KILL_PROCESS in the kernel); the listed calls are allowed; clone3 and io_uring
 * fail with ENOSYS (glibc and runtimes fall back); clone only without namespace flags (and only
 * with CLONE_THREAD unless the list allows processes); socket/socketpair only AF_UNIX; ioctl
 * TIOCSTI refused. Every other call goes to the supervisor through a user-notification and the
 * supervisor kills the whole box at once (SIGKILL to its pid namespace), so the call never runs
 * and the verdict can name it — KILL_PROCESS semantics, executed by the supervisor. The call is
 * never answered, so there is nothing the program can catch (unlike TRAP). */
#ifndef CRUCIBLE_SANDBOX_SECCOMP_POLICY_H
#define CRUCIBLE_SANDBOX_SECCOMP_POLICY_H

#include <stddef.h>
#include <linux/filter.h>
#include "core/error.h"

typedef struct SeccompProgram {
    struct sock_filter *insns;
    unsigned short n;
} SeccompProgram;

typedef enum SeccompStep { SECCOMP_STEP_COMPILE, SECCOMP_STEP_RUN } SeccompStep;

/* Build the BPF program for one step. allow_fork: processes (fork/vfork/clone without
 * CLONE_THREAD) allowed besides threads. extra: NULL-terminated syscall names added to the
 * allow-list (names this libseccomp does not know are skipped). Returns 0 or -1 (e set). */
int seccomp_policy_build(SeccompStep step, int allow_fork, const char *const *extra,
                         SeccompProgram *out, CrError *e);
void seccomp_program_free(SeccompProgram *p);
/* Name of syscall nr on audit arch `arch` (e.g. "ptrace"), written into buf. */
void seccomp_syscall_label(unsigned arch, int nr, char *buf, size_t cap);

#endif
