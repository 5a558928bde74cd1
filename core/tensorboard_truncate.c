/* core/tensorboard_truncate.c — tb_truncate_after (see tensorboard.h): a resumed run must not
 * leave TensorBoard two versions of the steps it repeats. Every event file in the directory
 * is rewritten (atomically) keeping only the records whose Event.step <= step; records are
 * copied byte for byte, so their CRCs stay valid. A file whose framing or CRCs are broken
 * (e.g. cut by the crash) keeps its valid prefix. */
#include "core/tensorboard.h"
#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/file.h"

#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t le(const unsigned char *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

/* Event.step (field 2, varint) of a serialized Event; 0 when absent or malformed. */
static long event_step(const unsigned char *p, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint64_t key = 0;
        int sh = 0;
        while (i < n && sh < 64) { key |= (uint64_t)(p[i] & 0x7f) << sh; sh += 7; if (!(p[i++] & 0x80)) break; }
        unsigned field = (unsigned)(key >> 3), wire = (unsigned)(key & 7);
        uint64_t v = 0;
        sh = 0;
        if (wire == 0) {
            while (i < n && sh < 64) { v |= (uint64_t)(p[i] & 0x7f) << sh; sh += 7; if (!(p[i++] & 0x80)) break; }
            if (field == 2) return (long)v;
        } else if (wire == 1) {
            i += 8;
        } else if (wire == 5) {
            i += 4;
        } else if (wire == 2) {
            while (i < n && sh < 64) { v |= (uint64_t)(p[i] & 0x7f) << sh; sh += 7; if (!(p[i++] & 0x80)) break; }
            if (v > n - i) return 0;
            i += (size_t)v;
        } else {
            return 0;
        }
    }
    return 0;
}

static int truncate_file(const char *path, long step, CrError *e) {
    size_t n;
    char *buf = cr_read_file(path, &n, e);
    if (!buf) return -1;
    const unsigned char *d = (const unsigned char *)buf;
    char *out = cr_malloc(n ? n : 1);
    size_t o = 0, i = 0;
    int changed = 0;
    while (i + 12 <= n) {
        uint64_t len = le(d + i, 8);
        if (cr_crc32c_mask(cr_crc32c(d + i, 8)) != (uint32_t)le(d + i + 8, 4) || len > n - i - 16) break;
        const unsigned char *data = d + i + 12;
        if (cr_crc32c_mask(cr_crc32c(data, (size_t)len)) != (uint32_t)le(data + len, 4)) break;
        size_t rec = 16 + (size_t)len;
        if (event_step(data, (size_t)len) <= step) {
            memcpy(out + o, d + i, rec);
            o += rec;
        } else {
            changed = 1;
        }
        i += rec;
    }
    if (i != n) changed = 1;  /* a torn tail is dropped too */
    int rc = changed ? cr_write_file_atomic(path, out, o, e) : 0;
    free(out);
    free(buf);
    return rc;
}

int tb_truncate_after(const char *dir, long step, CrError *e) {
    DIR *dp = opendir(dir);
    if (!dp) return 0;  /* no TensorBoard directory yet: nothing to do */
    int rc = 0;
    for (struct dirent *de; rc == 0 && (de = readdir(dp));) {
        if (strncmp(de->d_name, "events.out.tfevents.", 20) != 0 || strstr(de->d_name, ".tmp.")) continue;
        char *p = cr_path_join(dir, de->d_name);
        rc = truncate_file(p, step, e);
        free(p);
    }
    closedir(dp);
    return rc;
}
