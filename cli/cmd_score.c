/* cli/cmd_score.c — `crucible score`: per-token log-probabilities of given sequences.
 *
 *   crucible score --model DIR --tokens FILE.json
 *
 * FILE is {"sequences": [[id, ...], ...]}. All sequences are packed into one Batch; the
 * output (stdout, one line) is {"logprobs": [[...], ...], "aux_loss": x}: for each
 * sequence the log-probability of every token after the first given its prefix (a
 * sequence of one token gives []), and the model's summed MoE auxiliary loss. Values are
 * printed with 9 significant digits (fp32 round trips exactly). Bad input — malformed
 * JSON, no sequences, an empty sequence, a token id outside [0, vocab_size), a sequence
 * longer than max_position_embeddings, non-finite weights — is an error naming the file
 * and field, exit status 1. */
#include "cli/command.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "core/args.h"
#include "core/file.h"
#include "core/json.h"
#include "model/device.h"
#include "model/model.h"

const char cmd_score_summary[] = "print per-token log-probabilities of token sequences under a model";

typedef struct Packed {
    int32_t *tokens, *targets, *cu;
    int n_tokens, n_seqs;
} Packed;

static void packed_free(Packed *p) {
    free(p->tokens);
    free(p->targets);
    free(p->cu);
}

static int read_sequences(const char *path, const ModelConfig *c, Packed *p, CrError *e) {
    memset(p, 0, sizeof *p);
    cJSON *root = cr_json_load_object(path, e);
    if (!root) return -1;
    int rc = -1;
    cJSON *seqs = cJSON_GetObjectItemCaseSensitive(root, "sequences");
    if (!cJSON_IsArray(seqs)) {
        cr_error_set(e, "%s: \"sequences\" is missing or not an array", path);
        goto out;
    }
    int S = cJSON_GetArraySize(seqs);
    if (S == 0) {
        cr_error_set(e, "%s: \"sequences\" is empty (nothing to score)", path);
        goto out;
    }
    long total = 0;
    int i = 0;
    for (cJSON *s = seqs->child; s; s = s->next, i++) {
        if (!cJSON_IsArray(s)) {
            cr_error_set(e, "%s: sequences[%d] is not an array of token ids", path, i);
            goto out;
        }
        int n = cJSON_GetArraySize(s);
        if (n == 0) {
            cr_error_set(e, "%s: sequences[%d] is empty", path, i);
            goto out;
        }
        if (n > c->max_position_embeddings) {
            cr_error_set(e, "%s: sequences[%d] has %d tokens, more than max_position_embeddings %d", path, i, n,
                         c->max_position_embeddings);
            goto out;
        }
        total += n;
        if (total > INT32_MAX / 2) {
            cr_error_set(e, "%s: too many tokens", path);
            goto out;
        }
    }
    p->n_seqs = S;
    p->n_tokens = (int)total;
    p->tokens = cr_malloc(sizeof(int32_t) * (size_t)total);
    p->targets = cr_malloc(sizeof(int32_t) * (size_t)total);
    p->cu = cr_malloc(sizeof(int32_t) * (size_t)(S + 1));
    int t = 0;
    i = 0;
    p->cu[0] = 0;
    for (cJSON *s = seqs->child; s; s = s->next, i++) {
        int j = 0;
        for (cJSON *x = s->child; x; x = x->next, j++) {
            double v = cJSON_IsNumber(x) ? x->valuedouble : -1;
            if (!cJSON_IsNumber(x) || v != floor(v) || v < 0 || v >= c->vocab_size) {
                cr_error_set(e, "%s: sequences[%d][%d]: token id must be an integer in [0, %d)", path, i, j,
                             c->vocab_size);
                goto out;
            }
            p->tokens[t] = (int32_t)v;
            p->targets[t] = -1;
            if (j > 0) p->targets[t - 1] = (int32_t)v;
            t++;
        }
        p->cu[i + 1] = t;
    }
    rc = 0;
out:
    cJSON_Delete(root);
    if (rc) packed_free(p);
    return rc;
}

int cmd_score(int argc, char **argv) {
    static const char usage[] = "crucible score --model DIR --tokens FILE.json [--device auto|cpu|cuda|cuda-fp32]";
    const char *model_dir = NULL, *tokens = NULL, *device = device_default();
    const ArgSpec specs[] = {
        {"model", ARG_STR, &model_dir, "model directory (config.json + safetensors)", 1},
        {"tokens", ARG_STR, &tokens, "JSON file {\"sequences\": [[ids...], ...]}", 1},
        {"device", ARG_STR, &device, DEVICE_FLAG_HELP, 0},
        {NULL, 0, NULL, NULL, 0},
    };
    CrError e;
    int rc = cr_args_parse(usage, specs, argc, argv, NULL, NULL, &e);
    if (rc == CR_ARGS_HELP) return 0;
    if (rc) {
        fprintf(stderr, "crucible score: %s\n", e.msg);
        return 2;
    }
    const struct Ops *ops = device_open(device, &e);
    Model *m = ops ? model_load_ops(model_dir, ops, &e) : NULL;
    if (!m) {
        fprintf(stderr, "crucible score: %s\n", e.msg);
        return 1;
    }
    Packed p;
    if (read_sequences(tokens, &m->cfg, &p, &e)) {
        fprintf(stderr, "crucible score: %s\n", e.msg);
        model_free(m);
        return 1;
    }
    Batch b = {.n_tokens = p.n_tokens, .n_seqs = p.n_seqs, .tokens = p.tokens, .targets = p.targets,
               .cu_seqlens = p.cu, .pos = NULL};
    float *logp = cr_malloc(sizeof(float) * (size_t)p.n_tokens);
    float aux = 0;
    rc = model_forward(m, &b, logp, &aux, &e);
    if (rc) {
        fprintf(stderr, "crucible score: %s: %s\n", tokens, e.msg);
    } else {
        int bad = !isfinite(aux);
        for (int t = 0; t < p.n_tokens && !bad; t++) bad = p.targets[t] >= 0 && !isfinite(logp[t]);
        if (bad) {
            fprintf(stderr, "crucible score: %s: the model produced non-finite log-probabilities\n", model_dir);
            rc = -1;
        }
    }
    if (!rc) {
        fputs("{\"logprobs\":[", stdout);
        for (int s = 0; s < p.n_seqs; s++) {
            fputs(s ? ",[" : "[", stdout);
            for (int t = p.cu[s]; t < p.cu[s + 1] - 1; t++) printf(t > p.cu[s] ? ",%.9g" : "%.9g", logp[t]);
            fputs("]", stdout);
        }
        printf("],\"aux_loss\":%.9g}\n", aux);
        if (fflush(stdout) != 0) rc = -1;
    }
    free(logp);
    packed_free(&p);
    model_free(m);
    return rc ? 1 : 0;
}
