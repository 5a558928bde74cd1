/* signal everything: -1, every pid, the supervisor's process group */
#include <signal.h>
#include <stdio.h>
int main(void) {
    kill(-1, SIGKILL);
    for (int pid = 1; pid < 40000; pid++)
        if (pid != 2 && kill(pid, SIGKILL) == 0 && pid != 1) printf("ESCAPE? signalled %d\n", pid);
    return 42;
}
