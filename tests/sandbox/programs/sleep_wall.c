/* sleep past the wall clock: uses no CPU */
#include <unistd.h>
int main(void) { sleep(1000); return 0; }
