/* compile-time read of a host file */
#include "/tmp/crucible_host_secret.txt"
int main(void) { return 0; }
