/* read host secrets: a file the test planted, the host's accounts, other users' homes */
#include <stdio.h>
int main(void) {
    const char *paths[] = { "/tmp/crucible_host_secret.txt", "/etc/shadow", "/etc/passwd", "/root/.bash_history",
                            "/work/wt/COMMON.md", "/proc/1/environ", "/proc/1/cmdline", "/home", "/dev/vda",
                            "/sys/class/net/lo/address", "/.subs", "/proc/1/root/etc/hostname", 0 };
    for (int i = 0; paths[i]; i++) {
        FILE *f = fopen(paths[i], "r");
        if (!f) continue;
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        printf("%s: %s\n", paths[i], buf);
        fclose(f);
    }
    return 42;
}
