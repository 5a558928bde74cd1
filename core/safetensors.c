/* core/safetensors.c — see safetensors.h */
#include "core/safetensors.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/json.h"
#include "core/strbuf.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u * 1000u * 1000u)   /* the reference implementation's limit */
#define ST_MAX_INT 9007199254740992.0           /* 2^53: JSON integers cJSON holds exactly */

typedef struct StFile {
    char *path;
    const unsigned char *base;  /* whole file image */
    size_t size;
    int mapped;                 /* munmap on close */
    cJSON *header;              /* names point into it */
} StFile;

struct SafeTensors {
    StFile *files;
    int n_files;
    StTensor *tensors;
    int n, cap;
    int *by_name;               /* indices sorted by name */
};

static const char *const k_dtype_names[ST_N_DTYPES] = {"F64", "F32", "F16", "BF16", "I64",
                                                       "I32", "I16", "I8",  "U8",   "BOOL"};
static const size_t k_dtype_sizes[ST_N_DTYPES] = {8, 4, 2, 2, 8, 4, 2, 1, 1, 1};

const char *st_dtype_name(StDtype d) {
    return (unsigned)d < ST_N_DTYPES ? k_dtype_names[d] : "?";
}

size_t st_dtype_size(StDtype d) {
    return (unsigned)d < ST_N_DTYPES ? k_dtype_sizes[d] : 0;
}

size_t st_numel(int ndim, const int64_t *shape) {
    size_t n = 1;
    for (int i = 0; i < ndim; i++) n *= (size_t)shape[i];
    return n;
}

/* ---- half-precision conversions ------------------------------------------------ */

static uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }

float st_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

float st_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    if (exp == 0) {                       /* zero or subnormal: mant * 2^-24, exact in fp32 */
        float v = ldexpf((float)mant, -24);
        return sign ? -v : v;
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (mant << 13));   /* inf / NaN (payload kept) */
    return u2f(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t st_f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);   /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);                                             /* nearest even */
    return (uint16_t)(u >> 16);
}

uint16_t st_f32_to_f16(float f) {
    uint32_t u = f2u(f), sign = (u >> 16) & 0x8000, x = u & 0x7fffffffu;
    if (x >= 0x7f800000u) return (uint16_t)(sign | (x > 0x7f800000u ? 0x7e00 : 0x7c00));
    if (x >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);      /* >= 65520 rounds to inf */
    if (x < 0x38800000u) {                                         /* below 2^-14: subnormal */
        float r = nearbyintf(u2f(x) * 16777216.0f);               /* exact scale, then RNE */
        return (uint16_t)(sign | (uint32_t)r);
    }
    x += 0xfffu + ((x >> 13) & 1);
    return (uint16_t)(sign | ((x - (112u << 23)) >> 13));
}

/* ---- parsing -------------------------------------------------------------------- */

static int utf8_valid(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c == 0) return 0;
        if (c < 0x80) { i++; continue; }
        int k;
        unsigned min;
        if ((c & 0xe0) == 0xc0) { k = 1; min = 0x80; c &= 0x1f; }
        else if ((c & 0xf0) == 0xe0) { k = 2; min = 0x800; c &= 0x0f; }
        else if ((c & 0xf8) == 0xf0) { k = 3; min = 0x10000; c &= 0x07; }
        else return 0;
        if (i + (size_t)k >= n) return 0;
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80) return 0;
            c = (c << 6) | (s[i + j] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) return 0;
        i += (size_t)k + 1;
    }
    return 1;
}

static int json_uint(const cJSON *x, uint64_t *out) {
    if (!cJSON_IsNumber(x)) return -1;
    double d = x->valuedouble;
    if (!(d >= 0 && d <= ST_MAX_INT) || d != floor(d)) return -1;
    *out = (uint64_t)d;
    return 0;
}

static int parse_dtype(const char *s, StDtype *d) {
    for (int i = 0; i < ST_N_DTYPES; i++)
        if (!strcmp(s, k_dtype_names[i])) { *d = (StDtype)i; return 0; }
    return -1;
}

static void push_tensor(SafeTensors *s, const StTensor *t) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->tensors = cr_realloc(s->tensors, sizeof *s->tensors * (size_t)s->cap);
    }
    s->tensors[s->n++] = *t;
}

typedef struct Span { uint64_t begin, end; const char *name; } Span;

static int cmp_span(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int cmp_span_name(const void *a, const void *b) {
    return strcmp(((const Span *)a)->name, ((const Span *)b)->name);
}

/* Validate file f's header and append its tensors to s. */
static int parse_file(SafeTensors *s, StFile *f, CrError *e) {
    const char *fn = f->path;
    if (f->size < 8) return cr_error_set(e, "%s: truncated safetensors file (%zu bytes, no header length)", fn, f->size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | f->base[i];
    if (hlen < 2 || hlen > ST_MAX_HEADER)
        return cr_error_set(e, "%s: header length %llu is not sane (2..%u bytes)", fn,
                            (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > f->size - 8)
        return cr_error_set(e, "%s: truncated: header length %llu but only %zu bytes follow", fn,
                            (unsigned long long)hlen, f->size - 8);
    const unsigned char *h = f->base + 8;
    if (!utf8_valid(h, hlen)) return cr_error_set(e, "%s: header is not valid UTF-8 text (or holds a NUL byte)", fn);
    char *text = cr_malloc(hlen + 1);
    memcpy(text, h, hlen);
    text[hlen] = 0;
    char hname[1200];
    snprintf(hname, sizeof hname, "%s: header", fn);
    cJSON *root = cr_json_parse_object(text, hname, e);
    free(text);
    if (!root) return -1;
    f->header = root;
    const size_t data_size = f->size - 8 - hlen;
    const unsigned char *data = h + hlen;
    int n_entries = 0;
    for (cJSON *it = root->child; it; it = it->next) n_entries++;
    Span *spans = cr_malloc(sizeof *spans * (size_t)(n_entries + 1));
    int n_spans = 0, rc = -1, seen_meta = 0;
    for (cJSON *it = root->child; it; it = it->next) {
        const char *name = it->string;
        if (!strcmp(name, "__metadata__")) {
            if (seen_meta) { cr_error_set(e, "%s: duplicate \"__metadata__\"", fn); goto out; }
            seen_meta = 1;
            if (!cJSON_IsObject(it)) { cr_error_set(e, "%s: \"__metadata__\" is not an object", fn); goto out; }
            for (cJSON *m = it->child; m; m = m->next)
                if (!cJSON_IsString(m)) {
                    cr_error_set(e, "%s: \"__metadata__\".\"%s\" is not a string", fn, m->string);
                    goto out;
                }
            continue;
        }
        if (!*name) { cr_error_set(e, "%s: tensor with an empty name", fn); goto out; }
        if (!cJSON_IsObject(it)) { cr_error_set(e, "%s: tensor %s: entry is not an object", fn, name); goto out; }
        StTensor t = {.name = name, .file = fn};
        int nkeys = 0;
        for (cJSON *k = it->child; k; k = k->next) {
            nkeys++;
            if (strcmp(k->string, "dtype") && strcmp(k->string, "shape") && strcmp(k->string, "data_offsets")) {
                cr_error_set(e, "%s: tensor %s: unknown key \"%s\"", fn, name, k->string);
                goto out;
            }
        }
        cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        cJSON *of = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (nkeys != 3 || !dt || !sh || !of) {
            cr_error_set(e, "%s: tensor %s: needs exactly \"dtype\", \"shape\" and \"data_offsets\"", fn, name);
            goto out;
        }
        if (!cJSON_IsString(dt) || parse_dtype(dt->valuestring, &t.dtype)) {
            cr_error_set(e, "%s: tensor %s: unknown dtype %s%s%s", fn, name, cJSON_IsString(dt) ? "\"" : "",
                         cJSON_IsString(dt) ? dt->valuestring : "(not a string)", cJSON_IsString(dt) ? "\"" : "");
            goto out;
        }
        if (!cJSON_IsArray(sh) || cJSON_GetArraySize(sh) > ST_MAX_DIMS) {
            cr_error_set(e, "%s: tensor %s: shape is not a list of at most %d integers", fn, name, ST_MAX_DIMS);
            goto out;
        }
        uint64_t numel = 1;
        for (cJSON *d = sh->child; d; d = d->next) {
            uint64_t v;
            if (json_uint(d, &v)) {
                cr_error_set(e, "%s: tensor %s: shape entry is not a non-negative integer", fn, name);
                goto out;
            }
            t.shape[t.ndim++] = (int64_t)v;
            if (__builtin_mul_overflow(numel, v, &numel) || numel > (uint64_t)ST_MAX_INT) {
                cr_error_set(e, "%s: tensor %s: shape is too large", fn, name);
                goto out;
            }
        }
        uint64_t b, en;
        if (!cJSON_IsArray(of) || cJSON_GetArraySize(of) != 2 || json_uint(of->child, &b) ||
            json_uint(of->child->next, &en) || b > en) {
            cr_error_set(e, "%s: tensor %s: data_offsets must be [begin, end] integers with begin <= end", fn, name);
            goto out;
        }
        uint64_t nbytes = numel * k_dtype_sizes[t.dtype];
        if (en - b != nbytes) {
            cr_error_set(e, "%s: tensor %s: shape and dtype %s need %llu bytes but data_offsets span %llu",
                         fn, name, k_dtype_names[t.dtype], (unsigned long long)nbytes,
                         (unsigned long long)(en - b));
            goto out;
        }
        if (en > data_size) {
            cr_error_set(e, "%s: tensor %s: data_offsets [%llu, %llu] run past the end of the file "
                            "(truncated? data section holds %zu bytes)",
                         fn, name, (unsigned long long)b, (unsigned long long)en, data_size);
            goto out;
        }
        t.nbytes = (size_t)nbytes;
        t.data = data + b;
        spans[n_spans++] = (Span){b, en, name};
        push_tensor(s, &t);
    }
    /* As the reference reader: names are unique (JSON keeps both of a repeated key), and the
     * tensors tile the data section exactly, with no overlap, gap or trailing bytes. */
    qsort(spans, (size_t)n_spans, sizeof *spans, cmp_span_name);
    for (int i = 1; i < n_spans; i++)
        if (!strcmp(spans[i - 1].name, spans[i].name)) {
            cr_error_set(e, "%s: duplicate tensor %s", fn, spans[i].name);
            goto out;
        }
    qsort(spans, (size_t)n_spans, sizeof *spans, cmp_span);
    const Span *prev = NULL;
    uint64_t covered = 0;
    for (int i = 0; i < n_spans; i++) {
        if (spans[i].begin == spans[i].end) continue;
        if (prev && spans[i].begin < prev->end) {
            cr_error_set(e, "%s: tensors %s [%llu, %llu] and %s [%llu, %llu] overlap", fn, prev->name,
                         (unsigned long long)prev->begin, (unsigned long long)prev->end, spans[i].name,
                         (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end);
            goto out;
        }
        if (spans[i].begin != covered) {
            cr_error_set(e, "%s: data bytes [%llu, %llu] before tensor %s belong to no tensor", fn,
                         (unsigned long long)covered, (unsigned long long)spans[i].begin, spans[i].name);
            goto out;
        }
        covered = spans[i].end;
        prev = &spans[i];
    }
    if (covered != data_size) {
        cr_error_set(e, "%s: %llu trailing bytes after the last tensor's data (data section holds %zu bytes, "
                        "tensors cover %llu)", fn, (unsigned long long)(data_size - covered), data_size,
                     (unsigned long long)covered);
        goto out;
    }
    rc = 0;
out:
    free(spans);
    return rc;
}

static int cmp_by_name(const void *a, const void *b, void *ctx) {
    const SafeTensors *s = ctx;
    return strcmp(s->tensors[*(const int *)a].name, s->tensors[*(const int *)b].name);
}

/* Sort the name index and refuse duplicates (within a file or across shards). */
static int build_index(SafeTensors *s, CrError *e) {
    s->by_name = cr_malloc(sizeof(int) * (size_t)(s->n ? s->n : 1));
    for (int i = 0; i < s->n; i++) s->by_name[i] = i;
    qsort_r(s->by_name, (size_t)s->n, sizeof(int), cmp_by_name, s);
    for (int i = 1; i < s->n; i++) {
        const StTensor *a = &s->tensors[s->by_name[i - 1]], *b = &s->tensors[s->by_name[i]];
        if (!strcmp(a->name, b->name)) {
            if (a->file == b->file) return cr_error_set(e, "%s: duplicate tensor %s", a->file, a->name);
            return cr_error_set(e, "duplicate tensor %s in %s and %s", a->name, a->file, b->file);
        }
    }
    return 0;
}

static StFile *add_file(SafeTensors *s, const char *path) {
    s->files = cr_realloc(s->files, sizeof *s->files * (size_t)(s->n_files + 1));
    StFile *f = &s->files[s->n_files++];
    memset(f, 0, sizeof *f);
    f->path = cr_strdup(path);
    return f;
}

static int map_file(StFile *f, CrError *e) {
    int fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cr_error_set(e, "%s: cannot open: %s", f->path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return cr_error_set(e, "%s: not a regular file", f->path);
    }
    f->size = (size_t)st.st_size;
    if (f->size == 0) {
        close(fd);
        return cr_error_set(e, "%s: truncated safetensors file (empty)", f->path);
    }
    void *p = mmap(NULL, f->size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return cr_error_set(e, "%s: mmap failed: %s", f->path, strerror(errno));
    f->base = p;
    f->mapped = 1;
    return 0;
}

static int shard_name_ok(const char *s) {
    if (!*s || s[0] == '/') return 0;
    for (const char *p = s; *p;) {
        const char *q = strchr(p, '/');
        size_t n = q ? (size_t)(q - p) : strlen(p);
        if (n == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!q) break;
        p = q + 1;
    }
    return 1;
}

static int open_index(SafeTensors *s, const char *path, CrError *e) {
    cJSON *root = cr_json_load_object(path, e);
    if (!root) return -1;
    int rc = -1;
    char *dir = cr_strdup(path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0; else strcpy(dir, ".");
    cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(wm) || !wm->child) {
        cr_error_set(e, "%s: \"weight_map\" is missing, empty or not an object", path);
        goto out;
    }
    for (cJSON *it = wm->child; it; it = it->next) {
        if (!cJSON_IsString(it) || !shard_name_ok(it->valuestring)) {
            cr_error_set(e, "%s: weight_map \"%s\": shard must be a relative file name inside the directory", path,
                         it->string);
            goto out;
        }
        char *full = cr_path_join(dir, it->valuestring);
        int known = 0;
        for (int i = 0; i < s->n_files && !known; i++) known = !strcmp(s->files[i].path, full);
        if (!known) {
            StFile *f = add_file(s, full);
            if (map_file(f, e) || parse_file(s, f, e)) {
                cr_error_prefix(e, "shard of %s", path);
                free(full);
                goto out;
            }
        }
        free(full);
    }
    if (build_index(s, e)) goto out;
    /* Every mapped name is in its shard (names are unique, so a tensor found in another
     * shard fails here too) and every shard tensor is mapped. */
    for (cJSON *it = wm->child; it; it = it->next) {
        const StTensor *t = st_find(s, it->string);
        char *full = cr_path_join(dir, it->valuestring);
        if (!t || strcmp(t->file, full)) {
            cr_error_set(e, "%s: tensor %s is missing (weight_map names shard %s)", full, it->string, it->valuestring);
            free(full);
            goto out;
        }
        free(full);
    }
    for (int i = 0; i < s->n; i++) {
        const StTensor *t = &s->tensors[i];
        if (!cJSON_GetObjectItemCaseSensitive(wm, t->name)) {
            cr_error_set(e, "%s: tensor %s is not in the weight_map of %s", t->file, t->name, path);
            goto out;
        }
    }
    rc = 0;
out:
    free(dir);
    cJSON_Delete(root);
    return rc;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

SafeTensors *st_open(const char *path, CrError *e) {
    SafeTensors *s = cr_calloc(1, sizeof *s);
    int rc;
    if (ends_with(path, ".json")) {
        rc = open_index(s, path, e);
    } else {
        StFile *f = add_file(s, path);
        rc = map_file(f, e);
        if (!rc) rc = parse_file(s, f, e);
        if (!rc) rc = build_index(s, e);
    }
    if (rc) {
        st_close(s);
        return NULL;
    }
    return s;
}

SafeTensors *st_open_memory(const void *buf, size_t len, const char *name, CrError *e) {
    SafeTensors *s = cr_calloc(1, sizeof *s);
    StFile *f = add_file(s, name);
    f->base = buf;
    f->size = len;
    if (parse_file(s, f, e) || build_index(s, e)) {
        st_close(s);
        return NULL;
    }
    return s;
}

int st_count(const SafeTensors *s) { return s->n; }

const StTensor *st_at(const SafeTensors *s, int i) {
    return i >= 0 && i < s->n ? &s->tensors[i] : NULL;
}

const StTensor *st_find(const SafeTensors *s, const char *name) {
    int lo = 0, hi = s->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const StTensor *t = &s->tensors[s->by_name[mid]];
        int c = strcmp(name, t->name);
        if (!c) return t;
        if (c < 0) hi = mid - 1; else lo = mid + 1;
    }
    return NULL;
}

const char *st_metadata(const SafeTensors *s, const char *key) {
    if (s->n_files < 1 || !s->files[0].header) return NULL;
    cJSON *m = cJSON_GetObjectItemCaseSensitive(s->files[0].header, "__metadata__");
    cJSON *v = m ? cJSON_GetObjectItemCaseSensitive(m, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

void st_close(SafeTensors *s) {
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) {
        StFile *f = &s->files[i];
        if (f->mapped) munmap((void *)f->base, f->size);
        cJSON_Delete(f->header);
        free(f->path);
    }
    free(s->files);
    free(s->tensors);
    free(s->by_name);
    free(s);
}

/* ---- typed reads ---------------------------------------------------------------- */

static int check_count(const StTensor *t, size_t n_expected, CrError *e) {
    size_t n = st_numel(t->ndim, t->shape);
    if (n != n_expected)
        return cr_error_set(e, "%s: tensor %s has %zu elements, expected %zu", t->file, t->name, n, n_expected);
    return 0;
}

/* Fault the tensor's pages in with one call instead of one fault per 4 KiB page (a
 * hint: failure, e.g. on an older kernel or a non-mapped buffer, changes nothing). */
static void prefault(const StTensor *t) {
#ifdef MADV_POPULATE_READ
    if (t->nbytes < (1u << 20)) return;
    uintptr_t a = (uintptr_t)t->data & ~(uintptr_t)4095, b = (uintptr_t)t->data + t->nbytes;
    (void)madvise((void *)a, b - a, MADV_POPULATE_READ);
#else
    (void)t;
#endif
}

int st_read_f32(const StTensor *t, float *out, size_t n, CrError *e) {
    if (check_count(t, n, e)) return -1;
    const unsigned char *p = t->data;
    prefault(t);
    switch (t->dtype) {
    case ST_F32:
        if (n) memcpy(out, p, n * 4);
        return 0;
    case ST_F64:
#pragma omp parallel for schedule(static) if (n > (1 << 18))
        for (size_t i = 0; i < n; i++) { double d; memcpy(&d, p + 8 * i, 8); out[i] = (float)d; }
        return 0;
    case ST_BF16:
        if (((uintptr_t)p & 1) == 0) {   /* the usual case (8-byte aligned data): vectorizes */
            const uint16_t *h = (const uint16_t *)(const void *)p;
#pragma omp parallel for simd schedule(static) if (n > (1 << 18))
            for (size_t i = 0; i < n; i++) { uint32_t u = (uint32_t)h[i] << 16; memcpy(&out[i], &u, 4); }
            return 0;
        }
#pragma omp parallel for schedule(static) if (n > (1 << 18))
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = st_bf16_to_f32(h); }
        return 0;
    case ST_F16:
#pragma omp parallel for schedule(static) if (n > (1 << 18))
        for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, p + 2 * i, 2); out[i] = st_f16_to_f32(h); }
        return 0;
    default:
        return cr_error_set(e, "%s: tensor %s has dtype %s, expected a float type (F32/BF16/F16/F64)", t->file,
                            t->name, st_dtype_name(t->dtype));
    }
}

int st_read_i64(const StTensor *t, int64_t *out, size_t n, CrError *e) {
    if (check_count(t, n, e)) return -1;
    const unsigned char *p = t->data;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case ST_I64: memcpy(&out[i], p + 8 * i, 8); break;
        case ST_I32: { int32_t v; memcpy(&v, p + 4 * i, 4); out[i] = v; break; }
        case ST_I16: { int16_t v; memcpy(&v, p + 2 * i, 2); out[i] = v; break; }
        case ST_I8: out[i] = (int8_t)p[i]; break;
        case ST_U8: out[i] = p[i]; break;
        case ST_BOOL: out[i] = p[i] != 0; break;
        default:
            return cr_error_set(e, "%s: tensor %s has dtype %s, expected an integer type", t->file, t->name,
                                st_dtype_name(t->dtype));
        }
    }
    return 0;
}

/* ---- writing -------------------------------------------------------------------- */


static void buf_json_string(CrBuf *b, const char *s) {
    cr_buf_puts(b, "\"");
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char tmp[8];
        if (c == '"' || c == '\\') { tmp[0] = '\\'; tmp[1] = (char)c; cr_buf_add(b, tmp, 2); }
        else if (c < 0x20) { snprintf(tmp, sizeof tmp, "\\u%04x", c); cr_buf_puts(b, tmp); }
        else cr_buf_add(b, (const char *)&c, 1);
    }
    cr_buf_puts(b, "\"");
}

static int cmp_str_ptr(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int st_write(const char *path, const StEntry *entries, int n, const char *metadata_json, CrError *e) {
    CrBuf h = {0};
    int rc = -1;
    const char **names = cr_malloc(sizeof *names * (size_t)(n > 0 ? n : 1));
    cr_buf_puts(&h, "{");
    if (metadata_json) {
        cJSON *m = cJSON_Parse(metadata_json);
        int ok = cJSON_IsObject(m);
        for (cJSON *x = ok ? m->child : NULL; x; x = x->next) ok &= cJSON_IsString(x);
        char *txt = ok ? cJSON_PrintUnformatted(m) : NULL;
        cJSON_Delete(m);
        if (!txt) { cr_error_set(e, "%s: __metadata__ must be a JSON object of strings", path); goto out; }
        cr_buf_puts(&h, "\"__metadata__\":");
        cr_buf_puts(&h, txt);
        free(txt);
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const StEntry *t = &entries[i];
        if (!t->name || !*t->name || !strcmp(t->name, "__metadata__") || !utf8_valid((const void *)t->name, strlen(t->name))) {
            cr_error_set(e, "%s: entry %d has an empty or reserved name", path, i);
            goto out;
        }
        if ((unsigned)t->dtype >= ST_N_DTYPES || t->ndim < 0 || t->ndim > ST_MAX_DIMS) {
            cr_error_set(e, "%s: tensor %s: bad dtype or ndim", path, t->name);
            goto out;
        }
        for (int d = 0; d < t->ndim; d++)
            if (t->shape[d] < 0) { cr_error_set(e, "%s: tensor %s: negative dimension", path, t->name); goto out; }
        names[i] = t->name;
        uint64_t nb = st_numel(t->ndim, t->shape) * k_dtype_sizes[t->dtype];
        if (h.n > 1) cr_buf_puts(&h, ",");
        buf_json_string(&h, t->name);
        char tmp[64];
        cr_buf_puts(&h, ":{\"dtype\":\"");
        cr_buf_puts(&h, k_dtype_names[t->dtype]);
        cr_buf_puts(&h, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            snprintf(tmp, sizeof tmp, "%s%lld", d ? "," : "", (long long)t->shape[d]);
            cr_buf_puts(&h, tmp);
        }
        snprintf(tmp, sizeof tmp, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                 (unsigned long long)(off + nb));
        cr_buf_puts(&h, tmp);
        off += nb;
    }
    cr_buf_puts(&h, "}");
    qsort(names, (size_t)n, sizeof *names, cmp_str_ptr);
    for (int i = 1; i < n; i++)
        if (!strcmp(names[i - 1], names[i])) { cr_error_set(e, "%s: duplicate tensor %s", path, names[i]); goto out; }
    while ((8 + h.n) % 8) cr_buf_puts(&h, " ");
    if (h.n > ST_MAX_HEADER) { cr_error_set(e, "%s: header too large (%zu bytes)", path, h.n); goto out; }
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.n >> (8 * i));
    CrAtomicFile f;
    if (cr_atomic_open(&f, path, e)) goto out;
    if (cr_atomic_write(&f, len8, 8, e) || cr_atomic_write(&f, h.p, h.n, e)) goto out;
    for (int i = 0; i < n; i++) {
        size_t nb = st_numel(entries[i].ndim, entries[i].shape) * k_dtype_sizes[entries[i].dtype];
        if (nb && cr_atomic_write(&f, entries[i].data, nb, e)) goto out;
    }
    rc = cr_atomic_commit(&f, e);
out:
    free(names);
    free(h.p);
    return rc;
}
