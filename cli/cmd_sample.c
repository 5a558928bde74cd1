/* cli/cmd_sample.c — `crucible sample`: G completions per prompt from the rollout engine.
 *
 *   crucible sample --model DIR --prompts FILE.jsonl -n G [--temperature T --top-p P
 *       --top-k K --min-p M --max-new-tokens N --stop STR ... --seed S] > out.jsonl
 *
 * Input lines are {"prompt": "..."} (encoded as BOS + text, special tokens such as the
 * FIM markers recognised) or {"messages": [{"role", "content"}, ...]} (the chat template
 * with the generation prompt "Assistant:", data/chat.h). Output: one line per prompt, in
 * input order:
 *   {"prompt_index": i, "samples": [{"text", "token_ids", "logprobs", "logprobs_model",
 *    "finish_reason": "stop"|"length"}, ...]}
 * token_ids include the EOS that ended a sample (text does not; text is also cut before a
 * stop string); logprobs are under the distribution sampled from (temperature and
 * truncation applied; 0 when greedy), logprobs_model under the untempered model. Text is
 * made valid UTF-8 (invalid bytes -> U+FFFD). Progress (tokens/s) goes to stderr.
 * Prompts are served --batch-prompts at a time; sample g of prompt i draws from the RNG
 * stream (seed, i, g), so output does not depend on --batch-prompts or threads. */
#include "cli/command.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "core/alloc.h"
#include "core/args.h"
#include "data/chat.h"
#include "data/jsonl.h"
#include "data/tokenizer.h"
#include "data/utf8.h"
#include "model/device.h"
#include "model/model.h"
#include "rollout/rollout.h"
#include "rollout/sampler.h"

const char cmd_sample_summary[] = "generate G completions per prompt (JSONL in, JSONL out)";

/* One input line -> token ids (malloc'd). */
static int encode_line(const JsonlIter *it, const cJSON *obj, const Tokenizer *tok, int32_t **ids, int *n,
                       CrError *e) {
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive(obj, "messages");
    const cJSON *prompt = cJSON_GetObjectItemCaseSensitive(obj, "prompt");
    if (msgs && prompt)
        return jsonl_field_error(it, e, "", "messages", "give either \"prompt\" or \"messages\", not both");
    if (prompt) {
        if (!cJSON_IsString(prompt))
            return jsonl_field_error(it, e, "", "prompt", "must be a string");
        int nt = 0;
        int32_t *t = tokenizer_encode(tok, prompt->valuestring, strlen(prompt->valuestring), 1, &nt);
        int bos = tokenizer_bos_id(tok);
        *ids = cr_malloc(sizeof(int32_t) * (size_t)(nt + 1));
        *n = 0;
        if (bos >= 0) (*ids)[(*n)++] = bos;
        memcpy(*ids + *n, t, sizeof(int32_t) * (size_t)nt);
        *n += nt;
        free(t);
        return 0;
    }
    if (!cJSON_IsArray(msgs) || cJSON_GetArraySize(msgs) == 0)
        return jsonl_field_error(it, e, "", "messages", "need \"prompt\" (string) or \"messages\" (non-empty array)");
    int nm = cJSON_GetArraySize(msgs), rc = -1, k = 0;
    SftRole *roles = cr_calloc((size_t)nm, sizeof *roles);
    char **contents = cr_calloc((size_t)nm, sizeof *contents);
    for (const cJSON *m = msgs->child; m; m = m->next, k++) {
        char where[32], *role = NULL;
        snprintf(where, sizeof where, "messages[%d]", k);
        if (!cJSON_IsObject(m)) {
            jsonl_field_error(it, e, "", where, "expected an object {\"role\", \"content\"}");
            goto out;
        }
        if (jsonl_str(it, m, where, "role", 1, &role, e) < 0) goto out;
        if (!strcmp(role, "system")) roles[k] = SFT_SYSTEM;
        else if (!strcmp(role, "user")) roles[k] = SFT_USER;
        else if (!strcmp(role, "assistant")) roles[k] = SFT_ASSISTANT;
        else {
            jsonl_field_error(it, e, where, "role", "\"%s\" is not system, user or assistant", role);
            free(role);
            goto out;
        }
        free(role);
        if (jsonl_str(it, m, where, "content", 1, &contents[k], e) < 0) goto out;
    }
    TokenSeq ts;
    if (chat_encode(tok, roles, contents, nm, 1, &ts, e) != 0) goto out;
    *ids = ts.ids;
    *n = ts.n;
    free(ts.loss);
    rc = 0;
out:
    for (int i = 0; i < nm; i++) free(contents[i]);
    free(contents);
    free(roles);
    return rc;
}

static cJSON *sample_json(const Sample *s) {
    cJSON *o = cJSON_CreateObject();
    size_t tl = 0;
    char *text = utf8_sanitize(s->text ? s->text : "", s->text ? s->text_len : 0, &tl);
    cJSON_AddStringToObject(o, "text", text);
    free(text);
    cJSON *ids = cJSON_AddArrayToObject(o, "token_ids");
    cJSON *lp = cJSON_AddArrayToObject(o, "logprobs");
    cJSON *lpm = cJSON_AddArrayToObject(o, "logprobs_model");
    for (int k = 0; k < s->n_tokens; k++) {
        cJSON_AddItemToArray(ids, cJSON_CreateNumber(s->token_ids[k]));
        cJSON_AddItemToArray(lp, cJSON_CreateNumber(s->logprobs[k]));
        cJSON_AddItemToArray(lpm, cJSON_CreateNumber(s->logprobs_model[k]));
    }
    cJSON_AddStringToObject(o, "finish_reason", s->finish_reason == 0 ? "stop" : "length");
    return o;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* "-n G" is the documented spelling; the shared parser takes long flags only. */
static char **translate_short(int argc, char **argv) {
    char **out = cr_calloc((size_t)argc + 1, sizeof *out);
    for (int i = 0; i < argc; i++) out[i] = !strcmp(argv[i], "-n") ? "--n" : argv[i];
    return out;
}

int cmd_sample(int argc, char **argv) {
    static const char usage[] =
        "crucible sample --model DIR --prompts FILE.jsonl -n G [--temperature T --top-p P --top-k K "
        "--min-p M --max-new-tokens N --stop STR ... --seed S --device auto|cpu|cuda|cuda-fp32]";
    const char *model_dir = NULL, *prompts_path = NULL, *tok_path = NULL, *device = device_default();
    long G = 1, top_k = 0, max_new = 256, seed = 0, batch_prompts = 32, cache_tokens = 0;
    double temperature = 1.0, top_p = 1.0, min_p = 0.0;
    int ignore_eos = 0;
    CrStrList stops = {0};
    const ArgSpec specs[] = {
        {"model", ARG_STR, &model_dir, "model directory (config.json, model.safetensors, tokenizer.json)", 1},
        {"prompts", ARG_STR, &prompts_path, "JSONL: {\"prompt\": \"...\"} or {\"messages\": [...]} per line", 1},
        {"n", ARG_INT, &G, "samples per prompt (-n)", 0},
        {"temperature", ARG_FLOAT, &temperature, "sampling temperature (0 = greedy)", 0},
        {"top-p", ARG_FLOAT, &top_p, "nucleus mass (1 = off)", 0},
        {"top-k", ARG_INT, &top_k, "keep the k most probable tokens (0 = off)", 0},
        {"min-p", ARG_FLOAT, &min_p, "keep tokens with p >= min_p * max p (0 = off)", 0},
        {"max-new-tokens", ARG_INT, &max_new, "most tokens generated per sample", 0},
        {"stop", ARG_STR_LIST, &stops, "stop string (repeatable); cut from the text", 0},
        {"seed", ARG_INT, &seed, "RNG seed; sample g of prompt i uses stream (seed, i, g)", 0},
        {"ignore-eos", ARG_BOOL, &ignore_eos, "do not stop at the tokenizer's EOS", 0},
        {"tokenizer", ARG_STR, &tok_path, "tokenizer.json (default DIR/tokenizer.json)", 0},
        {"batch-prompts", ARG_INT, &batch_prompts, "prompts served together per engine call", 0},
        {"cache-tokens", ARG_INT, &cache_tokens, "latent cache size in tokens (0 = one batch, at most 2 GiB)", 0},
        {"device", ARG_STR, &device, DEVICE_FLAG_HELP, 0},
        {NULL, 0, NULL, NULL, 0},
    };
    CrError e;
    char **args = translate_short(argc, argv);
    int rc = cr_args_parse(usage, specs, argc, args, NULL, NULL, &e);
    /* args[] only holds pointers into argv (and a literal): strings stay valid */
    if (rc == CR_ARGS_HELP) {
        free(args);
        return 0;
    }
    if (rc) {
        fprintf(stderr, "crucible sample: %s\n", e.msg);
        free(args);
        return 2;
    }
    free(args);
    if (G < 1 || G > 1 << 16 || max_new < 1 || max_new > 1 << 24 || batch_prompts < 1 || top_k < 0 ||
        temperature < 0 || cache_tokens < 0) {
        fprintf(stderr, "crucible sample: need -n >= 1, --max-new-tokens >= 1, --batch-prompts >= 1, "
                        "--top-k >= 0, --temperature >= 0, --cache-tokens >= 0\n");
        return 2;
    }
    SamplerCfg scheck = {(float)temperature, (int)top_k, (float)top_p, (float)min_p};
    if (sampler_flags_check(&scheck, &e)) {
        fprintf(stderr, "crucible sample: %s\n", e.msg);
        return 2;
    }
    const struct Ops *ops = device_open(device, &e);
    if (ops && device_check_rollout(ops, &e)) ops = NULL;
    Model *m = ops ? model_load_ops(model_dir, ops, &e) : NULL;
    if (!m) {
        fprintf(stderr, "crucible sample: %s\n", e.msg);
        return 1;
    }
    char path[4096];
    if (!tok_path) {
        snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
        tok_path = path;
    }
    Tokenizer *tok = tokenizer_load(tok_path, &e);
    if (!tok) {
        fprintf(stderr, "crucible sample: %s\n", e.msg);
        model_free(m);
        return 1;
    }
    size_t len = 0;
    char *buf = jsonl_read(prompts_path, &len, &e);
    if (!buf) {
        fprintf(stderr, "crucible sample: %s\n", e.msg);
        tokenizer_free(tok);
        model_free(m);
        return 1;
    }
    /* encode every prompt first: input errors surface before any generation */
    int cap = 64, n = 0;
    int32_t **ids = cr_malloc(sizeof *ids * (size_t)cap);
    int *lens = cr_malloc(sizeof *lens * (size_t)cap);
    JsonlIter it;
    jsonl_iter_init(&it, buf, len, prompts_path);
    cJSON *obj = NULL;
    int r;
    rc = 0;
    long longest = 0;
    while ((r = jsonl_next(&it, &obj, &e)) == 1) {
        if (n == cap) {
            cap *= 2;
            ids = cr_realloc(ids, sizeof *ids * (size_t)cap);
            lens = cr_realloc(lens, sizeof *lens * (size_t)cap);
        }
        int er = encode_line(&it, obj, tok, &ids[n], &lens[n], &e);
        cJSON_Delete(obj);
        if (er) {
            r = -1;
            break;
        }
        if (lens[n] == 0) {
            cr_error_set(&e, "%s:%d: the prompt encodes to no tokens", prompts_path, it.line);
            free(ids[n]);
            r = -1;
            break;
        }
        if (lens[n] > longest) longest = lens[n];
        n++;
    }
    if (r < 0) {
        fprintf(stderr, "crucible sample: %s\n", e.msg);
        rc = 1;
    } else if (n == 0) {
        fprintf(stderr, "crucible sample: %s: no prompts\n", prompts_path);
        rc = 1;
    }
    RolloutEngine *eng = NULL;
    if (!rc) {
        long per = longest + max_new + 32;
        /* default: room for every sample of a batch, at most 2 GiB of latent cache */
        long row_bytes = (long)m->cfg.num_hidden_layers * (m->cfg.kv_lora_rank + m->cfg.qk_rope_head_dim) * 4;
        long mem_cap = (2L << 30) / row_bytes;
        long budget = per * (batch_prompts < n ? batch_prompts : n) * G;
        if (budget > mem_cap) budget = mem_cap;
        if (budget < per) budget = per;
        if (cache_tokens) budget = cache_tokens;
        eng = rollout_create(m, tok, budget, &e);
        if (!eng) {
            fprintf(stderr, "crucible sample: %s\n", e.msg);
            rc = 1;
        }
    }
    SampleParams sp = {0};
    sp.temperature = (float)temperature;
    sp.top_p = (float)top_p;
    sp.top_k = (int)top_k;
    sp.min_p = (float)min_p;
    sp.max_new_tokens = (int)max_new;
    sp.stop_strings = stops.items;
    sp.n_stop_strings = stops.n;
    sp.seed = (uint64_t)seed;
    sp.ignore_eos = ignore_eos;
    if (eng) rollout_set_progress(eng, stderr);
    double t0 = now_s();
    long gen = 0;
    Sample *out = rc ? NULL : cr_calloc((size_t)batch_prompts * G, sizeof *out);
    for (int p0 = 0; !rc && p0 < n; p0 += (int)batch_prompts) {
        int np = n - p0 < batch_prompts ? n - p0 : (int)batch_prompts;
        if (rollout_generate(eng, (const int32_t *const *)ids + p0, lens + p0, np, (int)G, &sp, p0, out, &e)) {
            fprintf(stderr, "crucible sample: %s: prompts %d..%d: %s\n", prompts_path, p0, p0 + np - 1, e.msg);
            rc = 1;
            break;
        }
        for (int p = 0; p < np; p++) {
            cJSON *line = cJSON_CreateObject();
            cJSON_AddNumberToObject(line, "prompt_index", p0 + p);
            cJSON *arr = cJSON_AddArrayToObject(line, "samples");
            for (int g = 0; g < G; g++) {
                cJSON_AddItemToArray(arr, sample_json(&out[(size_t)p * G + g]));
                gen += out[(size_t)p * G + g].n_tokens;
                sample_free(&out[(size_t)p * G + g]);
            }
            char *s = cJSON_PrintUnformatted(line);
            cJSON_Delete(line);
            if (!s || puts(s) == EOF) rc = 1;
            free(s);
        }
        if (fflush(stdout) != 0) {
            fprintf(stderr, "crucible sample: writing stdout failed\n");
            rc = 1;
        }
    }
    if (!rc) {
        double dt = now_s() - t0;
        RolloutStats st = rollout_stats(eng);
        fprintf(stderr, "sample: %d prompts x %ld samples, %ld tokens in %.2f s (%.1f tok/s); prefill %ld "
                        "tokens in %.2f s; %ld decode steps, up to %d samples per step\n",
                n, G, gen, dt, gen / (dt > 0 ? dt : 1), st.prefill_tokens, st.prefill_s, st.decode_steps,
                st.max_live);
    }
    free(out);
    for (int i = 0; i < n; i++) free(ids[i]);
    free(ids);
    free(lens);
    free(buf);
    rollout_free(eng);
    tokenizer_free(tok);
    model_free(m);
    return rc;
}
