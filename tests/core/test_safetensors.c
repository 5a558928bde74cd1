/* tests/core/test_safetensors.c — safetensors reader/writer: files written by the PyPI
 * `safetensors` package (tests/reference/gen_safetensors.py), hand-computed BF16/F16
 * conversions, round trips of every dtype, sharded indexes, and one case per class of
 * malformed file with the file and tensor named in the error. */
#include "tests/test.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FIX "tests/fixtures/safetensors"

static uint32_t bits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

TEST(core_st_reads_reference_file_every_dtype) {
    CrError e;
    SafeTensors *s = st_open(FIX "/dtypes.safetensors", &e);
    CHECKF(s, "%s", e.msg);
    if (!s) return;
    CHECK(st_count(s) == 12);
    CHECK(st_metadata(s, "note") && !strcmp(st_metadata(s, "note"), "crucible fixture"));
    CHECK(st_metadata(s, "missing") == NULL);

    float f[8];
    const StTensor *t = st_find(s, "f32");
    CHECK(t && t->dtype == ST_F32 && t->ndim == 2 && t->shape[0] == 2 && t->shape[1] == 4);
    CHECKF(st_read_f32(t, f, 8, &e) == 0, "%s", e.msg);
    const float f32_want[8] = {1.0f, -2.5f, 0.0f, -0.0f, 3.140625f, 65504.0f, 1e-3f, INFINITY};
    CHECK(memcmp(f, f32_want, sizeof f) == 0);

    t = st_find(s, "f64");
    CHECK(t && t->dtype == ST_F64);
    CHECKF(st_read_f32(t, f, 4, &e) == 0, "%s", e.msg);
    CHECK(f[0] == 1.0f && f[1] == -2.5f && f[2] == 0.0f && bits(f[3]) == 0x7f61b1e6u);

    /* torch's fp32 -> bf16 (nearest even): 1+2^-8 ties to 1.0; 1+3*2^-8 ties up to 1+2^-6. */
    t = st_find(s, "bf16");
    CHECK(t && t->dtype == ST_BF16 && t->nbytes == 16);
    CHECKF(st_read_f32(t, f, 8, &e) == 0, "%s", e.msg);
    CHECK(f[0] == 1.0f && f[1] == -2.5f && f[2] == 1.0f && f[3] == 1.015625f);
    CHECK(f[4] == ldexpf(1.0f, -133));              /* bf16 0x0001: fp32 subnormal 2^-133 */
    CHECK(isinf(f[5]) && f[5] < 0 && isnan(f[6]) && bits(f[7]) == 0x7f620000u);

    t = st_find(s, "f16");
    CHECK(t && t->dtype == ST_F16);
    CHECKF(st_read_f32(t, f, 8, &e) == 0, "%s", e.msg);
    CHECK(f[0] == 1.0f && f[1] == -2.5f);
    CHECK(f[2] == ldexpf(1.0f, -24) && f[3] == 1023.0f * ldexpf(1.0f, -24));   /* subnormals */
    CHECK(f[4] == 65504.0f && isinf(f[5]) && f[5] > 0 && isnan(f[6]) && bits(f[7]) == 0x80000000u);

    int64_t iv[4];
    t = st_find(s, "i64");
    CHECKF(st_read_i64(t, iv, 4, &e) == 0, "%s", e.msg);
    CHECK(iv[0] == 0 && iv[1] == -1 && iv[2] == (int64_t)1 << 40 && iv[3] == -((int64_t)1 << 62));
    CHECKF(st_read_i64(st_find(s, "i32"), iv, 3, &e) == 0, "%s", e.msg);
    CHECK(iv[0] == 7 && iv[1] == -7 && iv[2] == 2147483647);
    CHECKF(st_read_i64(st_find(s, "i16"), iv, 2, &e) == 0, "%s", e.msg);
    CHECK(iv[0] == -32768 && iv[1] == 32767);
    CHECKF(st_read_i64(st_find(s, "i8"), iv, 3, &e) == 0, "%s", e.msg);
    CHECK(iv[0] == -128 && iv[1] == 127 && iv[2] == 0);
    CHECKF(st_read_i64(st_find(s, "u8"), iv, 3, &e) == 0, "%s", e.msg);
    CHECK(iv[0] == 0 && iv[1] == 255 && iv[2] == 17);
    CHECKF(st_read_i64(st_find(s, "bool"), iv, 3, &e) == 0, "%s", e.msg);
    CHECK(iv[0] == 1 && iv[1] == 0 && iv[2] == 1);

    t = st_find(s, "scalar");
    CHECK(t && t->ndim == 0);
    CHECKF(st_read_f32(t, f, 1, &e) == 0 && f[0] == 4.5f, "%s", e.msg);
    t = st_find(s, "empty");
    CHECK(t && t->ndim == 2 && t->shape[0] == 0 && t->nbytes == 0);
    CHECKF(st_read_f32(t, f, 0, &e) == 0, "%s", e.msg);

    /* Wrong type and wrong count name the tensor and the file. */
    CHECK(st_read_f32(st_find(s, "i32"), f, 3, &e) == -1);
    CHECKF(strstr(e.msg, "i32") && strstr(e.msg, "dtypes.safetensors") && strstr(e.msg, "I32"), "%s", e.msg);
    CHECK(st_read_i64(st_find(s, "f32"), iv, 8, &e) == -1);
    CHECKF(strstr(e.msg, "f32") && strstr(e.msg, "F32"), "%s", e.msg);
    CHECK(st_read_f32(st_find(s, "f32"), f, 7, &e) == -1);
    CHECKF(strstr(e.msg, "f32") && strstr(e.msg, "8 elements") && strstr(e.msg, "expected 7"), "%s", e.msg);
    st_close(s);
}

TEST(core_st_half_conversions_hand_values) {
    /* F16 -> F32: sign | 5-bit exponent (bias 15) | 10-bit mantissa. */
    CHECK(st_f16_to_f32(0x3c00) == 1.0f);
    CHECK(st_f16_to_f32(0xc100) == -2.5f);
    CHECK(st_f16_to_f32(0x0001) == ldexpf(1.0f, -24));                /* smallest subnormal */
    CHECK(st_f16_to_f32(0x03ff) == 1023.0f * ldexpf(1.0f, -24));      /* largest subnormal */
    CHECK(st_f16_to_f32(0x0400) == ldexpf(1.0f, -14));                /* smallest normal */
    CHECK(st_f16_to_f32(0x7bff) == 65504.0f);
    CHECK(st_f16_to_f32(0x8000) == 0.0f && signbit(st_f16_to_f32(0x8000)));
    CHECK(isinf(st_f16_to_f32(0x7c00)) && st_f16_to_f32(0xfc00) < 0);
    CHECK(isnan(st_f16_to_f32(0x7e00)) && isnan(st_f16_to_f32(0x7c01)));
    /* BF16 -> F32 is the upper half. */
    CHECK(st_bf16_to_f32(0x3f80) == 1.0f && st_bf16_to_f32(0xc020) == -2.5f);
    CHECK(st_bf16_to_f32(0x0001) == ldexpf(1.0f, -133));
    CHECK(isinf(st_bf16_to_f32(0x7f80)) && isnan(st_bf16_to_f32(0x7fc0)));
    /* F32 -> half, nearest even. */
    CHECK(st_f32_to_bf16(1.0f) == 0x3f80 && st_f32_to_bf16(-2.5f) == 0xc020);
    CHECK(st_f32_to_bf16(1.00390625f) == 0x3f80);     /* tie, even below */
    CHECK(st_f32_to_bf16(1.01171875f) == 0x3f82);     /* tie, even above */
    CHECK(st_f32_to_bf16(nextafterf(1.00390625f, 2.0f)) == 0x3f81);   /* just above the tie */
    CHECK((st_f32_to_bf16(NAN) & 0x7fc0) == 0x7fc0);
    CHECK(st_f32_to_f16(1.0f) == 0x3c00 && st_f32_to_f16(-2.5f) == 0xc100);
    CHECK(st_f32_to_f16(65504.0f) == 0x7bff && st_f32_to_f16(65519.99f) == 0x7bff);
    CHECK(st_f32_to_f16(65520.0f) == 0x7c00 && st_f32_to_f16(1e6f) == 0x7c00 && st_f32_to_f16(-1e6f) == 0xfc00);
    CHECK(st_f32_to_f16(ldexpf(1.0f, -24)) == 0x0001);
    CHECK(st_f32_to_f16(ldexpf(1.0f, -25)) == 0x0000);             /* tie to even (0) */
    CHECK(st_f32_to_f16(ldexpf(3.0f, -26)) == 0x0001);             /* 0.75 ulp rounds up */
    CHECK(st_f32_to_f16(1.0f + ldexpf(1.0f, -11)) == 0x3c00);     /* tie, even below */
    CHECK(st_f32_to_f16(1.0f + ldexpf(3.0f, -11)) == 0x3c02);     /* tie, even above */
    CHECK(st_f32_to_f16(INFINITY) == 0x7c00 && (st_f32_to_f16(NAN) & 0x7e00) == 0x7e00);
    /* Every half value survives half -> f32 -> half. */
    int bad16 = 0, badbf = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float a = st_f16_to_f32((uint16_t)h), b = st_bf16_to_f32((uint16_t)h);
        if (isnan(a) ? !isnan(st_f16_to_f32(st_f32_to_f16(a))) : st_f32_to_f16(a) != h) bad16++;
        if (isnan(b) ? !isnan(st_bf16_to_f32(st_f32_to_bf16(b))) : st_f32_to_bf16(b) != h) badbf++;
    }
    CHECKF(bad16 == 0 && badbf == 0, "%d f16 and %d bf16 patterns fail to round trip", bad16, badbf);
}

TEST(core_st_write_read_round_trip_every_dtype) {
    char *dir = test_tmpdir();
    char *path = cr_path_join(dir, "rt.safetensors");
    double d64[3] = {1.5, -1e-300, 1e300};
    float d32[6] = {1, 2, 3, 4, 5, -6.25f};
    uint16_t d16[2] = {0x3c00, 0x0001}, dbf[3] = {0x3f80, 0xc020, 0x7f80};
    int64_t i64[2] = {-5, (int64_t)1 << 50};
    int32_t i32[1] = {-123456};
    int16_t i16[2] = {-2, 3};
    int8_t i8[2] = {-1, 1};
    uint8_t u8[1] = {200}, bl[2] = {1, 0};
    StEntry ent[] = {
        {"model.a\"quoted\\name", ST_F64, 1, {3}, d64}, {"b", ST_F32, 2, {2, 3}, d32}, {"c", ST_F16, 1, {2}, d16},
        {"d", ST_BF16, 3, {1, 3, 1}, dbf},             {"e", ST_I64, 1, {2}, i64},    {"f", ST_I32, 0, {0}, i32},
        {"g", ST_I16, 1, {2}, i16},                    {"h", ST_I8, 1, {2}, i8},       {"i", ST_U8, 1, {1}, u8},
        {"j", ST_BOOL, 1, {2}, bl},                    {"k", ST_F32, 2, {0, 7}, d32},
    };
    int n = (int)(sizeof ent / sizeof ent[0]);
    CrError e;
    CHECKF(st_write(path, ent, n, "{\"format\":\"pt\",\"step\":\"12\"}", &e) == 0, "%s", e.msg);
    size_t len;
    char *raw = cr_read_file(path, &len, &e);
    CHECK(raw != NULL);
    if (!raw) return;
    uint64_t hlen;
    memcpy(&hlen, raw, 8);
    CHECK((8 + hlen) % 8 == 0);   /* data 8-byte aligned in the file */
    free(raw);
    SafeTensors *s = st_open(path, &e);
    CHECKF(s, "%s", e.msg);
    if (!s) return;
    CHECK(st_count(s) == n);
    CHECK(st_metadata(s, "step") && !strcmp(st_metadata(s, "step"), "12"));
    for (int i = 0; i < n; i++) {
        const StTensor *t = st_at(s, i);
        CHECK(!strcmp(t->name, ent[i].name) && t->dtype == ent[i].dtype && t->ndim == ent[i].ndim);
        CHECK(st_find(s, ent[i].name) == t);
        for (int d = 0; d < t->ndim; d++) CHECK(t->shape[d] == ent[i].shape[d]);
        CHECK(t->nbytes == st_numel(ent[i].ndim, ent[i].shape) * st_dtype_size(ent[i].dtype));
        CHECK(t->nbytes == 0 || memcmp(t->data, ent[i].data, t->nbytes) == 0);
    }
    st_close(s);
    /* Refused: duplicate names, reserved name, bad metadata; the old file survives. */
    StEntry dup[] = {{"x", ST_F32, 1, {1}, d32}, {"x", ST_F32, 1, {1}, d32}};
    CHECK(st_write(path, dup, 2, NULL, &e) == -1);
    CHECKF(strstr(e.msg, "duplicate tensor x"), "%s", e.msg);
    StEntry meta[] = {{"__metadata__", ST_F32, 1, {1}, d32}};
    CHECK(st_write(path, meta, 1, NULL, &e) == -1);
    CHECK(st_write(path, dup, 1, "{\"step\": 3}", &e) == -1);
    CHECKF(strstr(e.msg, "__metadata__"), "%s", e.msg);
    s = st_open(path, &e);
    CHECKF(s && st_count(s) == n, "old file lost: %s", s ? "" : e.msg);
    st_close(s);
    free(path);
}

static float *load_expected(const char *name, cJSON *root, size_t *n) {
    cJSON *a = cJSON_GetObjectItemCaseSensitive(root, name);
    *n = (size_t)cJSON_GetArraySize(a);
    float *v = cr_malloc(sizeof(float) * (*n + 1));
    size_t i = 0;
    for (cJSON *x = a ? a->child : NULL; x; x = x->next) v[i++] = (float)x->valuedouble;
    return v;
}

TEST(core_st_sharded_index) {
    CrError e;
    SafeTensors *s = st_open(FIX "/sharded/model.safetensors.index.json", &e);
    CHECKF(s, "%s", e.msg);
    if (!s) return;
    CHECK(st_count(s) == 4);
    char *txt = cr_read_file(FIX "/sharded/expected.json", NULL, &e);
    cJSON *root = cJSON_Parse(txt);
    CHECK(root != NULL);
    const char *names[] = {"model.embed_tokens.weight", "model.layers.0.input_layernorm.weight", "lm_head.weight",
                           "model.norm.weight"};
    for (int i = 0; i < 4; i++) {
        const StTensor *t = st_find(s, names[i]);
        CHECKF(t, "missing %s", names[i]);
        if (!t) continue;
        CHECK(strstr(t->file, i < 2 ? "model-00001-of-000002" : "model-00002-of-000002"));
        size_t n;
        float *want = load_expected(names[i], root, &n);
        float *got = cr_malloc(sizeof(float) * n);
        CHECKF(st_read_f32(t, got, n, &e) == 0, "%s", e.msg);
        CHECK(memcmp(got, want, n * sizeof(float)) == 0);
        free(want);
        free(got);
    }
    cJSON_Delete(root);
    free(txt);
    st_close(s);
}

static void write_text(const char *dir, const char *name, const char *text) {
    char *p = cr_path_join(dir, name);
    CrError e;
    if (cr_write_file_atomic(p, text, strlen(text), &e)) CR_DIE("%s", e.msg);
    free(p);
}

/* Expect st_open(path) to fail with every needle in the message. */
static int open_fails(const char *path, const char *n1, const char *n2, char *msg) {
    CrError e;
    SafeTensors *s = st_open(path, &e);
    if (s) { st_close(s); strcpy(msg, "opened"); return 0; }
    snprintf(msg, CR_ERR_MAX, "%s", e.msg);
    return (!n1 || strstr(e.msg, n1)) && (!n2 || strstr(e.msg, n2));
}

TEST(core_st_sharded_index_errors) {
    char *dir = test_tmpdir();
    float v[2] = {1, 2};
    StEntry a[] = {{"a", ST_F32, 1, {2}, v}}, b[] = {{"b", ST_F32, 1, {2}, v}};
    CrError e;
    char *pa = cr_path_join(dir, "s1.safetensors"), *pb = cr_path_join(dir, "s2.safetensors");
    CHECK(st_write(pa, a, 1, NULL, &e) == 0 && st_write(pb, b, 1, NULL, &e) == 0);
    char msg[CR_ERR_MAX], *idx = cr_path_join(dir, "model.safetensors.index.json");
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}");
    CrError e2;
    SafeTensors *s = st_open(idx, &e2);
    CHECKF(s && st_count(s) == 2, "%s", e2.msg);
    st_close(s);
    /* A mapped tensor absent from its shard. */
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\",\"c\":\"s2.safetensors\"}}");
    CHECKF(open_fails(idx, "tensor c is missing", "s2.safetensors", msg), "%s", msg);
    /* A tensor in a shard the map does not name. */
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s1.safetensors\"}}");
    CHECKF(open_fails(idx, "tensor b", "s1.safetensors", msg), "%s", msg);
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"s1.safetensors\"}}");
    s = st_open(idx, &e2);   /* s2 is not named, so b is simply absent */
    CHECKF(s && st_count(s) == 1 && !st_find(s, "b"), "%s", s ? "b visible" : e2.msg);
    st_close(s);
    /* Missing shard file, escaping path, malformed index. */
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"s9.safetensors\"}}");
    CHECKF(open_fails(idx, "s9.safetensors", "cannot open", msg), "%s", msg);
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"../s1.safetensors\"}}");
    CHECKF(open_fails(idx, "weight_map \"a\"", NULL, msg), "%s", msg);
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\":[1,2]}");
    CHECKF(open_fails(idx, "weight_map", "model.safetensors.index.json", msg), "%s", msg);
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\":{\"a\":\"s1.safetensors\"");
    CHECKF(open_fails(idx, "not a JSON object", "model.safetensors.index.json", msg), "%s", msg);
    free(pa);
    free(pb);
    free(idx);
}

/* A file image: header text + data bytes. */
static unsigned char *image(const char *header, size_t data_len, size_t *len) {
    size_t hl = strlen(header);
    *len = 8 + hl + data_len;
    unsigned char *p = cr_calloc(*len + 1, 1);
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(p + 8, header, hl);
    return p;
}

TEST(core_st_malformed_files_named_errors) {
    struct { const char *header; size_t data; const char *n1, *n2; } cases[] = {
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}", 12, "tensor w", "truncated"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,12]}}", 16, "tensor w", "need 16 bytes"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, "overlap", "tensors w"},
        {"{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, "tensor w", "unknown dtype"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "tensor w", "shape"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,8]}}", 8, "tensor w", "shape"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4, "tensor w", "shape"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "tensor w", "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "tensor w", "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor w", "data_offsets"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"x\":1}}", 8, "tensor w", "unknown key"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate tensor w", NULL},
        /* The same key twice over the same bytes is a duplicate, not an "overlap". */
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "duplicate tensor w", NULL},
        /* The tensors must tile the data section, as the reference reader requires. */
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 8, "4 trailing bytes", NULL},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "before tensor w", "[0, 4]"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"v\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}", 12, "before tensor v", NULL},
        {"{}", 3, "3 trailing bytes", NULL},
        {"{\"w\":[1,2]}", 0, "tensor w", "not an object"},
        {"[1,2]", 0, "not a JSON object", NULL},
        {"{\"w\":{\"dtype\":\"F32\",", 0, "not a JSON object", NULL},
        {"{} x", 0, "not a JSON object", NULL},
        {"{\"__metadata__\":{\"a\":1}}", 0, "__metadata__", NULL},
        {"{\"__metadata__\":[]}", 0, "__metadata__", NULL},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[99999999999,99999999999],\"data_offsets\":[0,4]}}", 4, "tensor w", "too large"},
        {"{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"\":{}}", 4, "empty name", NULL},
    };
    char *dir = test_tmpdir();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        unsigned char *img = image(cases[i].header, cases[i].data, &len);
        char name[64];
        snprintf(name, sizeof name, "case%zu.safetensors", i);
        char *p = cr_path_join(dir, name);
        CrError e;
        if (cr_write_file_atomic(p, img, len, &e)) CR_DIE("%s", e.msg);
        char msg[CR_ERR_MAX];
        CHECKF(open_fails(p, cases[i].n1, cases[i].n2, msg) && strstr(msg, name), "case %zu (%s): %s", i,
               cases[i].header, msg);
        /* The in-memory parser (the fuzz target's entry) agrees. */
        SafeTensors *s = st_open_memory(img, len, name, &e);
        CHECKF(!s, "case %zu parsed from memory", i);
        st_close(s);
        free(p);
        free(img);
    }
    /* File-level damage: empty, too short for the length, header length past the end or
     * absurd, NUL inside the header, invalid UTF-8. */
    struct { const unsigned char *bytes; size_t len; const char *needle; } raw[] = {
        {(const unsigned char *)"", 0, "empty"},
        {(const unsigned char *)"\x10\0\0", 3, "truncated"},
        {(const unsigned char *)"\x40\0\0\0\0\0\0\0{}", 10, "truncated"},
        {(const unsigned char *)"\xff\xff\xff\xff\xff\xff\xff\xff{}", 10, "header length"},
        {(const unsigned char *)"\x01\0\0\0\0\0\0\0{", 9, "header length"},
        {(const unsigned char *)"\x04\0\0\0\0\0\0\0{}\0 ", 12, "UTF-8"},
        {(const unsigned char *)"\x04\0\0\0\0\0\0\0{\xc3}\x28", 12, "UTF-8"},
    };
    for (size_t i = 0; i < sizeof raw / sizeof raw[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "raw%zu.safetensors", i);
        char *p = cr_path_join(dir, name);
        CrError e;
        if (cr_write_file_atomic(p, raw[i].bytes, raw[i].len, &e)) CR_DIE("%s", e.msg);
        char msg[CR_ERR_MAX];
        CHECKF(open_fails(p, raw[i].needle, name, msg), "raw case %zu: %s", i, msg);
        free(p);
    }
    /* A valid file cut anywhere inside its data is refused (names the tensor). */
    float v[4] = {1, 2, 3, 4};
    StEntry ent[] = {{"layer.w", ST_F32, 2, {2, 2}, v}};
    char *good = cr_path_join(dir, "good.safetensors");
    CrError e;
    CHECK(st_write(good, ent, 1, NULL, &e) == 0);
    size_t len;
    char *bytes = cr_read_file(good, &len, &e);
    for (size_t cut = len - 16; cut < len; cut++) {
        SafeTensors *s = st_open_memory(bytes, cut, "cut.safetensors", &e);
        CHECKF(!s && strstr(e.msg, "layer.w") && strstr(e.msg, "truncated"), "cut at %zu: %s", cut, s ? "opened" : e.msg);
        st_close(s);
    }
    SafeTensors *s = st_open_memory(bytes, len, "whole.safetensors", &e);
    CHECKF(s != NULL, "%s", e.msg);
    st_close(s);
    free(bytes);
    free(good);
}
