/* mount a tmpfs over the work dir */
#include <stdio.h>
#include <sys/mount.h>
int main(void) {
    if (mount("none", "/work", "tmpfs", 0, 0) == 0) puts("ESCAPE: mounted");
    return 42;
}
