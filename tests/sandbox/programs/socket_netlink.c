/* netlink socket (routing/audit) */
#include <linux/netlink.h>
#include <stdio.h>
#include <sys/socket.h>
int main(void) {
    int s = socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE);
    if (s >= 0) puts("ESCAPE: netlink socket");
    return 42;
}
