/* clone3 (-> ENOSYS), then namespaces by unshare */
#define _GNU_SOURCE
#include <linux/sched.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    struct clone_args ca;
    memset(&ca, 0, sizeof ca);
    ca.flags = CLONE_NEWUSER | CLONE_NEWNS;
    ca.exit_signal = 17;
    long r = syscall(SYS_clone3, &ca, sizeof ca);
    if (r == 0) _exit(0);
    if (r > 0) puts("ESCAPE: clone3 with namespaces");
    if (unshare(CLONE_NEWUSER) == 0) puts("ESCAPE: unshare(CLONE_NEWUSER)");
    return 42;
}
