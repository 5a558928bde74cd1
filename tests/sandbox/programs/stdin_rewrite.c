/* rewrite its own stdin (given "hello\n"): reopen the memfd behind fd 0 for writing through
 * /proc/self/fd/0 or /dev/stdin, write or truncate through fd 0; reading stdin by name must
 * still work (exit 1 if not), and what it reads must stay "hello\n" */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(void) {
    char b[64] = { 0 };
    int r = open("/dev/stdin", O_RDONLY);
    if (r < 0 || read(r, b, sizeof b - 1) != 6 || strcmp(b, "hello\n") != 0) { printf("cannot read stdin by name\n"); return 1; }
    close(r);
    const char *paths[] = { "/proc/self/fd/0", "/dev/stdin", 0 };
    for (int i = 0; paths[i]; i++) {
        int fd = open(paths[i], O_RDWR);
        if (fd < 0) fd = open(paths[i], O_WRONLY);
        if (fd < 0) continue;
        if (pwrite(fd, "ESCAPE", 6, 0) == 6) printf("ESCAPE: rewrote stdin through %s\n", paths[i]);
        if (ftruncate(fd, 100) == 0) printf("ESCAPE: grew stdin through %s\n", paths[i]);
        if (ftruncate(fd, 0) == 0) printf("ESCAPE: truncated stdin through %s\n", paths[i]);
        close(fd);
    }
    if (write(0, "ESCAPE", 6) == 6) printf("ESCAPE: wrote through fd 0\n");
    if (fcntl(0, F_ADD_SEALS, 0) == 0 && ftruncate(0, 0) == 0) printf("ESCAPE: truncated fd 0\n");
    memset(b, 0, sizeof b);
    if (pread(0, b, sizeof b - 1, 0) != 6 || strcmp(b, "hello\n") != 0) printf("ESCAPE: stdin now reads \"%.20s\"\n", b);
    return 42;
}
