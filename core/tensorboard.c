/* core/tensorboard.c — TFRecord framing + hand-encoded Event/Summary protobufs. */
#include "core/tensorboard.h"
#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/file.h"
#include "core/strbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct TbWriter {
    FILE *f;
    char *path;
    CrError err;
};

/* A growable byte buffer for one encoded message. */

static void put_varint(CrBuf *b, uint64_t v) {
    unsigned char t[10];
    size_t n = 0;
    do {
        t[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) t[n] |= 0x80;
        n++;
    } while (v);
    cr_buf_add(b, t, n);
}

static void put_le(CrBuf *b, uint64_t v, int bytes) {
    unsigned char t[8];
    for (int i = 0; i < bytes; i++) t[i] = (unsigned char)(v >> (8 * i));
    cr_buf_add(b, t, (size_t)bytes);
}

/* Field key = (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited, 5 fixed32). */
static void put_key(CrBuf *b, unsigned field, unsigned wire) { put_varint(b, ((uint64_t)field << 3) | wire); }

static void put_bytes_field(CrBuf *b, unsigned field, const void *data, size_t n) {
    put_key(b, field, 2);
    put_varint(b, n);
    cr_buf_add(b, data, n);
}

static void put_double_field(CrBuf *b, unsigned field, double v) {
    uint64_t u;
    memcpy(&u, &v, 8);
    put_key(b, field, 1);
    put_le(b, u, 8);
}

static int write_record(TbWriter *w, const CrBuf *data) {
    CrBuf rec = {0};
    put_le(&rec, data->n, 8);
    put_le(&rec, cr_crc32c_mask(cr_crc32c(rec.p, 8)), 4);
    cr_buf_add(&rec, data->p, data->n);
    put_le(&rec, cr_crc32c_mask(cr_crc32c(data->p, data->n)), 4);
    int rc = 0;
    if (fwrite(rec.p, 1, rec.n, w->f) != rec.n)
        rc = cr_error_set(&w->err, "%s: write failed: %s", w->path, strerror(errno));
    free(rec.p);
    return rc;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

TbWriter *tb_open(const char *dir, CrError *e) {
    if (!dir || !*dir) { cr_error_set(e, "tensorboard: empty log directory"); return NULL; }
    if (cr_mkdir_p(dir, e) != 0) return NULL;
    char host[256];
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = 0;
    for (char *c = host; *c; c++) if (*c == '/') *c = '_';
    double t0 = now_seconds();
    TbWriter *w = cr_calloc(1, sizeof *w);
    size_t cap = strlen(dir) + strlen(host) + 96;
    w->path = cr_malloc(cap);
    for (int k = 0; k < 1000 && !w->f; k++) {
        if (k == 0) snprintf(w->path, cap, "%s/events.out.tfevents.%ld.%s", dir, (long)t0, host);
        else snprintf(w->path, cap, "%s/events.out.tfevents.%ld.%s.%d", dir, (long)t0, host, k);
        w->f = fopen(w->path, "wbx");  /* exclusive: never clobber another writer's file */
        if (!w->f && errno != EEXIST) break;
    }
    if (!w->f) {
        cr_error_set(e, "%s: cannot create event file: %s", w->path, strerror(errno));
        free(w->path);
        free(w);
        return NULL;
    }
    CrBuf ev = {0};
    put_double_field(&ev, 1, t0);
    static const char version[] = "brain.Event:2";
    put_bytes_field(&ev, 3, version, sizeof version - 1);
    int rc = write_record(w, &ev);
    free(ev.p);
    if (rc != 0 || tb_flush(w) != 0) {
        cr_error_set(e, "%s", w->err.msg);
        tb_close(w);
        return NULL;
    }
    return w;
}

int tb_scalar(TbWriter *w, const char *tag, long step, double wall_time, float value) {
    CR_CHECK(w);
    if (!tag || !*tag) return cr_error_set(&w->err, "%s: empty scalar tag", w->path);
    CrBuf val = {0}, sum = {0}, ev = {0};
    put_bytes_field(&val, 1, tag, strlen(tag));
    uint32_t u;
    memcpy(&u, &value, 4);
    put_key(&val, 2, 5);
    put_le(&val, u, 4);
    put_bytes_field(&sum, 1, val.p, val.n);
    put_double_field(&ev, 1, wall_time);
    put_key(&ev, 2, 0);
    put_varint(&ev, (uint64_t)(int64_t)step);  /* int64: negative steps take 10 bytes, as protobuf does */
    put_bytes_field(&ev, 5, sum.p, sum.n);
    int rc = write_record(w, &ev);
    free(val.p);
    free(sum.p);
    free(ev.p);
    return rc;
}

int tb_flush(TbWriter *w) {
    CR_CHECK(w);
    if (fflush(w->f) != 0) return cr_error_set(&w->err, "%s: flush failed: %s", w->path, strerror(errno));
    if (fdatasync(fileno(w->f)) != 0 && errno != EINVAL)
        return cr_error_set(&w->err, "%s: fdatasync failed: %s", w->path, strerror(errno));
    return 0;
}

int tb_close(TbWriter *w) {
    if (!w) return 0;
    int rc = 0;
    if (w->f) {
        if (fflush(w->f) != 0) rc = -1;
        if (fclose(w->f) != 0) rc = -1;
    }
    free(w->path);
    free(w);
    return rc;
}

const char *tb_path(const TbWriter *w) { return w->path; }
const char *tb_error(const TbWriter *w) { return w->err.msg; }
