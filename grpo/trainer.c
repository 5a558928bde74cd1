/* grpo/trainer.c — see trainer.h */
#include "grpo/trainer.h"
#include "core/alloc.h"
#include "core/file.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/chat.h"
#include "data/provenance.h"
#include "data/run_log.h"
#include "data/tasks.h"
#include "data/tokenizer.h"
#include "grpo/advantage.h"
#include "grpo/judge.h"
#include "grpo/loss.h"
#include "grpo/micro_batch.h"
#include "grpo/step.h"
#include "grpo/task_prompt.h"
#include "model/adamw.h"
#include "model/checkpoint.h"
#include "model/device.h"
#include "model/model.h"
#include "model/ops.h"
#include "model/schedule.h"
#include "reward/combine.h"
#include "reward/reward_model.h"
#include "rollout/rollout.h"
#include "rollout/sampler.h"
#include "sandbox/sandbox.h"
#include "sft/train_checkpoint.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void grpo_config_default(GrpoConfig *c) {
    memset(c, 0, sizeof *c);
    c->steps = 20;
    c->group = 8;
    c->prompts_per_step = 8;
    c->mu = 1;
    c->lr = 1e-6;
    c->beta = 0.04;
    c->eps_low = 0.2;
    c->eps_high = 0.2;
    c->weight_decay = 0.0;
    c->max_grad_norm = 1.0;
    c->beta1 = 0.9;
    c->beta2 = 0.99;
    c->warmup = 0;
    c->min_lr_ratio = 1.0;
    c->loss_type = "grpo";
    c->scale_rewards = "group";
    c->reward_combine = "sum";
    c->reward = "tests";
    c->prompt_format = "chat";
    c->max_new_tokens = 256;
    c->sandbox_workers = 2;
    c->temperature = 1.0;
    c->top_p = 1.0;
    c->time_limit = 10.0;
    c->batch_tokens = 8192;
}

/* One sampled group. */
typedef struct {
    int task;
    TokenSeq prompt;
    Sample *s;          /* [G] */
    JudgeItem *j;       /* [G] */
    float *rewards;     /* [G * K] */
    float *combined;    /* [G] */
    int kept;
} Group;

static void group_free(Group *g, int G) {
    token_seq_free(&g->prompt);
    for (int i = 0; i < G && g->s; i++) sample_free(&g->s[i]);
    for (int i = 0; i < G && g->j; i++) sandbox_result_free(&g->j[i].result);
    free(g->s);
    free(g->j);
    free(g->rewards);
    free(g->combined);
    memset(g, 0, sizeof *g);
}

static void task_order(int *order, int n, long seed, long epoch) {
    CrRng r;
    cr_rng_init(&r, (uint64_t)seed, 0x4752504fULL, (uint64_t)epoch);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(cr_rng_u64(&r) % (uint64_t)(i + 1));
        int t = order[i]; order[i] = order[j]; order[j] = t;
    }
}

typedef struct {
    long step, epoch, cursor;
} GrpoState;

static char *state_json(const GrpoState *s, long seed) {
    char buf[256];
    snprintf(buf, sizeof buf, "{\"trainer\":\"grpo\",\"step\":%ld,\"epoch\":%ld,\"cursor\":%ld,\"seed\":%ld}", s->step,
             s->epoch, s->cursor, seed);
    return cr_strdup(buf);
}

static int state_parse(const char *js, GrpoState *s, long seed, CrError *e) {
    const char *const k[3] = {"step", "epoch", "cursor"};
    long *const d[3] = {&s->step, &s->epoch, &s->cursor};
    return train_state_read(js, "grpo", k, d, 3, seed, e);
}

/* With --ref-reset-every K the reference is the policy after the last reset step
 * R = floor(step / K) * K. A checkpoint at `step` needs it saved when 0 < R < step (at
 * R == step the loop resets it again before training). */
static long ref_reset_step(long step, long every) {
    return every > 0 ? step / every * every : 0;
}

static char *ref_dir(const char *out_dir, long step) {
    char *base = cr_path_join(out_dir, "reference");
    char name[32];
    snprintf(name, sizeof name, "step-%06ld", step);
    char *d = cr_path_join(base, name);
    free(base);
    return d;
}

/* Save the reset reference (once) so that a run resumed from a checkpoint at `step`
 * continues with the same reference as the uninterrupted run. */
static int ref_save_if_needed(const Model *ref, const GrpoConfig *c, long step, CrError *e) {
    long R = ref_reset_step(step, c->ref_reset_every);
    if (!ref || R <= 0 || R == step) return 0;
    char *d = ref_dir(c->out_dir, R);
    char *done = cr_path_join(d, "DONE");
    int rc = cr_file_exists(done) ? 0 : checkpoint_save(d, ref, NULL, NULL, e);
    free(done);
    free(d);
    return rc;
}

/* --keep-last: the saved references older than the one the oldest kept checkpoint resumes
 * with are no longer needed (a failure is a warning, as for the checkpoints). */
static void ref_prune(const GrpoConfig *c, long oldest_kept) {
    long R = ref_reset_step(oldest_kept, c->ref_reset_every);
    if (R <= 0) return;
    char *base = cr_path_join(c->out_dir, "reference");
    CrError pe;
    if (checkpoint_remove_before(base, R, &pe) < 0)
        fprintf(stderr, "grpo: warning: --keep-last %ld: %s\n", c->keep_last, pe.msg);
    free(base);
}

/* Compact per-test summary for the store. */
static char *tests_json(const SandboxResult *r) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < r->n_tests; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "verdict", verdict_name(r->tests[i].verdict));
        cJSON_AddNumberToObject(o, "exit_code", r->tests[i].exit_code);
        cJSON_AddNumberToObject(o, "signal", r->tests[i].signal);
        cJSON_AddNumberToObject(o, "time_ms", (double)r->tests[i].time_ms);
        cJSON_AddNumberToObject(o, "memory_kb", (double)r->tests[i].memory_kb);
        if (r->tests[i].blocked_syscall) cJSON_AddStringToObject(o, "blocked_syscall", r->tests[i].blocked_syscall);
        cJSON_AddItemToArray(a, o);
    }
    char *s = cJSON_PrintUnformatted(a);
    cJSON_Delete(a);
    char *r2 = cr_strdup(s ? s : "[]");
    cJSON_free(s);
    return r2;
}

int grpo_train(const GrpoConfig *c, CrError *e) {
    if (!c->model_dir || !c->tasks_path || !c->out_dir) return cr_error_set(e, "grpo: --model, --tasks and --out are required");
    /* each setting on its own, so the message names the flag */
    if (c->steps <= 0) return cr_error_set(e, "grpo: --steps must be >= 1 (got %ld)", (long)c->steps);
    if (c->keep_last < 0 || c->keep_last > 1000000)
        return cr_error_set(e, "grpo: --keep-last must be >= 0 (0 keeps every checkpoint; got %ld)", c->keep_last);
    if (c->group < 2)
        return cr_error_set(e, "grpo: --group must be >= 2 (got %ld): an advantage is a reward relative to the other "
                               "completions of its prompt, so one completion alone never learns", (long)c->group);
    if (c->prompts_per_step < 1) return cr_error_set(e, "grpo: --prompts-per-step must be >= 1 (got %ld)", (long)c->prompts_per_step);
    if (c->mu < 1) return cr_error_set(e, "grpo: --mu must be >= 1 (got %ld)", (long)c->mu);
    if (!(c->lr > 0)) return cr_error_set(e, "grpo: --lr must be > 0 (got %g)", c->lr);
    if (!(c->beta >= 0)) return cr_error_set(e, "grpo: --beta must be >= 0 (got %g)", c->beta);
    if (!(c->eps_low >= 0) || !(c->eps_high >= 0))
        return cr_error_set(e, "grpo: --eps-low and --eps-high must be >= 0 (got %g, %g)", c->eps_low, c->eps_high);
    if (c->max_new_tokens < 1) return cr_error_set(e, "grpo: --max-new-tokens must be >= 1 (got %ld)", (long)c->max_new_tokens);
    if (c->sandbox_workers < 1) return cr_error_set(e, "grpo: --sandbox-workers must be >= 1 (got %ld)", (long)c->sandbox_workers);
    if (c->batch_tokens < 2) return cr_error_set(e, "grpo: --batch-tokens must be >= 2 (got %ld)", (long)c->batch_tokens);
    if (c->overlong_buffer < 0 || c->overlong_buffer > c->max_new_tokens)
        return cr_error_set(e, "grpo: --overlong-buffer must be in [0, --max-new-tokens] (got %ld)", (long)c->overlong_buffer);
    if (!(c->min_lr_ratio >= 0 && c->min_lr_ratio <= 1))
        return cr_error_set(e, "grpo: --min-lr-ratio must be in [0, 1] (got %g)", c->min_lr_ratio);
    SamplerCfg scheck = {(float)c->temperature, 0, (float)c->top_p, 0.0f};
    if (sampler_flags_check(&scheck, e)) return cr_error_prefix(e, "grpo"), -1;
    AdamWConfig acfg = {(float)c->lr, (float)c->beta1, (float)c->beta2, 1e-8f, (float)c->weight_decay};
    if (adamw_check_config(acfg, e)) return cr_error_prefix(e, "grpo: --lr, --beta1, --beta2, --weight-decay");
    GrpoLossConfig lcfg = grpo_loss_config_default();
    if (grpo_loss_type_parse(c->loss_type, &lcfg.type, e)) return -1;
    lcfg.eps_low = c->eps_low;
    lcfg.eps_high = c->eps_high;
    lcfg.beta = c->beta;
    lcfg.dual_clip = c->dual_clip;
    GrpoScale scale;
    if (grpo_scale_parse(c->scale_rewards, &scale, e)) return -1;
    GrpoCombine combine;
    if (grpo_combine_parse(c->reward_combine, &combine, e)) return -1;
    PromptFormat pf;
    if (prompt_format_parse(c->prompt_format, &pf, e)) return -1;
    RewardSpec spec;
    if (reward_spec_parse(c->reward, c->reward_weights, &spec, e)) return -1;
    RewardConfig rcfg = reward_config_default();
    rcfg.overlong_max = c->max_new_tokens;
    rcfg.overlong_cache = c->overlong_buffer;
    if (c->verdict_values && verdict_reward_set_values(&rcfg.verdict, c->verdict_values, e)) return -1;
    int has_overlong = 0, has_rm = 0;
    for (int k = 0; k < spec.n; k++) {
        has_overlong |= spec.kind[k] == REWARD_OVERLONG;
        has_rm |= spec.kind[k] == REWARD_RM;
    }
    if (c->overlong_buffer > 0 && !has_overlong && spec.n < REWARD_KIND_COUNT) {
        spec.kind[spec.n] = REWARD_OVERLONG;   /* DAPO overlong shaping, weight 1 */
        spec.weight[spec.n] = 1.0f;
        spec.n++;
    }
    if (has_rm && !c->rm_dir) return cr_error_set(e, "grpo: --reward rm needs --rm RM_DIR (a reward model from crucible rm train)");
    const int K = spec.n, G = (int)c->group, B = (int)c->prompts_per_step;

    DeviceKind dev;
    if (device_parse(c->device, &dev, e)) return -1;
    /* The sandbox workers first: before any large allocation or accelerator context.
     * Spawning (fork/exec) a process after CUDA is initialised is unsafe (the child
     * inherits a driver state it cannot use, and a fork copies pinned mappings), so
     * device_ops, which may initialise CUDA, comes only after the pool exists. */
    SandboxPool *pool = sandbox_pool_create((int)c->sandbox_workers, e);
    if (!pool) return -1;
    const Ops *ops = device_ops_for_rollout(dev, c->ops, e);
    if (!ops) {
        sandbox_pool_free(pool);
        return -1;
    }
    fprintf(stderr, "grpo: device %s\n", ops->name);
    int rc = -1;
    Task *tasks = NULL;
    int n_tasks = 0;
    Tokenizer *tok = NULL;
    Model *m = NULL, *ref = NULL;
    RewardModel *rm = NULL;
    Tokenizer *rm_tok = NULL;
    AdamW opt = {0};
    RolloutEngine *eng = NULL;
    RunLog *log = NULL;
    int *order = NULL;
    char *resume_from = NULL, *state_js = NULL, *tok_path = NULL;
    GrpoState st = {0, 0, 0};
    Group *groups = NULL;
    int n_groups = 0;
    int out_lock = -1;

    if ((out_lock = train_out_claim("grpo", c->out_dir, c->resume, e)) < 0) goto out;
    if (tasks_load(c->tasks_path, &tasks, &n_tasks, e)) goto out;
    if (judge_check_tasks(tasks, n_tasks, c->tasks_path, c->time_limit, e)) { cr_error_prefix(e, "grpo"); goto out; }
    if (c->resume) {
        CrError e2;
        resume_from = checkpoint_latest(c->out_dir, &e2);
    }
    if (resume_from && provenance_check_resume(c->out_dir, "tasks", c->tasks_path, "--tasks", e)) {
        cr_error_prefix(e, "grpo");
        goto out;
    }
    tok_path = cr_path_join(resume_from ? resume_from : c->model_dir, "tokenizer.json");
    tok = tokenizer_load(tok_path, e);
    if (!tok) { cr_error_prefix(e, "grpo: the model directory needs a tokenizer.json"); goto out; }
    if (resume_from) {
        m = checkpoint_load_ops(resume_from, ops, &opt, &state_js, e);
        if (!m) goto out;
        opt.cfg = acfg;
        if (!state_js) { cr_error_set(e, "%s: no state.json", resume_from); goto out; }
        if (state_parse(state_js, &st, c->seed, e)) goto out;
        if (st.cursor < 0 || st.cursor >= n_tasks || st.epoch < 0 || st.step < 0) {
            cr_error_set(e, "%s: state.json (step %ld, task cursor %ld) does not fit %s (%d tasks): resume with the same --tasks",
                         resume_from, st.step, st.cursor, c->tasks_path, n_tasks);
            goto out;
        }
        fprintf(stderr, "grpo: resuming from %s (step %ld)\n", resume_from, st.step);
    } else {
        m = model_load_ops(c->model_dir, ops, e);
        if (!m || adamw_init(&opt, m, acfg, e)) goto out;
    }
    if (c->beta > 0) {
        /* frozen reference: the initial policy or, with --ref-reset-every, the policy at
         * the last reset (saved next to the checkpoints: ref_save_if_needed) */
        long R = resume_from ? ref_reset_step(st.step, c->ref_reset_every) : 0;
        if (R > 0 && R != st.step) {
            char *d = ref_dir(c->out_dir, R);
            ref = checkpoint_load_ops(d, ops, NULL, NULL, e);
            if (!ref) cr_error_prefix(e, "grpo: resuming at step %ld needs the reference reset at step %ld", st.step, R);
            free(d);
        } else {
            ref = model_load_ops(c->model_dir, ops, e);
        }
        if (!ref) goto out;
    }
    if (has_rm) {
        if (!(rm = reward_model_load_ops(c->rm_dir, ops, e))) goto out;
        /* the reward model reads text with its own tokenizer (crucible rm train copies it) */
        char *rp = cr_path_join(c->rm_dir, "tokenizer.json");
        if (cr_file_exists(rp) && !(rm_tok = tokenizer_load(rp, e))) { free(rp); goto out; }
        free(rp);
    }
    long cache = c->cache_tokens > 0 ? c->cache_tokens
                                     : (long)B * G * (c->max_new_tokens + 64) + (long)B * 1024 + 4096;
    eng = rollout_create(m, tok, cache, e);
    if (!eng) goto out;
    order = cr_malloc(sizeof(int) * (size_t)n_tasks);
    /* through cJSON: paths may hold quotes or backslashes */
    cJSON *pj = cJSON_CreateObject();
    cJSON_AddStringToObject(pj, "model", c->model_dir);
    cJSON_AddStringToObject(pj, "tasks", c->tasks_path);
    cJSON_AddNumberToObject(pj, "n_tasks", n_tasks);
    char *prov = cJSON_PrintUnformatted(pj);
    cJSON_Delete(pj);
    if (!prov) { cr_error_set(e, "grpo: out of memory"); goto out; }
    log = run_log_open(c->out_dir, "grpo", c->config_json ? c->config_json : "{}", prov, resume_from ? st.step : -1, e);
    cJSON_free(prov);
    if (!log) goto out;
    if (!resume_from && (runstore_add_source(log->rs, log->run_id, "model", c->model_dir, NULL, NULL, e) ||
                         provenance_record_file(log->rs, log->run_id, "tasks", c->tasks_path, e)))
        goto out;

    Progress pr;
    progress_init(&pr);
    long steps_done = 0, skipped_prompts = 0;
    long cur_epoch = -1;
    groups = cr_calloc((size_t)B * 4 + 4, sizeof *groups);
    while (st.step < c->steps) {
        double t_step = progress_now();
        if (c->ref_reset_every > 0 && ref && st.step > 0 && st.step % c->ref_reset_every == 0)
            ops->copy(ref->params, m->params, sizeof(float) * m->n_params);
        /* ---- 1. sample and judge groups (dynamic sampling draws more) ---------- */
        n_groups = 0;
        int kept = 0, rounds = c->dynamic_sampling ? 4 : 1;
        double gen_s = 0, judge_s = 0;
        long gen_tokens = 0;
        for (int round = 0; round < rounds && kept < B; round++) {
            int need = B - kept;
            int first = n_groups;
            for (int i = 0; i < need; i++) {
                if (cur_epoch != st.epoch) { task_order(order, n_tasks, c->seed, st.epoch); cur_epoch = st.epoch; }
                Group *g = &groups[n_groups++];
                memset(g, 0, sizeof *g);
                g->task = order[st.cursor];
                if (++st.cursor >= n_tasks) { st.cursor = 0; st.epoch++; }
                if (task_prompt_encode(tok, &tasks[g->task], pf, &g->prompt, e)) {
                    cr_error_prefix(e, "%s: task %s", c->tasks_path, tasks[g->task].id ? tasks[g->task].id : "?");
                    goto out;
                }
                /* A prompt that leaves no room for a completion is skipped (said once per
                 * task), not fatal: one long task must not stop a run. */
                if (g->prompt.n >= m->cfg.max_position_embeddings - 1) {
                    if (st.epoch == 0)
                        fprintf(stderr, "grpo: skipping task %s: its prompt has %d tokens, the model's context is %d\n",
                                tasks[g->task].id ? tasks[g->task].id : "?", g->prompt.n, m->cfg.max_position_embeddings);
                    token_seq_free(&g->prompt);
                    n_groups--;
                    i--;
                    if (++skipped_prompts > (long)n_tasks) {  /* consecutive: none fits */
                        cr_error_set(e, "%s: no task's prompt fits the model's context of %d tokens", c->tasks_path,
                                     m->cfg.max_position_embeddings);
                        goto out;
                    }
                    continue;
                }
                skipped_prompts = 0;
            }
            const int32_t **pids = cr_malloc(sizeof(int32_t *) * (size_t)need);
            int *plen = cr_malloc(sizeof(int) * (size_t)need);
            for (int i = 0; i < need; i++) { pids[i] = groups[first + i].prompt.ids; plen[i] = groups[first + i].prompt.n; }
            Sample *samples = cr_calloc((size_t)need * G, sizeof(Sample));
            SampleParams sp;
            memset(&sp, 0, sizeof sp);
            sp.temperature = (float)c->temperature;
            sp.top_p = (float)c->top_p;
            sp.max_new_tokens = (int)c->max_new_tokens;
            sp.seed = (uint64_t)c->seed * 1000003ULL + (uint64_t)st.step * 16 + (uint64_t)round;
            int n_stop = 0;   /* raw HumanEval-style continuations: see task_prompt_stops */
            const char *const *stops = task_prompt_stops(&tasks[groups[first].task], pf, &n_stop);
            for (int i = 1; i < need && stops; i++) {
                int k;
                if (task_prompt_stops(&tasks[groups[first + i].task], pf, &k) != stops) stops = NULL;
            }
            sp.stop_strings = stops;
            sp.n_stop_strings = stops ? n_stop : 0;
            double t0 = progress_now();
            int r = rollout_generate(eng, pids, plen, need, G, &sp, (long)first, samples, e);
            gen_s += progress_now() - t0;
            free(pids);
            free(plen);
            if (r) { free(samples); goto out; }
            JudgeItem *items = cr_calloc((size_t)need * G, sizeof(JudgeItem));
            for (int i = 0; i < need; i++) {
                Group *g = &groups[first + i];
                g->s = cr_malloc(sizeof(Sample) * (size_t)G);
                memcpy(g->s, samples + (size_t)i * G, sizeof(Sample) * (size_t)G);
                for (int k = 0; k < G; k++) {
                    items[(size_t)i * G + k].task = &tasks[g->task];
                    items[(size_t)i * G + k].completion = g->s[k].text ? g->s[k].text : "";
                    gen_tokens += g->s[k].n_tokens;
                }
            }
            free(samples);
            SandboxLimits lim;
            sandbox_limits_default(&lim);
            lim.time_limit_s = c->time_limit;
            t0 = progress_now();
            int jr = judge_batch(pool, items, need * G, &lim, e);
            judge_s += progress_now() - t0;
            for (int i = 0; i < need; i++) {
                Group *g = &groups[first + i];
                g->j = cr_malloc(sizeof(JudgeItem) * (size_t)G);
                memcpy(g->j, items + (size_t)i * G, sizeof(JudgeItem) * (size_t)G);
            }
            free(items);
            if (jr) goto out;
            /* rewards */
            for (int i = 0; i < need; i++) {
                Group *g = &groups[first + i];
                g->rewards = cr_malloc(sizeof(float) * (size_t)G * K);
                g->combined = cr_malloc(sizeof(float) * (size_t)G);
                double *rm_scores = NULL;
                if (rm) {
                    rm_scores = cr_malloc(sizeof(double) * (size_t)G);
                    const char **comps = cr_malloc(sizeof(char *) * (size_t)G);
                    for (int k = 0; k < G; k++) comps[k] = g->s[k].text ? g->s[k].text : "";
                    int rr = reward_model_score(rm, rm_tok ? rm_tok : tok, tasks[g->task].prompt, comps, G, rm_scores, e);
                    free(comps);
                    if (rr) { free(rm_scores); goto out; }
                }
                for (int k = 0; k < G; k++) {
                    const SandboxResult *res = &g->j[k].result;
                    RewardInput in = {(int)res->verdict, res->passed, res->total, g->s[k].text ? g->s[k].text : "",
                                      tasks[g->task].language, rm_scores ? rm_scores[k] : NAN, g->s[k].n_tokens};
                    if (reward_compute(&spec, &rcfg, &in, g->rewards + (size_t)k * K, e)) { free(rm_scores); goto out; }
                }
                free(rm_scores);
                float adv_tmp[1024];
                float *advp = G <= 1024 ? adv_tmp : cr_malloc(sizeof(float) * (size_t)G);
                int ar = grpo_advantages(g->rewards, 1, G, K, spec.weight, scale == GRPO_SCALE_BATCH ? GRPO_SCALE_GROUP : scale,
                                         GRPO_COMBINE_SUM, advp, g->combined, e);
                if (advp != adv_tmp) free(advp);
                if (ar) goto out;
                unsigned char zero = 0;
                grpo_zero_variance_groups(g->combined, 1, G, &zero);
                g->kept = !(c->dynamic_sampling && zero);
                kept += g->kept;
            }
        }
        /* ---- 2. advantages over the kept groups ------------------------------- */
        int nk = 0;
        for (int i = 0; i < n_groups; i++) nk += groups[i].kept;
        float *rew = cr_malloc(sizeof(float) * (size_t)(nk ? nk : 1) * G * K);
        float *adv = cr_calloc((size_t)(nk ? nk : 1) * G, sizeof(float));
        float *comb = cr_malloc(sizeof(float) * (size_t)(nk ? nk : 1) * G);
        for (int i = 0, q = 0; i < n_groups; i++)
            if (groups[i].kept) memcpy(rew + (size_t)q++ * G * K, groups[i].rewards, sizeof(float) * (size_t)G * K);
        if (nk > 0 && grpo_advantages(rew, nk, G, K, spec.weight, scale, combine, adv, comb, e)) {
            free(rew); free(adv); free(comb);
            goto out;
        }
        /* ---- 3. training sequences and micro-batches -------------------------- */
        GrpoSeq *ts = cr_calloc((size_t)(nk ? nk : 1) * G, sizeof(GrpoSeq));
        int nts = 0;
        long masked_trunc = 0;
        for (int i = 0, q = 0; i < n_groups; i++) {
            if (!groups[i].kept) continue;
            for (int k = 0; k < G; k++) {
                const Sample *s = &groups[i].s[k];
                GrpoSeq *t = &ts[nts++];
                t->prompt = groups[i].prompt.ids;
                t->P = groups[i].prompt.n;
                t->comp = s->token_ids;
                t->L = s->n_tokens;
                t->adv = adv[(size_t)q * G + k];
                t->masked = c->overlong_mask && s->finish_reason == 1;
                masked_trunc += t->masked;
            }
            q++;
        }
        free(rew);
        GrpoMicro *mb = NULL;
        int n_mb = grpo_build_micros(ts, nts, c->batch_tokens, &mb);
        free(ts);
        GrpoNorm norm = grpo_micro_norm(mb, n_mb, c->max_new_tokens);
        /* ---- 4. old / reference log-probs, then mu optimizer steps ------------- */
        double lr = lr_schedule(st.step, (long)(c->warmup < 1 ? c->warmup * c->steps : c->warmup), c->steps, c->lr,
                                c->min_lr_ratio);
        double t_train = progress_now();
        GrpoStepResult sr;
        int train_ok = grpo_step(m, ref, &opt, mb, n_mb, &norm, &lcfg, c->mu, (float)lr, (float)c->max_grad_norm,
                                 &sr, e) == 0;
        GrpoLossStats lst = sr.stats;
        double loss_sum = sr.loss, aux_sum = sr.aux;
        float gnorm = sr.grad_norm;
        grpo_micro_free(mb, n_mb);
        if (!train_ok) { free(adv); free(comb); goto out; }
        double train_s = progress_now() - t_train;
        st.step++;
        steps_done++;
        /* ---- 5. metrics and the store ------------------------------------------ */
        long n_all = (long)n_groups * G, n_pass = 0, len_sum = 0, len_max = 0, trunc = 0;
        long vcount[VERDICT_COUNT] = {0};
        double rsum = 0, rsq = 0, rk_sum[REWARD_KIND_COUNT] = {0}, rk_sq[REWARD_KIND_COUNT] = {0}, ent_sum = 0;
        long rk_n[REWARD_KIND_COUNT] = {0};
        long ent_n = 0, rn = 0, zero_groups = 0;
        for (int i = 0; i < n_groups; i++) {
            unsigned char z = 0;
            grpo_zero_variance_groups(groups[i].combined, 1, G, &z);
            zero_groups += z;
            for (int k = 0; k < G; k++) {
                const SandboxResult *res = &groups[i].j[k].result;
                const Sample *s = &groups[i].s[k];
                n_pass += res->verdict == VERDICT_OK;
                if ((int)res->verdict >= 0 && res->verdict < VERDICT_COUNT) vcount[res->verdict]++;
                len_sum += s->n_tokens;
                if (s->n_tokens > len_max) len_max = s->n_tokens;
                trunc += s->finish_reason == 1;
                for (int t = 0; t < s->n_tokens; t++) { ent_sum -= s->logprobs_model[t]; ent_n++; }
                float cr = groups[i].combined[k];
                if (isfinite(cr)) { rsum += cr; rsq += (double)cr * cr; rn++; }
                for (int q = 0; q < K; q++) {
                    float v = groups[i].rewards[(size_t)k * K + q];
                    if (isfinite(v)) { rk_sum[q] += v; rk_sq[q] += (double)v * v; rk_n[q]++; }
                }
            }
        }
        double rmean = rn ? rsum / rn : NAN, rstd = rn > 1 ? sqrt(fmax(0, (rsq - rn * rmean * rmean) / (rn - 1))) : 0;
        double step_s = progress_now() - t_step;
        if (run_log_step_begin(log, st.step, e)) { free(adv); free(comb); goto out; }
        struct { const char *name; double v; } mets[] = {
            {"reward_mean", rmean}, {"reward_std", rstd}, {"pass_rate", (double)n_pass / n_all},
            {"zero_std_frac", (double)zero_groups / n_groups}, {"groups_kept", nk},
            {"completion_len_mean", (double)len_sum / n_all}, {"completion_len_max", (double)len_max},
            {"truncated_frac", (double)trunc / n_all}, {"overlong_masked", (double)masked_trunc},
            {"kl_mean", lst.tokens > 0 && ref ? lst.kl_sum / lst.tokens : NAN},
            {"clip_frac", lst.tokens > 0 ? (lst.clip_low + lst.clip_high) / lst.tokens : NAN},
            {"clip_low_frac", lst.tokens > 0 ? lst.clip_low / lst.tokens : NAN},
            {"clip_high_frac", lst.tokens > 0 ? lst.clip_high / lst.tokens : NAN},
            {"ratio_mean", lst.tokens > 0 ? lst.ratio_sum / lst.tokens : NAN},
            {"entropy_est", ent_n ? ent_sum / ent_n : NAN}, {"loss", loss_sum}, {"aux_loss", aux_sum},
            {"grad_norm", gnorm}, {"lr", lr}, {"gen_tokens_per_s", gen_s > 0 ? gen_tokens / gen_s : NAN},
            {"gen_s", gen_s}, {"sandbox_s", judge_s}, {"train_s", train_s}, {"step_s", step_s}};
        for (size_t q = 0; q < sizeof mets / sizeof mets[0]; q++)
            if (run_log_metric(log, mets[q].name, mets[q].v, e)) { free(adv); free(comb); goto out; }
        for (int q = 0; q < K; q++) {   /* per reward function, over its scorable values */
            char nm[64];
            double mq = rk_n[q] ? rk_sum[q] / rk_n[q] : NAN;
            double sq = rk_n[q] > 1 ? sqrt(fmax(0, (rk_sq[q] - rk_n[q] * mq * mq) / (rk_n[q] - 1))) : NAN;
            snprintf(nm, sizeof nm, "reward_%s_mean", reward_kind_name(spec.kind[q]));
            if (run_log_metric(log, nm, mq, e)) { free(adv); free(comb); goto out; }
            snprintf(nm, sizeof nm, "reward_%s_std", reward_kind_name(spec.kind[q]));
            if (run_log_metric(log, nm, sq, e)) { free(adv); free(comb); goto out; }
        }
        for (int v = 0; v < VERDICT_COUNT; v++) {
            char nm[64];
            snprintf(nm, sizeof nm, "verdict_%s", verdict_name((Verdict)v));
            if (run_log_metric(log, nm, (double)vcount[v], e)) { free(adv); free(comb); goto out; }
        }
        for (int i = 0, q = 0; i < n_groups; i++) {
            Group *g = &groups[i];
            const Task *t = &tasks[g->task];
            int64_t pid = runstore_add_prompt(log->rs, t->id ? t->id : "?", t->prompt, e);
            if (pid < 0) { free(adv); free(comb); goto out; }
            for (int k = 0; k < G; k++) {
                const SandboxResult *res = &g->j[k].result;
                RsRollout ro = {pid, st.step * 100000 + i, k, g->s[k].text ? g->s[k].text : "", g->s[k].n_tokens,
                                g->combined[k], g->kept ? adv[(size_t)q * G + k] : 0.0};
                int64_t rid = runstore_add_rollout(log->rs, &ro, e);
                if (rid < 0) { free(adv); free(comb); goto out; }
                char *tj = tests_json(res);
                long wall = 0;
                for (int x = 0; x < res->n_tests; x++) wall += res->tests[x].wall_ms;
                int ec = 0;
                for (int x = 0; x < res->n_tests; x++)
                    if (res->tests[x].verdict != VERDICT_OK) { ec = res->tests[x].signal ? -res->tests[x].signal : res->tests[x].exit_code; break; }
                RsExecution ex = {rid, verdict_name(res->verdict), res->verdict == VERDICT_OK, res->total, res->passed,
                                  res->compiled ? res->compile_output : NULL, tj, (double)wall, res->memory_kb, ec};
                int64_t xid = runstore_add_execution(log->rs, &ex, e);
                free(tj);
                if (xid < 0) { free(adv); free(comb); goto out; }
            }
            if (g->kept) q++;
        }
        free(adv);
        free(comb);
        if (run_log_step_commit(log, e)) goto out;
        char eta[16];
        double per = progress_elapsed(&pr) / (double)steps_done;
        progress_update(&pr, "grpo step %ld/%ld  reward %.3f  pass %.3f  kl %.4f  clip %.3f  len %.1f  %.0f tok/s  "
                        "sandbox %.1fs  ETA %s", st.step, c->steps, rmean, (double)n_pass / n_all,
                        ref && lst.tokens > 0 ? lst.kl_sum / lst.tokens : 0.0,
                        lst.tokens > 0 ? (lst.clip_low + lst.clip_high) / lst.tokens : 0.0, (double)len_sum / n_all,
                        gen_s > 0 ? gen_tokens / gen_s : 0.0, judge_s, progress_eta(per * (double)(c->steps - st.step), eta));
        for (int i = 0; i < n_groups; i++) group_free(&groups[i], G);
        n_groups = 0;
        if (c->save_every > 0 && st.step % c->save_every == 0 && st.step < c->steps) {
            char *js = state_json(&st, c->seed);
            int r = ref_save_if_needed(ref, c, st.step, e);
            long oldest = -1;
            if (r == 0)
                r = train_checkpoint(log, "grpo", c->out_dir, 0, st.step, m, &opt, js, tok_path, (int)c->keep_last,
                                     &oldest, e);
            if (r == 0 && oldest > 0) ref_prune(c, oldest);
            free(js);
            if (r) goto out;
        }
    }
    progress_done(&pr);
    {
        char *js = state_json(&st, c->seed);
        int r = train_checkpoint(log, "grpo", c->out_dir, 1, st.step, m, &opt, js, tok_path, 0, NULL, e);
        free(js);
        if (r) goto out;
    }
    rc = 0;
out:
    for (int i = 0; i < n_groups; i++) group_free(&groups[i], G);
    free(groups);
    run_log_close(log);
    rollout_free(eng);
    reward_model_free(rm);
    tokenizer_free(rm_tok);
    adamw_free(&opt);
    model_free(ref);
    model_free(m);
    tokenizer_free(tok);
    if (tasks) tasks_free(tasks, n_tasks);
    free(order);
    free(resume_from);
    free(state_js);
    free(tok_path);
    sandbox_pool_free(pool);
    train_out_release(out_lock);
    return rc;
}
