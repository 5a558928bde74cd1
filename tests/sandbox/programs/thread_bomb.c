/* thread bomb: threads are allowed, their number is not */
#include <pthread.h>
#include <unistd.h>
static void *sleeper(void *a) { (void)a; for (;;) pause(); return 0; }
int main(void) {
    for (long i = 0;; i++) {
        pthread_t t;
        if (pthread_create(&t, 0, sleeper, 0) != 0) return 42;  /* refused: limit in force */
    }
}
