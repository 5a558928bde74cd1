/* ptrace the box's pid 1 */
#include <stdio.h>
#include <sys/ptrace.h>
int main(void) {
    if (ptrace(PTRACE_ATTACH, 1, 0, 0) == 0) puts("ESCAPE: attached to pid 1");
    return 42;
}
