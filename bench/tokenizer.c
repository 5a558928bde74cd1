/* bench/tokenizer.c — encode throughput of the C tokenizer vs HF `tokenizers` (Rust,
 * via Python, one thread), same tokenizer.json and documents, in one run.
 *
 *   make bench && build/bench/tokenizer [DIR]        (DIR defaults to build/bench-tokenizer)
 *
 * bench/tokenizer_hf.py prepares DIR once (a ~4 MB corpus of Python/C source and the
 * multilingual test corpus; a 32k byte-level BPE with DeepSeek's pre-tokenizer trained
 * by HF), then both sides encode every document separately (HF: Tokenizer.encode in a
 * loop, TOKENIZERS_PARALLELISM=false and RAYON_NUM_THREADS=1, no encode_batch), best of 3.
 * The ids must agree (count and checksum), or the run fails. */
#include "core/alloc.h"
#include "core/file.h"
#include "data/tokenizer.h"

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
    return p ? strtod(p + strlen(key) + 2, NULL) : -1;
}

static int bench_one(const char *dir, const char *name, const char *corpus, size_t len) {
    char tpath[512], cpath[512], cmd[2048];
    snprintf(tpath, sizeof tpath, "%s/%s.json", dir, name);
    snprintf(cpath, sizeof cpath, "%s/corpus.bin", dir);
    CrError e;
    Tokenizer *tok = tokenizer_load(tpath, &e);
    if (!tok) { fprintf(stderr, "bench/tokenizer: %s\n", e.msg); return 1; }
    double best = 1e9;
    long long n_ids = 0;
    unsigned long long cs = 0;
    for (int rep = 0; rep < 3; rep++) {
        n_ids = 0;
        cs = 0;
        double t0 = now();
        size_t s = 0;
        while (s <= len) {
            const char *z = memchr(corpus + s, 0, len - s);
            size_t e2 = z ? (size_t)(z - corpus) : len;
            int n;
            int32_t *ids = tokenizer_encode(tok, corpus + s, e2 - s, 1, &n);
            for (int i = 0; i < n; i++) cs = (cs * 31 + (unsigned)ids[i]) % 1000000007ull;
            n_ids += n;
            free(ids);
            s = e2 + 1;
        }
        double dt = now() - t0;
        if (dt < best) best = dt;
    }
    size_t doc_bytes = len;  /* separators are not text */
    for (size_t i = 0; i < len; i++) doc_bytes -= corpus[i] == 0;
    double c_mbs = (double)doc_bytes / best / 1e6;

    snprintf(cmd, sizeof cmd, "python3 bench/tokenizer_hf.py encode '%s' '%s'", tpath, cpath);
    FILE *p = popen(cmd, "r");
    char out[1024] = {0};
    if (!p || !fgets(out, sizeof out, p) || pclose(p) != 0 || !strstr(out, "\"checksum\"")) {
        fprintf(stderr, "bench/tokenizer: HF peer failed\n");
        tokenizer_free(tok);
        return 1;
    }
    double hf_mbs = json_num(out, "\"mb_s\"");
    long long hf_n = (long long)json_num(out, "\"n_ids\"");
    unsigned long long hf_cs = strtoull(strstr(out, "\"checksum\"") + 12, NULL, 10);
    int same = hf_n == n_ids && hf_cs == cs;
    printf("[%s pre-tokenizer] corpus %zu bytes, %lld tokens, vocab %d\n", name, doc_bytes, n_ids,
           tokenizer_vocab_size(tok));
    printf("  crucible encode (1 thread): %8.2f MB/s\n", c_mbs);
    printf("  HF tokenizers   (1 thread): %8.2f MB/s\n", hf_mbs);
    printf("  ratio crucible/HF: %.2fx   ids identical: %s\n", c_mbs / hf_mbs, same ? "yes" : "NO");
    tokenizer_free(tok);
    return same ? 0 : 1;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "build/bench-tokenizer";
    char tpath[512], cpath[512], cmd[2048];
    snprintf(tpath, sizeof tpath, "%s/gpt2.json", dir);
    snprintf(cpath, sizeof cpath, "%s/corpus.bin", dir);
    if (!cr_file_exists(tpath) || !cr_file_exists(cpath)) {
        snprintf(cmd, sizeof cmd, "python3 bench/tokenizer_hf.py prepare '%s'", dir);
        fprintf(stderr, "preparing %s ...\n", dir);
        if (system(cmd) != 0) { fprintf(stderr, "bench/tokenizer: prepare failed\n"); return 1; }
    }
    CrError e;
    size_t len;
    char *corpus = cr_read_file(cpath, &len, &e);
    if (!corpus) { fprintf(stderr, "bench/tokenizer: %s\n", e.msg); return 1; }
    int rc = bench_one(dir, "deepseek", corpus, len) | bench_one(dir, "gpt2", corpus, len);
    free(corpus);
    return rc;
}
