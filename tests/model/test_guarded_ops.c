/* tests/model/test_guarded_ops.c — the guarded test backend (tests/guarded_ops.h) does
 * what the GPU-path tests rely on: its ops see their memory, the host does not. */
#include "tests/test.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tests/guarded_ops.h"

TEST(model_guarded_ops_trap_host_access) {
    const Ops *o = guarded_ops();
    float host[4] = {1, 2, 3, 4}, back[4] = {0};
    float *dev = o->alloc(sizeof host);
    o->upload(dev, host, sizeof host);
    o->scale(dev, 2.0f, 4);
    o->download(back, dev, sizeof back);
    CHECK(back[0] == 2 && back[3] == 8);
    pid_t pid = fork();
    if (pid == 0) {
        volatile float *p = dev;
        p[0] = 5.0f;  /* a host write to backend memory: must die here */
        _exit(0);
    }
    int st = 0;
    CHECK(waitpid(pid, &st, 0) == pid);
    CHECKF(WIFSIGNALED(st) && WTERMSIG(st) == SIGSEGV, "a host write to guarded memory did not trap (status %d)", st);
    o->free(dev);
    CHECK(guarded_ops_live_allocations() == 0);
}
