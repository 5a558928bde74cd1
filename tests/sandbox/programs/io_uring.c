/* io_uring: must fail softly (ENOSYS) */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
int main(void) {
    char params[120];
    memset(params, 0, sizeof params);
    long r = syscall(SYS_io_uring_setup, 8, params);
    if (r >= 0) puts("ESCAPE: io_uring ring created");
    return errno == ENOSYS ? 42 : 43;
}
