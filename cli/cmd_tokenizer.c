/* cli/cmd_tokenizer.c — `crucible tokenizer train --corpus FILE... --vocab-size N --out T.json`:
 * learn a byte-level BPE with DeepSeek's pre-tokenizer and write tokenizer.json. */
#include "cli/command.h"
#include "core/args.h"
#include "core/alloc.h"
#include "data/bpe_train.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

const char cmd_tokenizer_summary[] = "tokenizer tools: `tokenizer train` learns a byte-level BPE from a corpus";

static int train(int argc, char **argv) {
    CrStrList corpus = {0};
    long vocab = 0;
    const char *out = NULL;
    ArgSpec specs[] = {
        {"corpus", ARG_STR_LIST, &corpus, "text file to learn from (repeatable)", 1},
        {"vocab-size", ARG_INT, &vocab, "total vocabulary: 256 bytes + merges + 5 special tokens", 1},
        {"out", ARG_STR, &out, "tokenizer.json to write", 1},
        {NULL, 0, NULL, NULL, 0},
    };
    CrError e;
    const char **pos = NULL;
    int npos = 0;
    int r = cr_args_parse("crucible tokenizer train --corpus FILE... --vocab-size N --out T.json", specs, argc,
                          argv, &pos, &npos, &e);
    if (r == CR_ARGS_HELP) return 0;
    if (r) { fprintf(stderr, "crucible tokenizer train: %s\n", e.msg); return 2; }
    /* extra positionals after --corpus FILE are more corpus files (--corpus a b c) */
    int nf = 0;
    const char **files = cr_malloc(sizeof(char *) * (size_t)(corpus.n + npos + 1));
    for (int i = 0; i < corpus.n; i++) files[nf++] = corpus.items[i];
    for (int i = 0; i < npos; i++) files[nf++] = pos[i];
    free(pos);
    if (vocab < 1 || vocab > 1 << 24) {
        fprintf(stderr, "crucible tokenizer train: --vocab-size %ld: out of range\n", vocab);
        free(files);
        return 2;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    BpeTrainStats st;
    int rc = bpe_train_files(files, nf, (int)vocab, out, &st, &e);
    free(files);
    if (rc) {
        fprintf(stderr, "crucible tokenizer train: %s\n", e.msg);
        return 1;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    if (st.vocab_size < vocab)
        fprintf(stderr, "crucible tokenizer train: warning: the corpus ran out of pairs seen twice; "
                        "vocabulary is %d, not %ld\n", st.vocab_size, vocab);
    fprintf(stderr, "crucible tokenizer train: %zu bytes, %zu distinct words, %d merges in %.2f s\n", st.n_bytes,
            st.n_words, st.n_merges, s);
    cJSON *res = cJSON_CreateObject();
    if (!res) CR_DIE("cJSON: out of memory");
    cJSON_AddStringToObject(res, "out", out);
    cJSON_AddNumberToObject(res, "vocab_size", st.vocab_size);
    cJSON_AddNumberToObject(res, "merges", st.n_merges);
    char *line = cJSON_PrintUnformatted(res);
    if (!line) CR_DIE("cJSON: out of memory");
    printf("%s\n", line);
    cJSON_free(line);
    cJSON_Delete(res);
    return fflush(stdout) == 0 ? 0 : 1;
}

int cmd_tokenizer(int argc, char **argv) {
    if (argc >= 1 && !strcmp(argv[0], "train")) return train(argc - 1, argv + 1);
    fprintf(stderr, "usage: crucible tokenizer train --corpus FILE... --vocab-size N --out T.json\n");
    return argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h")) ? 0 : 2;
}
