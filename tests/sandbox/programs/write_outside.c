/* write outside the work dir: system binaries, /etc, the submission, the root */
#include <stdio.h>
int main(void) {
    const char *paths[] = { "/usr/bin/crucible_pwn", "/usr/bin/true", "/etc/crucible_pwn", "/box/crucible_pwn",
                            "/box/main", "/crucible_pwn", "/proc/sysrq-trigger", "/dev/crucible_pwn",
                            "/.subs/crucible_pwn", "/root/crucible_pwn", "/tmp/../usr/crucible_pwn", 0 };
    for (int i = 0; paths[i]; i++) {
        FILE *f = fopen(paths[i], "a");
        if (f && fputs("pwned\n", f) >= 0 && fclose(f) == 0) printf("ESCAPE: wrote %s\n", paths[i]);
    }
    FILE *f = fopen("/tmp/CRUCIBLE_ESCAPE", "w");  /* the box's own /tmp: allowed, must not reach the host */
    if (f) fclose(f);
    return 42;
}
