/* cli/cmd_eval.c — `crucible eval`: pass@k through the sandbox (grpo/eval.h).
 * Prints one JSON object on stdout: {"tasks": T, "n": N, "pass@1": x, ...,
 * "verdicts": {"OK": ..}}; progress on stderr. */
#include "cli/command.h"
#include "core/args.h"
#include "model/device.h"
#include "grpo/eval.h"
#include "sandbox/sandbox.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char cmd_eval_summary[] = "pass@k of a model on a task set (HumanEval, MBPP, ours) through the sandbox";

int cmd_eval(int argc, char **argv) {
    EvalConfig c;
    eval_config_default(&c);
    c.device = device_default();
    const char *ks = "1";
    ArgSpec specs[] = {
        {"model", ARG_STR, &c.model_dir, "model directory (with tokenizer.json)", 1},
        {"tasks", ARG_STR, &c.tasks_path, "tasks JSONL(.gz)", 1},
        {"n", ARG_INT, &c.n, "samples per task (1)", 0},
        {"k", ARG_STR, &ks, "comma list of k for pass@k (1)", 0},
        {"temperature", ARG_FLOAT, &c.temperature, "sampling temperature; 0 = greedy (0)", 0},
        {"top-p", ARG_FLOAT, &c.top_p, "nucleus sampling (1.0)", 0},
        {"max-new-tokens", ARG_INT, &c.max_new_tokens, "completion length cap (512)", 0},
        {"prompt-format", ARG_STR, &c.prompt_format, "chat | raw (chat)", 0},
        {"workers", ARG_INT, &c.workers, "sandbox workers (2)", 0},
        {"time-limit", ARG_FLOAT, &c.time_limit, "CPU seconds per test run (10)", 0},
        {"limit", ARG_INT, &c.limit, "only the first N tasks (0 = all)", 0},
        {"seed", ARG_INT, &c.seed, "sampling seed (0)", 0},
        {"samples-out", ARG_STR, &c.samples_out, "write every completion and verdict as JSONL here", 0},
        {"device", ARG_STR, &c.device, DEVICE_FLAG_HELP, 0},
        {NULL, 0, NULL, NULL, 0}};
    CrError e;
    int rc = cr_args_parse("crucible eval --model DIR --tasks FILE -n N -k 1,10", specs, argc, argv, NULL, NULL, &e);
    if (rc == CR_ARGS_HELP) return 0;
    if (rc) { fprintf(stderr, "crucible eval: %s\n", e.msg); return 2; }
    c.n_ks = 0;
    for (const char *p = ks; *p;) {
        char *end;
        long k = strtol(p, &end, 10);
        if (end == p || k < 1 || k > 1000000) { fprintf(stderr, "crucible eval: -k: bad list '%s'\n", ks); return 2; }
        int dup = 0;
        for (int i = 0; i < c.n_ks; i++) dup |= c.ks[i] == (int)k;
        if (!dup && c.n_ks == EVAL_MAX_K) {
            fprintf(stderr, "crucible eval: -k: at most %d distinct values (got '%s')\n", EVAL_MAX_K, ks);
            return 2;
        }
        if (!dup) c.ks[c.n_ks++] = (int)k;   /* a repeated k would repeat its JSON key */
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',') { fprintf(stderr, "crucible eval: -k: bad list '%s'\n", ks); return 2; }
    }
    EvalResult r;
    if (eval_run(&c, &r, &e)) { fprintf(stderr, "crucible eval: %s\n", e.msg); return 1; }
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "tasks", r.n_tasks);
    cJSON_AddNumberToObject(o, "n", (double)c.n);
    for (int i = 0; i < c.n_ks; i++) {
        char nm[32];
        snprintf(nm, sizeof nm, "pass@%d", c.ks[i]);
        cJSON_AddNumberToObject(o, nm, r.pass_at[i]);
    }
    cJSON *v = cJSON_AddObjectToObject(o, "verdicts");
    for (int i = 0; i < 9; i++)
        if (r.verdicts[i]) cJSON_AddNumberToObject(v, verdict_name((Verdict)i), (double)r.verdicts[i]);
    cJSON_AddNumberToObject(o, "generate_s", r.gen_s);
    cJSON_AddNumberToObject(o, "sandbox_s", r.judge_s);
    char *s = cJSON_PrintUnformatted(o);
    printf("%s\n", s);
    cJSON_free(s);
    cJSON_Delete(o);
    return 0;
}
