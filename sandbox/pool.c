/* sandbox/pool.c — N worker processes judging jobs in parallel (see sandbox.h).
 * Wire format: one JSON line per job ({"tag":..,"job":{..}}), one JSON line per result
 * ({"tag":..,"result":{..}} or {"tag":..,"error":".."}). Single-threaded: the caller's submit()
 * and next() calls pump the pipes. */
#include "sandbox/sandbox.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"

extern char **environ;

typedef struct Worker {
    pid_t pid;
    int to_w, from_r;       /* job pipe (write end), result pipe (read end) */
    int busy;
    uint64_t tag;
    char *buf;              /* partial result line */
    size_t n, cap;
} Worker;

typedef struct Item { uint64_t tag; char *text; int is_error; } Item;
typedef struct Queue { Item *it; int head, n, cap; } Queue;

struct SandboxPool {
    int n_workers;
    Worker *w;
    Queue pending;          /* serialized jobs not yet given to a worker */
    Queue done;             /* result lines not yet returned by next() */
    int max_pending;
    int outstanding;        /* submitted, not yet returned */
    char exe[PATH_MAX];
};

static void q_push(Queue *q, Item it) {
    if (q->head + q->n == q->cap) {
        if (q->head > 0) {
            memmove(q->it, q->it + q->head, sizeof(Item) * (size_t)q->n);
            q->head = 0;
        } else {
            q->cap = q->cap ? 2 * q->cap : 16;
            q->it = cr_realloc(q->it, sizeof(Item) * (size_t)q->cap);
        }
    }
    q->it[q->head + q->n++] = it;
}
static Item q_pop(Queue *q) {
    Item it = q->it[q->head++];
    if (--q->n == 0) q->head = 0;
    return it;
}

static void find_exe(char *out, size_t cap) {
    const char *env = getenv("CRUCIBLE_SANDBOX_WORKER");
    if (env && *env) { snprintf(out, cap, "%s", env); return; }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) { snprintf(out, cap, "/proc/self/exe"); return; }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (slash) {  /* build/crucible beside build/crucible_tests, or above build/bench/X */
        snprintf(out, cap, "%.*s/crucible", (int)(slash - self), self);
        if (access(out, X_OK) == 0) return;
        snprintf(out, cap, "%.*s/../crucible", (int)(slash - self), self);
        if (access(out, X_OK) == 0) return;
    }
    snprintf(out, cap, "%s", self);
}

static int spawn_worker(SandboxPool *p, Worker *w, CrError *e) {
    int to[2], from[2];
    if (pipe2(to, O_CLOEXEC) < 0) return cr_error_set(e, "sandbox pool: pipe: %s", strerror(errno));
    if (pipe2(from, O_CLOEXEC) < 0) {
        close(to[0]); close(to[1]);
        return cr_error_set(e, "sandbox pool: pipe: %s", strerror(errno));
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, to[0], 0);
    posix_spawn_file_actions_adddup2(&fa, from[1], 1);
    char *argv[] = { p->exe, "sandbox", "worker", NULL };
    pid_t pid;
    int rc = posix_spawn(&pid, p->exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(to[0]);
    close(from[1]);
    if (rc != 0) {
        close(to[1]); close(from[0]);
        return cr_error_set(e, "sandbox pool: posix_spawn %s: %s", p->exe, strerror(rc));
    }
    memset(w, 0, sizeof *w);
    w->pid = pid;
    w->to_w = to[1];
    w->from_r = from[0];
    return 0;
}

static void reap_worker(Worker *w) {
    if (w->to_w >= 0) close(w->to_w);
    if (w->from_r >= 0) close(w->from_r);
    w->to_w = w->from_r = -1;
    if (w->pid > 0) {
        kill(w->pid, SIGKILL);
        while (waitpid(w->pid, NULL, 0) < 0 && errno == EINTR) {}
    }
    w->pid = 0;
    free(w->buf);
    w->buf = NULL;
    w->n = w->cap = 0;
}

SandboxPool *sandbox_pool_create(int n_workers, CrError *e) {
    if (n_workers < 1 || n_workers > 1024) {
        cr_error_set(e, "sandbox pool: n_workers %d outside [1, 1024]", n_workers);
        return NULL;
    }
    SandboxPool *p = cr_calloc(1, sizeof *p);
    p->n_workers = n_workers;
    p->max_pending = 2 * n_workers;
    p->w = cr_calloc((size_t)n_workers, sizeof *p->w);
    find_exe(p->exe, sizeof p->exe);
    for (int i = 0; i < n_workers; i++) {
        p->w[i].to_w = p->w[i].from_r = -1;
        if (spawn_worker(p, &p->w[i], e) < 0) {
            sandbox_pool_free(p);
            return NULL;
        }
    }
    return p;
}

static int write_all(int fd, const char *s, size_t n) {
    while (n) {
        ssize_t w = write(fd, s, n);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

static void fail_job(SandboxPool *p, uint64_t tag, const char *why) {
    q_push(&p->done, (Item){ tag, cr_strdup(why), 1 });
}

/* Give pending jobs to idle workers. */
static void dispatch(SandboxPool *p) {
    for (int i = 0; i < p->n_workers && p->pending.n; i++) {
        Worker *w = &p->w[i];
        if (w->busy || w->pid <= 0) continue;
        Item it = q_pop(&p->pending);
        int ok = write_all(w->to_w, it.text, strlen(it.text)) == 0;
        free(it.text);
        if (!ok) {
            fail_job(p, it.tag, "sandbox worker died before taking the job");
            CrError e;
            reap_worker(w);
            if (spawn_worker(p, w, &e) < 0) w->pid = 0;
            continue;
        }
        w->busy = 1;
        w->tag = it.tag;
    }
}

/* Wait for (at least one) worker output and collect finished lines. */
static int pump(SandboxPool *p, CrError *e) {
    struct pollfd *pf = cr_malloc(sizeof *pf * (size_t)p->n_workers);
    int *idx = cr_malloc(sizeof *idx * (size_t)p->n_workers), np = 0;
    for (int i = 0; i < p->n_workers; i++)
        if (p->w[i].busy) { pf[np] = (struct pollfd){ p->w[i].from_r, POLLIN, 0 }; idx[np++] = i; }
    if (np == 0) { free(pf); free(idx); return 0; }
    int r;
    while ((r = poll(pf, (nfds_t)np, -1)) < 0 && errno == EINTR) {}
    if (r < 0) { free(pf); free(idx); return cr_error_set(e, "sandbox pool: poll: %s", strerror(errno)); }
    for (int k = 0; k < np; k++) {
        if (!pf[k].revents) continue;
        Worker *w = &p->w[idx[k]];
        char chunk[65536];
        ssize_t n = read(w->from_r, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            fail_job(p, w->tag, "sandbox worker died while judging the job");
            reap_worker(w);
            CrError e2;
            if (spawn_worker(p, w, &e2) < 0) w->pid = 0;
            continue;
        }
        if (w->n + (size_t)n + 1 > w->cap) {
            w->cap = (w->n + (size_t)n + 1) * 2;
            w->buf = cr_realloc(w->buf, w->cap);
        }
        memcpy(w->buf + w->n, chunk, (size_t)n);
        w->n += (size_t)n;
        w->buf[w->n] = 0;
        char *nl = memchr(w->buf, '\n', w->n);
        if (nl) {
            *nl = 0;
            q_push(&p->done, (Item){ w->tag, cr_strdup(w->buf), 0 });
            w->n = 0;
            w->busy = 0;
        }
    }
    free(pf);
    free(idx);
    dispatch(p);
    return 0;
}

int sandbox_pool_submit(SandboxPool *p, const SandboxJob *job, uint64_t tag, CrError *e) {
    char *j = sandbox_job_to_json(job);
    size_t n = strlen(j);
    char *line = cr_malloc(n + 64);
    snprintf(line, n + 64, "{\"tag\":%llu,\"job\":%s}\n", (unsigned long long)tag, j);
    free(j);
    while (p->pending.n >= p->max_pending)
        if (pump(p, e) < 0) { free(line); return -1; }
    q_push(&p->pending, (Item){ tag, line, 0 });
    p->outstanding++;
    dispatch(p);
    return 0;
}

int sandbox_pool_pending(const SandboxPool *p) { return p->outstanding; }

int sandbox_pool_next(SandboxPool *p, uint64_t *tag, SandboxResult *out, CrError *e) {
    memset(out, 0, sizeof *out);
    while (p->done.n == 0) {
        if (p->outstanding == 0) return cr_error_set(e, "sandbox pool: next() with no job submitted");
        int any = 0;
        for (int i = 0; i < p->n_workers; i++) any |= p->w[i].busy;
        if (!any && p->pending.n) {
            dispatch(p);
            for (int i = 0; i < p->n_workers; i++) any |= p->w[i].busy;
            if (!any) return cr_error_set(e, "sandbox pool: no live worker");
        }
        if (pump(p, e) < 0) return -1;
    }
    Item it = q_pop(&p->done);
    p->outstanding--;
    *tag = it.tag;
    int rc;
    if (it.is_error) {
        rc = cr_error_set(e, "%s", it.text);
    } else {
        cJSON *o = cJSON_Parse(it.text);
        const cJSON *res = o ? cJSON_GetObjectItemCaseSensitive(o, "result") : NULL;
        const cJSON *err = o ? cJSON_GetObjectItemCaseSensitive(o, "error") : NULL;
        if (cJSON_IsString(err)) {
            rc = cr_error_set(e, "%s", err->valuestring);
        } else if (cJSON_IsObject(res)) {
            char *s = cJSON_PrintUnformatted(res);
            rc = s ? sandbox_result_from_json(s, out, e) : cr_error_set(e, "sandbox pool: out of memory");
            free(s);
        } else {
            rc = cr_error_set(e, "sandbox pool: malformed line from a worker");
        }
        cJSON_Delete(o);
    }
    free(it.text);
    return rc;
}

void sandbox_pool_free(SandboxPool *p) {
    if (!p) return;
    for (int i = 0; i < p->n_workers; i++) {
        Worker *w = &p->w[i];
        if (w->pid <= 0) continue;
        close(w->to_w);  /* EOF: the worker exits after its current job */
        w->to_w = -1;
    }
    for (int i = 0; i < p->n_workers; i++) {
        Worker *w = &p->w[i];
        if (w->pid <= 0) continue;
        if (w->busy) kill(w->pid, SIGTERM);
        int st;
        while (waitpid(w->pid, &st, 0) < 0 && errno == EINTR) {}
        w->pid = 0;
        reap_worker(w);
    }
    while (p->pending.n) free(q_pop(&p->pending).text);
    while (p->done.n) free(q_pop(&p->done).text);
    free(p->pending.it);
    free(p->done.it);
    free(p->w);
    free(p);
}

/* ---- the worker ------------------------------------------------------------------ */

static void on_term(int sig) { (void)sig; _exit(0); }

int sandbox_worker_main(int in_fd, int out_fd) {
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    FILE *in = fdopen(in_fd, "r");
    if (!in) return -1;
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int rc = 0;
    while ((n = getline(&line, &cap, in)) > 0) {
        cJSON *o = cJSON_Parse(line);
        const cJSON *t = o ? cJSON_GetObjectItemCaseSensitive(o, "tag") : NULL;
        const cJSON *j = o ? cJSON_GetObjectItemCaseSensitive(o, "job") : NULL;
        unsigned long long tag = cJSON_IsNumber(t) ? (unsigned long long)t->valuedouble : 0;
        CrError e = { { 0 } };
        char *reply = NULL;
        SandboxJob job;
        char *js = cJSON_IsObject(j) ? cJSON_PrintUnformatted(j) : NULL;
        if (!js) {
            cr_error_set(&e, "sandbox worker: malformed job line");
        } else if (sandbox_job_from_json(js, &job, &e) == 0) {
            SandboxResult r;
            if (sandbox_run(&job, &r, &e) == 0) {
                char *rj = sandbox_result_to_json(&r);
                size_t rl = strlen(rj);
                reply = cr_malloc(rl + 64);
                snprintf(reply, rl + 64, "{\"tag\":%llu,\"result\":%s}\n", tag, rj);
                free(rj);
                sandbox_result_free(&r);
            }
            sandbox_job_free_parsed(&job);
        }
        free(js);
        cJSON_Delete(o);
        if (!reply) {
            cJSON *x = cJSON_CreateObject();
            cJSON_AddNumberToObject(x, "tag", (double)tag);
            cJSON_AddStringToObject(x, "error", e.msg);
            char *s = cJSON_PrintUnformatted(x);
            cJSON_Delete(x);
            size_t sl = strlen(s);
            reply = cr_malloc(sl + 2);
            memcpy(reply, s, sl);
            reply[sl] = '\n';
            reply[sl + 1] = 0;
            free(s);
        }
        int ok = write_all(out_fd, reply, strlen(reply)) == 0;
        free(reply);
        if (!ok) { rc = -1; break; }
    }
    free(line);
    fclose(in);
    sandbox_shutdown();
    return rc;
}
