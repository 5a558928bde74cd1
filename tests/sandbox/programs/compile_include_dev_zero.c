/* compile-time infinite input */
#include "/dev/zero"
int main(void) { return 0; }
