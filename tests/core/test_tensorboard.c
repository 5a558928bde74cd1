/* tests/core/test_tensorboard.c — CRC-32C vectors and TensorBoard event files parsed back.
 * The parser here is independent of core/tensorboard.c: it re-derives the framing,
 * both masked CRCs and the protobuf wire format from the TFRecord/protobuf specs.
 * tests/reference/read_tb_events.py reads the same files with TensorBoard's own reader. */
#include "tests/test.h"
#include "core/alloc.h"
#include "core/crc32c.h"
#include "core/file.h"
#include "core/tensorboard.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

TEST(core_crc32c_standard_vectors) {
    /* RFC 3720 B.4 and the usual "123456789" check value. */
    unsigned char b[32];
    CHECK(cr_crc32c("123456789", 9) == 0xE3069283u);
    memset(b, 0, 32);
    CHECK(cr_crc32c(b, 32) == 0x8A9136AAu);
    memset(b, 0xff, 32);
    CHECK(cr_crc32c(b, 32) == 0x62A8AB43u);
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)i;
    CHECK(cr_crc32c(b, 32) == 0x46DD794Eu);
    for (int i = 0; i < 32; i++) b[i] = (unsigned char)(31 - i);
    CHECK(cr_crc32c(b, 32) == 0x113FDB5Cu);
    CHECK(cr_crc32c("", 0) == 0);
    /* extend == one shot */
    CHECK(cr_crc32c_extend(cr_crc32c("12345", 5), "6789", 4) == 0xE3069283u);
    /* bit-by-bit reference over random data */
    uint32_t s = 1;
    for (int n = 0; n < 200; n++) {
        unsigned char d[64];
        for (int i = 0; i < 64; i++) { s = s * 1103515245u + 12345u; d[i] = (unsigned char)(s >> 16); }
        size_t len = (size_t)(n % 65);
        uint32_t c = 0xFFFFFFFFu;
        for (size_t i = 0; i < len; i++) {
            c ^= d[i];
            for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        }
        CHECK(cr_crc32c(d, len) == ~c);
    }
    /* masking formula (TFRecord): rotate right 15, add constant */
    uint32_t c = 0x12345678u;
    CHECK(cr_crc32c_mask(c) == (uint32_t)(((c >> 15) | (c << 17)) + 0xa282ead8u));
}

/* ---- a minimal, separate protobuf reader ---- */
typedef struct Rd { const unsigned char *p, *end; int bad; } Rd;

static uint64_t rd_varint(Rd *r) {
    uint64_t v = 0;
    for (int sh = 0; sh < 64; sh += 7) {
        if (r->p >= r->end) { r->bad = 1; return 0; }
        unsigned char c = *r->p++;
        v |= (uint64_t)(c & 0x7f) << sh;
        if (!(c & 0x80)) return v;
    }
    r->bad = 1;
    return 0;
}
static uint64_t rd_le(Rd *r, int n) {
    if (r->end - r->p < n) { r->bad = 1; return 0; }
    uint64_t v = 0;
    for (int i = 0; i < n; i++) v |= (uint64_t)r->p[i] << (8 * i);
    r->p += n;
    return v;
}

typedef struct Ev {
    double wall_time; int64_t step; char version[64]; char tag[64]; float value;
    int has_wall, has_step, has_version, has_value;
} Ev;

static void parse_value(const unsigned char *p, size_t n, Ev *ev, int *bad) {
    Rd r = {p, p + n, 0};
    while (r.p < r.end && !r.bad) {
        uint64_t key = rd_varint(&r);
        if (key == ((1 << 3) | 2)) {
            uint64_t len = rd_varint(&r);
            if (len >= sizeof ev->tag || (uint64_t)(r.end - r.p) < len) { r.bad = 1; break; }
            memcpy(ev->tag, r.p, len); ev->tag[len] = 0; r.p += len;
        } else if (key == ((2 << 3) | 5)) {
            uint32_t u = (uint32_t)rd_le(&r, 4);
            memcpy(&ev->value, &u, 4); ev->has_value = 1;
        } else r.bad = 1;
    }
    *bad |= r.bad;
}

static int parse_event(const unsigned char *p, size_t n, Ev *ev) {
    memset(ev, 0, sizeof *ev);
    Rd r = {p, p + n, 0};
    while (r.p < r.end && !r.bad) {
        uint64_t key = rd_varint(&r);
        if (key == ((1 << 3) | 1)) { uint64_t u = rd_le(&r, 8); memcpy(&ev->wall_time, &u, 8); ev->has_wall = 1; }
        else if (key == ((2 << 3) | 0)) { ev->step = (int64_t)rd_varint(&r); ev->has_step = 1; }
        else if (key == ((3 << 3) | 2)) {
            uint64_t len = rd_varint(&r);
            if (len >= sizeof ev->version || (uint64_t)(r.end - r.p) < len) return -1;
            memcpy(ev->version, r.p, len); ev->version[len] = 0; r.p += len; ev->has_version = 1;
        } else if (key == ((5 << 3) | 2)) {
            uint64_t len = rd_varint(&r);
            if ((uint64_t)(r.end - r.p) < len) return -1;
            Rd s = {r.p, r.p + len, 0};
            while (s.p < s.end && !s.bad) {
                if (rd_varint(&s) != ((1 << 3) | 2)) { s.bad = 1; break; }
                uint64_t vl = rd_varint(&s);
                if ((uint64_t)(s.end - s.p) < vl) { s.bad = 1; break; }
                parse_value(s.p, vl, ev, &s.bad);
                s.p += vl;
            }
            if (s.bad) return -1;
            r.p += len;
        } else return -1;
    }
    return r.bad ? -1 : 0;
}

static uint32_t mask_ref(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xa282ead8u; }

/* Parse every record; returns the count, -1 on any framing/CRC/protobuf error. */
static int read_events(const unsigned char *d, size_t n, Ev *out, int max) {
    size_t off = 0;
    int k = 0;
    while (off < n) {
        if (n - off < 12 || k >= max) return -1;
        Rd r = {d + off, d + n, 0};
        uint64_t len = rd_le(&r, 8);
        uint32_t lcrc = (uint32_t)rd_le(&r, 4);
        if (lcrc != mask_ref(cr_crc32c(d + off, 8))) return -1;
        if (n - off - 12 < len + 4) return -1;
        uint32_t dcrc = (uint32_t)(d[off + 12 + len] | d[off + 13 + len] << 8 | d[off + 14 + len] << 16 |
                                   (uint32_t)d[off + 15 + len] << 24);
        if (dcrc != mask_ref(cr_crc32c(d + off + 12, len))) return -1;
        if (parse_event(d + off + 12, len, &out[k]) != 0) return -1;
        k++;
        off += 16 + len;
    }
    return k;
}

TEST(core_tensorboard_events_parse_back) {
    char *dir = test_tmpdir();
    char *tb = cr_path_join(dir, "run/tb");
    CrError e;
    TbWriter *w = tb_open(tb, &e);
    CHECKF(w != NULL, "tb_open: %s", e.msg);
    if (!w) return;
    CHECK(strstr(tb_path(w), "/events.out.tfevents.") != NULL);
    const char *tags[3] = {"reward/mean", "loss", "kl"};
    for (int s = 0; s < 20; s++)
        for (int j = 0; j < 3; j++)
            CHECK(tb_scalar(w, tags[j], s * 1000L + (s == 19 ? 1L << 40 : 0), 1.7e9 + s, (float)(0.5 * s - j)) == 0);
    CHECK(tb_scalar(w, "", 1, 0, 1) == -1 && strstr(tb_error(w), "empty scalar tag"));
    CHECK(tb_flush(w) == 0);
    char *path = cr_strdup(tb_path(w));
    /* a second writer in the same second must not clobber the first */
    TbWriter *w2 = tb_open(tb, &e);
    CHECK(w2 && strcmp(tb_path(w2), path) != 0);
    tb_close(w2);
    CHECK(tb_close(w) == 0);

    size_t n;
    unsigned char *d = (unsigned char *)cr_read_file(path, &n, &e);
    CHECK(d != NULL);
    if (!d) return;
    Ev ev[64];
    int k = read_events(d, n, ev, 64);
    CHECKF(k == 61, "records = %d", k);
    if (k != 61) return;
    CHECK(ev[0].has_version && !strcmp(ev[0].version, "brain.Event:2") && ev[0].has_wall && !ev[0].has_value);
    for (int s = 0; s < 20; s++)
        for (int j = 0; j < 3; j++) {
            Ev *x = &ev[1 + 3 * s + j];
            CHECK(x->has_step && x->step == s * 1000L + (s == 19 ? 1L << 40 : 0));
            CHECK(x->has_wall && x->wall_time == 1.7e9 + s);
            CHECK(!strcmp(x->tag, tags[j]) && x->has_value && x->value == (float)(0.5 * s - j));
        }
    /* a flipped byte breaks the data CRC; a truncated file is detected */
    d[30] ^= 1;
    CHECK(read_events(d, n, ev, 64) == -1);
    d[30] ^= 1;
    CHECK(read_events(d, n - 3, ev, 64) == -1);
    free(d);
    free(path);
    /* an unwritable location is an error naming the path, not a crash */
    CHECK(tb_open("/proc/crucible-no-such/tb", &e) == NULL && strstr(e.msg, "/proc/crucible-no-such"));
}

TEST(core_tensorboard_truncate_after_resume_step) {
    char *dir = test_tmpdir();
    CrError e;
    TbWriter *w = tb_open(dir, &e);
    CHECKF(w != NULL, "%s", e.msg);
    if (!w) return;
    for (long s = 1; s <= 10; s++) CHECK(tb_scalar(w, "loss", s, 100.0 + s, (float)s) == 0);
    char *path = cr_strdup(tb_path(w));
    CHECK(tb_close(w) == 0);
    /* a torn tail, as a killed writer can leave */
    FILE *f = fopen(path, "ab");
    fwrite("\x05\x00\x00", 1, 3, f);
    fclose(f);
    CHECK(tb_truncate_after(dir, 6, &e) == 0);
    size_t n;
    char *d = cr_read_file(path, &n, &e);
    Ev ev[32];
    int k = d ? read_events((const unsigned char *)d, n, ev, 32) : -1;
    CHECKF(k == 7, "records after truncation: %d (want file_version + steps 1..6)", k);
    for (int i = 1; i < k; i++) CHECK(ev[i].step == i);
    free(d);
    /* nothing to drop: the file is left as it is; a missing directory is fine */
    CHECK(tb_truncate_after(dir, 100, &e) == 0);
    CHECK(tb_truncate_after("/nonexistent/tb", 1, &e) == 0);
    free(path);
    free(dir);
}
