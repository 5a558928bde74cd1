/* raw packet socket */
#include <arpa/inet.h>
#include <linux/if_ether.h>
#include <stdio.h>
#include <sys/socket.h>
int main(void) {
    int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (s >= 0) puts("ESCAPE: packet socket");
    return 42;
}
