/* read another process's memory with process_vm_readv */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/uio.h>
int main(void) {
    char buf[64];
    struct iovec l = { buf, sizeof buf }, r = { (void *)0x400000, sizeof buf };
    if (process_vm_readv(1, &l, 1, &r, 1, 0) > 0) puts("ESCAPE: read pid 1 memory");
    return 42;
}
