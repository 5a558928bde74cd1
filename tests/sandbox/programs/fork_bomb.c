/* fork bomb: processes are not in the C run step's allow-list -> SV (clone) */
#include <unistd.h>
int main(void) { for (;;) fork(); }
