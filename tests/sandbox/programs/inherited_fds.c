/* descriptors beyond 0-2 inherited from the supervisor */
#include <fcntl.h>
#include <stdio.h>
int main(void) {
    for (int fd = 3; fd < 4096; fd++)
        if (fcntl(fd, F_GETFD) >= 0) printf("ESCAPE: inherited fd %d\n", fd);
    return 42;
}
