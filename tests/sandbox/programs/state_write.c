/* leftover state, part 1: leave files and an IPC object behind */
#include <stdio.h>
#include <sys/ipc.h>
#include <sys/shm.h>
int main(void) {
    FILE *a = fopen("/tmp/crucible_state", "w"), *b = fopen("/work/crucible_state", "w");
    if (a) fclose(a);
    if (b) fclose(b);
    shmget(0x1234, 4096, IPC_CREAT | 0666);
    return 42;
}
