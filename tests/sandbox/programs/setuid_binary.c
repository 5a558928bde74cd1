/* run a setuid-root binary to gain root */
#include <stdio.h>
#include <unistd.h>
int main(void) {
    execl("/usr/bin/su", "su", "-c", "echo ESCAPE: root shell", "root", (char *)0);
    execl("/usr/bin/newgrp", "newgrp", "root", (char *)0);
    return 42;
}
