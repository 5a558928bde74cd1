/* bench/safetensors_io.c — checkpoint I/O: our safetensors writer and reader vs the PyPI
 * `safetensors` package (Rust core, via Python) on the same files, in one run.
 *
 *   make bench && build/bench/safetensors_io [DIR] [N_TENSORS] [NUMEL]
 *   (defaults build/bench-safetensors, 64 tensors x 2M floats = 512 MiB as F32)
 *
 * write_f32: st_write (atomic: temp file, fsync, rename) vs safetensors.numpy.save_file
 *            (which does not fsync: ours pays for durability);
 * read_f32:  st_open + st_read_f32 of every tensor into fp32 buffers vs load_file -> numpy;
 * read_bf16: a BF16 file written by safetensors.torch, read and converted to fp32 (ours:
 *            st_read_f32; peer: load_file + .float()). The converted values must equal
 *            torch's: the sums of their fp32 bit patterns must match, or the run fails.
 * Best of 3, page cache warm for reads (both sides read the same files). Run with
 * OMP_NUM_THREADS=1 to compare one thread with one thread (torch's .float() may still use
 * its own intra-op threads). */
#include "core/alloc.h"
#include "core/file.h"
#include "core/safetensors.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double json_num(const char *s, const char *key) {
    const char *p = strstr(s, key);
    return p ? strtod(p + strlen(key) + 3, NULL) : -1;
}

static double read_all(const char *path, float **bufs, int n, size_t numel, uint64_t *checksum) {
    CrError e;
    double t0 = now();
    SafeTensors *s = st_open(path, &e);
    if (!s || st_count(s) != n) { fprintf(stderr, "bench: %s\n", s ? "tensor count" : e.msg); exit(1); }
    for (int i = 0; i < n; i++)
        if (st_read_f32(st_at(s, i), bufs[i], numel, &e)) { fprintf(stderr, "bench: %s\n", e.msg); exit(1); }
    st_close(s);
    double dt = now() - t0;
    uint64_t c = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < numel; j++) { uint32_t u; memcpy(&u, &bufs[i][j], 4); c += u; }
    *checksum = c;
    return dt;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/bench-safetensors";
    int n = argc > 2 ? atoi(argv[2]) : 64;
    size_t numel = argc > 3 ? (size_t)atol(argv[3]) : (size_t)2 << 20;
    CrError e;
    if (cr_mkdir_p(dir, &e)) { fprintf(stderr, "bench: %s\n", e.msg); return 1; }
    char cmd[1024], f32path[512], bf16path[512];
    snprintf(f32path, sizeof f32path, "%s/c_f32.safetensors", dir);
    snprintf(bf16path, sizeof bf16path, "%s/peer_bf16.safetensors", dir);
    snprintf(cmd, sizeof cmd, "python3 bench/safetensors_io_peer.py prepare '%s' %d %zu", dir, n, numel);
    if (system(cmd) != 0) { fprintf(stderr, "bench: peer prepare failed\n"); return 1; }

    float **bufs = cr_malloc(sizeof(float *) * (size_t)n);
    StEntry *ent = cr_calloc((size_t)n, sizeof *ent);
    char (*names)[96] = cr_malloc(sizeof *names * (size_t)n);
    for (int i = 0; i < n; i++) {
        bufs[i] = cr_alloc_aligned(sizeof(float) * numel);
        for (size_t j = 0; j < numel; j++) bufs[i][j] = (float)((j * 2654435761u + (size_t)i) % 1000) * 1e-3f;
        snprintf(names[i], sizeof names[i], "model.layers.%d.mlp.experts.0.up_proj.weight", i);
        ent[i] = (StEntry){.name = names[i], .dtype = ST_F32, .ndim = 1, .shape = {(int64_t)numel}, .data = bufs[i]};
    }
    double gb = (double)n * (double)numel * 4 / 1e9, w = 1e9, r = 1e9, rb = 1e9;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now();
        if (st_write(f32path, ent, n, "{\"format\":\"pt\"}", &e)) { fprintf(stderr, "bench: %s\n", e.msg); return 1; }
        double dt = now() - t0;
        if (dt < w) w = dt;
    }
    uint64_t cs_f32 = 0, cs_bf16 = 0;
    for (int rep = 0; rep < 3; rep++) {
        double dt = read_all(f32path, bufs, n, numel, &cs_f32);
        if (dt < r) r = dt;
        dt = read_all(bf16path, bufs, n, numel, &cs_bf16);
        if (dt < rb) rb = dt;
    }
    snprintf(cmd, sizeof cmd, "python3 bench/safetensors_io_peer.py run '%s'", dir);
    FILE *p = popen(cmd, "r");
    char out[512] = {0};
    if (!p || !fgets(out, sizeof out, p) || pclose(p) != 0) { fprintf(stderr, "bench: peer run failed\n"); return 1; }
    double pw = json_num(out, "\"write_f32\""), pr = json_num(out, "\"read_f32\""), prb = json_num(out, "\"read_bf16\"");
    const char *q = strstr(out, "\"bf16_bits\": ");
    unsigned long long peer_cs = q ? strtoull(q + 13, NULL, 10) : 0;
    if (peer_cs != cs_bf16) {
        fprintf(stderr, "bench: BF16 -> fp32 differs from torch (bit sums %llu vs %llu)\n", (unsigned long long)cs_bf16, peer_cs);
        return 1;
    }
    printf("safetensors I/O, %d tensors x %zu floats (%.2f GB as F32, %.2f GB as BF16)\n", n, numel, gb, gb / 2);
    printf("  write F32 (ours fsyncs)  crucible %6.2f GB/s   safetensors %6.2f GB/s   ratio %.2fx\n", gb / w, gb / pw, pw / w);
    printf("  read  F32 -> fp32        crucible %6.2f GB/s   safetensors %6.2f GB/s   ratio %.2fx\n", gb / r, gb / pr, pr / r);
    printf("  read BF16 -> fp32        crucible %6.2f GB/s   safetensors+torch %6.2f GB/s   ratio %.2fx  (GB of fp32 out)\n",
           gb / rb, gb / prb, prb / rb);
    printf("  BF16 -> fp32 bits identical to torch's (bit sum %llu)\n", (unsigned long long)cs_bf16);
    (void)cs_f32;
    for (int i = 0; i < n; i++) cr_free_aligned(bufs[i]);
    free(bufs), free(ent), free(names);
    return 0;
}
