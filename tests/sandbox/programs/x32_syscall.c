/* the x32 ABI: syscall numbers with bit 30 set (getpid) */
#include <sys/syscall.h>
#include <unistd.h>
int main(void) { return (int)(syscall(0x40000000 | SYS_getpid) & 0x3f); }
