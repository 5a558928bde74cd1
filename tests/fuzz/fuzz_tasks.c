/* tests/fuzz/fuzz_tasks.c — libFuzzer target: the task JSONL reader must never crash,
 * leak or read out of bounds, whatever the bytes (plain text; gzip is exercised by
 * prefixing the magic so the inflate path sees hostile streams too). */
#include "data/tasks.h"
#include "data/jsonl.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Task *ts = NULL;
    int n = 0;
    CrError e;
    if (tasks_parse((const char *)data, size, "fuzz.jsonl", &ts, &n, &e) == 0) {
        for (int i = 0; i < n; i++) {
            if (!ts[i].id || !ts[i].language || !ts[i].prompt) abort();
            if (ts[i].n_tests == 0 && !ts[i].test_code) abort();
        }
        tasks_free(ts, n);
    }
    if (size >= 2 && data[0] == 0x1f && data[1] == 0x8b) {
        /* through the file path, which detects and inflates gzip */
        char path[] = "/tmp/fuzz_tasks_XXXXXX";
        int fd = mkstemp(path);
        if (fd < 0) return 0;
        if (write(fd, data, size) == (ssize_t)size && tasks_load(path, &ts, &n, &e) == 0)
            tasks_free(ts, n);
        close(fd);
        unlink(path);
    }
    return 0;
}
