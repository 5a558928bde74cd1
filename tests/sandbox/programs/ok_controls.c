/* positive control (C): threads, 100 MB, libc + libm, 200 KB on both streams */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static void *work(void *a) { long *x = a; for (int i = 0; i < 1000000; i++) *x += i % 7; return 0; }
static int cmp(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
int main(void) {
    pthread_t t[8];
    long acc[8] = { 0 };
    for (int i = 0; i < 8; i++) if (pthread_create(&t[i], 0, work, &acc[i])) return 1;
    for (int i = 0; i < 8; i++) pthread_join(t[i], 0);
    size_t n = 100u << 20;
    char *p = malloc(n);
    if (!p) return 2;
    memset(p, 7, n);
    int v[1000];
    for (int i = 0; i < 1000; i++) v[i] = (i * 7919) % 1000;
    qsort(v, 1000, sizeof v[0], cmp);
    for (int i = 0; i < 200 * 1024 / 64; i++) {
        printf("%063d\n", i);
        fprintf(stderr, "%063d\n", i);
    }
    printf("%ld %d %d %.3f\n", acc[7], p[n - 1], v[999], sqrt(2.0));
    free(p);
    return 0;
}
