/* tests/fuzz/fuzz_safetensors.c — libFuzzer target for the safetensors header parser and
 * typed readers: any byte string must either be refused with a message or parse into
 * tensors whose data lies inside the input (ASan checks every read). */
#include "core/safetensors.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    CrError e;
    SafeTensors *s = st_open_memory(data, size, "fuzz.safetensors", &e);
    if (!s) {
        if (!memchr(e.msg, 0, sizeof e.msg) || !strstr(e.msg, "fuzz.safetensors")) abort();
        return 0;
    }
    for (int i = 0; i < st_count(s); i++) {
        const StTensor *t = st_at(s, i);
        if (st_find(s, t->name) != t) abort();
        size_t n = st_numel(t->ndim, t->shape);
        if (n * st_dtype_size(t->dtype) != t->nbytes) abort();
        if (t->nbytes && ((const uint8_t *)t->data < data || (const uint8_t *)t->data + t->nbytes > data + size))
            abort();
        void *buf = malloc(n * 8 + 8);
        if (!buf) abort();
        int rc = st_read_f32(t, buf, n, &e);
        if (rc) rc = st_read_i64(t, buf, n, &e);
        if (rc) abort();   /* every dtype is either a float or an integer type */
        free(buf);
    }
    st_close(s);
    return 0;
}
