/* dodge SV: stack a seccomp filter of its own that answers unshare with EPERM. An errno action
 * outranks the sandbox's notification, so the refused call would come back as a plain error and
 * the run end OK. PR_SET_SECCOMP must itself be refused (SV naming prctl), also with the upper
 * 32 bits of the option set (the kernel reads an int). Ordinary options still work (exit 1 if
 * not). */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    char name[16] = { 0 };
    if (prctl(PR_SET_NAME, "judged", 0, 0, 0) != 0 || prctl(PR_GET_NAME, name, 0, 0, 0) != 0 ||
        strcmp(name, "judged") != 0 || prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2) {
        printf("ordinary prctl options refused\n");
        return 1;
    }
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_unshare, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = { 4, f };
    long rc = syscall(SYS_prctl, (1UL << 32) | PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
    if (rc != 0) rc = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0);
    if (rc != 0) return 42;
    if (unshare(CLONE_NEWUSER) < 0) printf("ESCAPE: unshare refused by our own filter (errno %d), not reported\n", errno);
    return 0;
}
