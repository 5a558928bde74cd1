/* grpo/eval.c — see eval.h */
#include "grpo/eval.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/progress.h"
#include "data/chat.h"
#include "data/tasks.h"
#include "data/tokenizer.h"
#include "data/utf8.h"
#include "grpo/judge.h"
#include "grpo/task_prompt.h"
#include "model/device.h"
#include "model/model.h"
#include "model/ops.h"
#include "reward/passk.h"
#include "rollout/rollout.h"
#include "sandbox/sandbox.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void eval_config_default(EvalConfig *c) {
    memset(c, 0, sizeof *c);
    c->n = 1;
    c->max_new_tokens = 512;
    c->workers = 2;
    c->ks[0] = 1;
    c->n_ks = 1;
    c->temperature = 0.0;
    c->top_p = 1.0;
    c->time_limit = 10.0;
    c->prompt_format = "chat";
}

int eval_run(const EvalConfig *c, EvalResult *out, CrError *e) {
    memset(out, 0, sizeof *out);
    if (!c->model_dir || !c->tasks_path) return cr_error_set(e, "eval: --model and --tasks are required");
    if (c->n < 1 || c->max_new_tokens < 1 || c->workers < 1 || c->n_ks < 1) return cr_error_set(e, "eval: invalid -n / --max-new-tokens / workers");
    for (int i = 0; i < c->n_ks; i++)
        if (c->ks[i] < 1 || c->ks[i] > c->n)
            return cr_error_set(e, "eval: -k %d needs -n >= %d samples per task (got -n %ld)", c->ks[i], c->ks[i], c->n);
    PromptFormat pf;
    if (prompt_format_parse(c->prompt_format, &pf, e)) return -1;
    DeviceKind dev;
    if (device_parse(c->device, &dev, e)) return -1;
    /* the sandbox workers before the backend: device_ops may initialise CUDA, after
     * which spawning processes is unsafe */
    SandboxPool *pool = sandbox_pool_create((int)c->workers, e);
    if (!pool) return -1;
    const Ops *ops = device_ops_for_rollout(dev, c->ops, e);
    if (!ops) {
        sandbox_pool_free(pool);
        return -1;
    }
    fprintf(stderr, "eval: device %s\n", ops->name);
    int rc = -1;
    Task *tasks = NULL;
    int nt = 0, n_all = 0;
    Tokenizer *tok = NULL;
    Model *m = NULL;
    RolloutEngine *eng = NULL;
    FILE *so = NULL;
    char *tp = cr_path_join(c->model_dir, "tokenizer.json");
    if (c->limit < 0) { cr_error_set(e, "eval: --limit must be >= 0 (0 = all tasks; got %ld)", (long)c->limit); goto out; }
    if (tasks_load(c->tasks_path, &tasks, &n_all, e)) goto out;
    if (judge_check_tasks(tasks, n_all, c->tasks_path, c->time_limit, e)) { cr_error_prefix(e, "eval"); goto out; }
    nt = n_all;
    if (c->limit > 0 && c->limit < nt) nt = (int)c->limit;
    tok = tokenizer_load(tp, e);
    if (!tok) goto out;
    m = model_load_ops(c->model_dir, ops, e);
    if (!m) goto out;
    if (c->samples_out && !(so = fopen(c->samples_out, "w"))) { cr_error_set(e, "%s: cannot create", c->samples_out); goto out; }
    /* tasks in chunks so the cache stays bounded */
    int chunk = 16;
    long cache = (long)chunk * c->n * (c->max_new_tokens + 64) + (long)chunk * 2048 + 4096;
    eng = rollout_create(m, tok, cache, e);
    if (!eng) goto out;
    double sum[EVAL_MAX_K] = {0};
    Progress pr;
    progress_init(&pr);
    for (int t0 = 0; t0 < nt; t0 += chunk) {
        int cn = nt - t0 < chunk ? nt - t0 : chunk;
        TokenSeq *ps = cr_calloc((size_t)cn, sizeof(TokenSeq));
        const int32_t **pids = cr_malloc(sizeof(int32_t *) * (size_t)cn);
        int *plen = cr_malloc(sizeof(int) * (size_t)cn);
        int bad = 0;
        for (int i = 0; i < cn && !bad; i++) {
            if (task_prompt_encode(tok, &tasks[t0 + i], pf, &ps[i], e)) bad = 1;
            else { pids[i] = ps[i].ids; plen[i] = ps[i].n; }
            if (!bad && ps[i].n >= m->cfg.max_position_embeddings) {  /* named by task, not by chunk index */
                cr_error_set(e, "eval: %s: task %d (id \"%s\"): its prompt is %d tokens; the model's context is %d "
                                "positions (max_position_embeddings), leaving no room to generate",
                             c->tasks_path, t0 + i + 1, tasks[t0 + i].id ? tasks[t0 + i].id : "", ps[i].n,
                             m->cfg.max_position_embeddings);
                bad = 1;
            }
        }
        Sample *s = bad ? NULL : cr_calloc((size_t)cn * c->n, sizeof(Sample));
        SampleParams sp;
        memset(&sp, 0, sizeof sp);
        sp.temperature = (float)c->temperature;
        sp.top_p = (float)c->top_p;
        sp.max_new_tokens = (int)c->max_new_tokens;
        sp.seed = (uint64_t)c->seed;
        /* raw HumanEval-style continuations stop where the function body ends (chunks
         * whose tasks disagree, e.g. mixed files, are sampled without stop strings) */
        int n_stop = 0;
        const char *const *stops = cn > 0 ? task_prompt_stops(&tasks[t0], pf, &n_stop) : NULL;
        for (int i = 1; i < cn && stops; i++) {
            int k;
            if (task_prompt_stops(&tasks[t0 + i], pf, &k) != stops) stops = NULL;
        }
        sp.stop_strings = stops;
        sp.n_stop_strings = stops ? n_stop : 0;
        double ta = progress_now();
        if (!bad && rollout_generate(eng, pids, plen, cn, (int)c->n, &sp, t0, s, e)) bad = 1;
        out->gen_s += progress_now() - ta;
        JudgeItem *items = NULL;
        if (!bad) {
            items = cr_calloc((size_t)cn * c->n, sizeof(JudgeItem));
            for (long k = 0; k < (long)cn * c->n; k++) {
                items[k].task = &tasks[t0 + k / c->n];
                items[k].completion = s[k].text ? s[k].text : "";
            }
            SandboxLimits lim;
            sandbox_limits_default(&lim);
            lim.time_limit_s = c->time_limit;
            ta = progress_now();
            if (judge_batch(pool, items, cn * (int)c->n, &lim, e)) bad = 1;
            out->judge_s += progress_now() - ta;
        }
        for (int i = 0; !bad && i < cn; i++) {
            int cnt = 0;
            for (long k = 0; k < c->n; k++) {
                const SandboxResult *r = &items[(size_t)i * c->n + k].result;
                cnt += r->verdict == VERDICT_OK;
                if ((int)r->verdict >= 0 && r->verdict < 9) out->verdicts[r->verdict]++;
                if (so) {
                    cJSON *o = cJSON_CreateObject();
                    cJSON_AddStringToObject(o, "task_id", tasks[t0 + i].id ? tasks[t0 + i].id : "");
                    cJSON_AddNumberToObject(o, "sample", (double)k);
                    char *txt = utf8_sanitize(s[(size_t)i * c->n + k].text ? s[(size_t)i * c->n + k].text : "",
                                              s[(size_t)i * c->n + k].text_len, NULL);
                    cJSON_AddStringToObject(o, "completion", txt);
                    free(txt);
                    cJSON_AddStringToObject(o, "verdict", verdict_name(r->verdict));
                    char *line = cJSON_PrintUnformatted(o);
                    fprintf(so, "%s\n", line);
                    cJSON_free(line);
                    cJSON_Delete(o);
                }
            }
            for (int q = 0; q < c->n_ks; q++) sum[q] += pass_at_k((int)c->n, cnt, c->ks[q]);
            out->n_tasks++;
        }
        for (long k = 0; items && k < (long)cn * c->n; k++) sandbox_result_free(&items[k].result);
        free(items);
        for (long k = 0; s && k < (long)cn * c->n; k++) sample_free(&s[k]);
        free(s);
        for (int i = 0; i < cn; i++) token_seq_free(&ps[i]);
        free(ps);
        free(pids);
        free(plen);
        if (bad) goto out;
        progress_update(&pr, "eval %d/%d tasks  pass@%d %.3f", out->n_tasks, nt, c->ks[0], sum[0] / out->n_tasks);
    }
    progress_done(&pr);
    for (int q = 0; q < c->n_ks; q++) out->pass_at[q] = out->n_tasks ? sum[q] / out->n_tasks : NAN;
    rc = 0;
out:
    if (so) fclose(so);
    rollout_free(eng);
    model_free(m);
    tokenizer_free(tok);
    if (tasks) tasks_free(tasks, n_all);
    free(tp);
    sandbox_pool_free(pool);
    return rc;
}
