/* leftover state, part 2: did anything of the previous run survive? */
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/shm.h>
#include <unistd.h>
int main(void) {
    if (access("/tmp/crucible_state", F_OK) == 0) puts("ESCAPE: /tmp state survived");
    if (access("/work/crucible_state", F_OK) == 0) puts("ESCAPE: /work state survived");
    if (shmget(0x1234, 4096, 0) >= 0) puts("ESCAPE: shm segment survived");
    return 42;
}
