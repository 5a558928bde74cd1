/* fill /tmp and the work dir: each is a small private tmpfs */
#include <stdio.h>
#include <string.h>
int main(void) {
    static char buf[1 << 16];
    memset(buf, 'x', sizeof buf);
    const char *paths[] = { "/tmp/fill", "/work/fill", "/box/fill", "/fill" };
    long total = 0;
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(paths[i], "w");
        if (!f) continue;
        while (fwrite(buf, 1, sizeof buf, f) == sizeof buf && fflush(f) == 0) total += sizeof buf;
        fclose(f);
    }
    fprintf(stderr, "wrote %ld bytes\n", total);
    return total > (1L << 30) ? 0 : 42;
}
