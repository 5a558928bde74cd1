/* abstract unix socket of the host (name on stdin): allowed call, but another net namespace */
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
int main(void) {
    char name[100];
    if (scanf("%99s", name) != 1) return 2;
    int s = socket(AF_UNIX, SOCK_STREAM, 0);
    if (s < 0) return 3;
    struct sockaddr_un a = { .sun_family = AF_UNIX };
    memcpy(a.sun_path + 1, name, strlen(name));
    if (connect(s, (struct sockaddr *)&a, (socklen_t)(sizeof(a.sun_family) + 1 + strlen(name))) == 0)
        puts("ESCAPE: connected to the host's abstract socket");
    return 42;
}
