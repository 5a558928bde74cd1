/* data/runstore.c — see runstore.h */
#include "data/runstore.h"
#include "data/runstore_schema.h"
#include "core/alloc.h"
#include "core/version.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct RunStore {
    sqlite3 *db;
    char *path;
    int readonly;
    int in_step;
    int64_t run_id, step;   /* of the open step */
};

static int db_err(RunStore *rs, CrError *e, const char *what) {
    return cr_error_set(e, "%s: %s: %s", rs->path, what, sqlite3_errmsg(rs->db));
}

static int exec_sql(RunStore *rs, const char *sql, CrError *e) {
    char *msg = NULL;
    if (sqlite3_exec(rs->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        cr_error_set(e, "%s: %.200s: %s", rs->path, sql, msg ? msg : sqlite3_errmsg(rs->db));
        sqlite3_free(msg);
        return -1;
    }
    return 0;
}

static sqlite3_stmt *prep(RunStore *rs, const char *sql, CrError *e) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(rs->db, sql, -1, &st, NULL) != SQLITE_OK) {
        db_err(rs, e, "prepare");
        sqlite3_finalize(st);
        return NULL;
    }
    return st;
}

/* Bind helpers: return 0, or -1 with e set. */
static int bind_text(RunStore *rs, sqlite3_stmt *st, int i, const char *s, CrError *e) {
    int rc = s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
    return rc == SQLITE_OK ? 0 : db_err(rs, e, "bind");
}
static int bind_i64(RunStore *rs, sqlite3_stmt *st, int i, int64_t v, CrError *e) {
    return sqlite3_bind_int64(st, i, v) == SQLITE_OK ? 0 : db_err(rs, e, "bind");
}
static int bind_dbl(RunStore *rs, sqlite3_stmt *st, int i, double v, CrError *e) {
    return sqlite3_bind_double(st, i, v) == SQLITE_OK ? 0 : db_err(rs, e, "bind");
}

/* Step a statement that returns no rows; finalizes it. */
static int run_done(RunStore *rs, sqlite3_stmt *st, const char *what, CrError *e) {
    int rc = sqlite3_step(st);
    int r = 0;
    if (rc != SQLITE_DONE) r = db_err(rs, e, what);
    sqlite3_finalize(st);
    return r;
}

static int get_user_version(RunStore *rs, int *v, CrError *e) {
    sqlite3_stmt *st = prep(rs, "PRAGMA user_version", e);
    if (!st) return -1;
    if (sqlite3_step(st) != SQLITE_ROW) {
        db_err(rs, e, "read user_version");
        sqlite3_finalize(st);
        return -1;
    }
    *v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int migrate(RunStore *rs, CrError *e) {
    if (exec_sql(rs, "BEGIN IMMEDIATE", e) < 0) return -1;
    int v;
    if (get_user_version(rs, &v, e) < 0) goto fail;
    if (v > runstore_n_migrations) {
        cr_error_set(e, "%s: run database schema version %d is newer than this crucible (%d)",
                     rs->path, v, runstore_n_migrations);
        goto fail;
    }
    for (; v < runstore_n_migrations; v++) {
        if (exec_sql(rs, runstore_migrations[v], e) < 0) goto fail;
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", v + 1);
        if (exec_sql(rs, sql, e) < 0) goto fail;
    }
    return exec_sql(rs, "COMMIT", e);
fail:
    sqlite3_exec(rs->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

static RunStore *open_common(const char *path, int readonly, CrError *e) {
    RunStore *rs = cr_calloc(1, sizeof *rs);
    rs->path = cr_strdup(path);
    rs->readonly = readonly;
    int flags = readonly ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    if (sqlite3_open_v2(path, &rs->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        cr_error_set(e, "%s: cannot open run database: %s", path,
                     rs->db ? sqlite3_errmsg(rs->db) : "out of memory");
        goto fail;
    }
    if (sqlite3_busy_timeout(rs->db, 10000) != SQLITE_OK) { db_err(rs, e, "busy_timeout"); goto fail; }
    if (sqlite3_extended_result_codes(rs->db, 1) != SQLITE_OK) { db_err(rs, e, "result codes"); goto fail; }
    if (!readonly) {
        if (exec_sql(rs, "PRAGMA journal_mode=WAL", e) < 0) goto fail;
        if (exec_sql(rs, "PRAGMA synchronous=FULL", e) < 0) goto fail;
        if (exec_sql(rs, "PRAGMA foreign_keys=ON", e) < 0) goto fail;
        if (migrate(rs, e) < 0) goto fail;
    } else {
        int v;
        if (get_user_version(rs, &v, e) < 0) goto fail;
        if (v != runstore_n_migrations) {
            cr_error_set(e, "%s: run database schema version %d, this crucible reads %d%s", path, v,
                         runstore_n_migrations, v < runstore_n_migrations ? " (open it read-write once to migrate)" : "");
            goto fail;
        }
    }
    return rs;
fail:
    runstore_close(rs);
    return NULL;
}

RunStore *runstore_open(const char *path, CrError *e) { return open_common(path, 0, e); }
RunStore *runstore_open_readonly(const char *path, CrError *e) { return open_common(path, 1, e); }

void runstore_close(RunStore *rs) {
    if (!rs) return;
    if (rs->in_step) runstore_step_abort(rs);
    if (rs->db && sqlite3_close(rs->db) != SQLITE_OK)
        fprintf(stderr, "crucible: warning: %s: close: %s\n", rs->path, sqlite3_errmsg(rs->db));
    free(rs->path);
    free(rs);
}

static int json_ok(RunStore *rs, const char *what, const char *js, CrError *e) {
    sqlite3_stmt *st = prep(rs, "SELECT json_valid(?1)", e);
    if (!st) return -1;
    int ok = -1;
    if (bind_text(rs, st, 1, js, e) == 0) {
        if (sqlite3_step(st) == SQLITE_ROW) ok = sqlite3_column_int(st, 0) ? 0 : cr_error_set(e, "%s: %s is not valid JSON", rs->path, what);
        else db_err(rs, e, "json_valid");
    }
    sqlite3_finalize(st);
    return ok;
}

int64_t runstore_begin_run(RunStore *rs, const char *kind, const char *config_json,
                           const char *code_commit, const char *provenance_json, CrError *e) {
    if (rs->in_step) return cr_error_set(e, "%s: begin_run inside an open step", rs->path);
    if (!provenance_json) provenance_json = "{}";
    if (!code_commit) code_commit = crucible_git_commit;
    if (json_ok(rs, "config", config_json, e) < 0 || json_ok(rs, "provenance", provenance_json, e) < 0) return -1;
    sqlite3_stmt *st = prep(rs, "INSERT INTO runs(kind, config_json, code_commit, provenance_json) VALUES (?1,?2,?3,?4)", e);
    if (!st) return -1;
    if (bind_text(rs, st, 1, kind, e) || bind_text(rs, st, 2, config_json, e) ||
        bind_text(rs, st, 3, code_commit, e) || bind_text(rs, st, 4, provenance_json, e)) {
        sqlite3_finalize(st);
        return -1;
    }
    if (run_done(rs, st, "insert run", e) < 0) return -1;
    return sqlite3_last_insert_rowid(rs->db);
}

int runstore_add_source(RunStore *rs, int64_t run_id, const char *kind, const char *source,
                        const char *revision, const char *detail_json, CrError *e) {
    sqlite3_stmt *st = prep(rs, "INSERT INTO sources(run_id, kind, source, revision, detail_json) VALUES (?1,?2,?3,?4,?5)", e);
    if (!st) return -1;
    if (bind_i64(rs, st, 1, run_id, e) || bind_text(rs, st, 2, kind, e) || bind_text(rs, st, 3, source, e) ||
        bind_text(rs, st, 4, revision, e) || bind_text(rs, st, 5, detail_json, e)) {
        sqlite3_finalize(st);
        return -1;
    }
    return run_done(rs, st, "insert source", e);
}

int runstore_step_begin(RunStore *rs, int64_t run_id, int64_t step, CrError *e) {
    if (rs->in_step) return cr_error_set(e, "%s: step %lld still open", rs->path, (long long)rs->step);
    if (exec_sql(rs, "BEGIN IMMEDIATE", e) < 0) return -1;
    sqlite3_stmt *st = prep(rs, "INSERT INTO steps(run_id, step) VALUES (?1, ?2)", e);
    if (!st || bind_i64(rs, st, 1, run_id, e) || bind_i64(rs, st, 2, step, e)) {
        sqlite3_finalize(st);
        sqlite3_exec(rs->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    if (run_done(rs, st, "insert step (already recorded?)", e) < 0) {
        sqlite3_exec(rs->db, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    rs->in_step = 1;
    rs->run_id = run_id;
    rs->step = step;
    return 0;
}

static int need_step(RunStore *rs, CrError *e) {
    return rs->in_step ? 0 : cr_error_set(e, "%s: no step open (call runstore_step_begin)", rs->path);
}

int runstore_add_metric(RunStore *rs, const char *name, double value, CrError *e) {
    if (need_step(rs, e) < 0) return -1;
    sqlite3_stmt *st = prep(rs, "INSERT OR REPLACE INTO metrics(run_id, step, name, value) VALUES (?1,?2,?3,?4)", e);
    if (!st) return -1;
    if (bind_i64(rs, st, 1, rs->run_id, e) || bind_i64(rs, st, 2, rs->step, e) ||
        bind_text(rs, st, 3, name, e) || bind_dbl(rs, st, 4, value, e)) {
        sqlite3_finalize(st);
        return -1;
    }
    return run_done(rs, st, "insert metric", e);
}

int64_t runstore_add_prompt(RunStore *rs, const char *key, const char *text, CrError *e) {
    if (need_step(rs, e) < 0) return -1;
    sqlite3_stmt *st = prep(rs, "INSERT INTO prompts(run_id, key, text) VALUES (?1,?2,?3) "
                                "ON CONFLICT(run_id, key) DO UPDATE SET key = excluded.key RETURNING id", e);
    if (!st) return -1;
    if (bind_i64(rs, st, 1, rs->run_id, e) || bind_text(rs, st, 2, key, e) || bind_text(rs, st, 3, text, e)) {
        sqlite3_finalize(st);
        return -1;
    }
    int64_t id = -1;
    if (sqlite3_step(st) == SQLITE_ROW) id = sqlite3_column_int64(st, 0);
    else db_err(rs, e, "insert prompt");
    if (id > 0 && sqlite3_step(st) != SQLITE_DONE) id = db_err(rs, e, "insert prompt");
    sqlite3_finalize(st);
    return id;
}

int64_t runstore_add_rollout(RunStore *rs, const RsRollout *r, CrError *e) {
    if (need_step(rs, e) < 0) return -1;
    sqlite3_stmt *st = prep(rs, "INSERT INTO rollouts(run_id, step, prompt_id, group_id, sample_index, "
                                "completion, n_tokens, reward, advantage) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)", e);
    if (!st) return -1;
    if (bind_i64(rs, st, 1, rs->run_id, e) || bind_i64(rs, st, 2, rs->step, e) ||
        bind_i64(rs, st, 3, r->prompt_id, e) || bind_i64(rs, st, 4, r->group_id, e) ||
        bind_i64(rs, st, 5, r->sample_index, e) || bind_text(rs, st, 6, r->completion ? r->completion : "", e) ||
        bind_i64(rs, st, 7, r->n_tokens, e) || bind_dbl(rs, st, 8, r->reward, e) ||
        bind_dbl(rs, st, 9, r->advantage, e)) {
        sqlite3_finalize(st);
        return -1;
    }
    if (run_done(rs, st, "insert rollout", e) < 0) return -1;
    return sqlite3_last_insert_rowid(rs->db);
}

int64_t runstore_add_execution(RunStore *rs, const RsExecution *x, CrError *e) {
    if (need_step(rs, e) < 0) return -1;
    sqlite3_stmt *st = prep(rs, "INSERT INTO executions(rollout_id, verdict, passed, n_tests, n_passed, "
                                "compile_output, tests_json, time_ms, memory_kb, exit_code) "
                                "VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)", e);
    if (!st) return -1;
    if (bind_i64(rs, st, 1, x->rollout_id, e) || bind_text(rs, st, 2, x->verdict ? x->verdict : "IE", e) ||
        bind_i64(rs, st, 3, x->passed != 0, e) || bind_i64(rs, st, 4, x->n_tests, e) ||
        bind_i64(rs, st, 5, x->n_passed, e) || bind_text(rs, st, 6, x->compile_output, e) ||
        bind_text(rs, st, 7, x->tests_json, e) || bind_dbl(rs, st, 8, x->time_ms, e) ||
        bind_i64(rs, st, 9, x->memory_kb, e) || bind_i64(rs, st, 10, x->exit_code, e)) {
        sqlite3_finalize(st);
        return -1;
    }
    if (run_done(rs, st, "insert execution", e) < 0) return -1;
    return sqlite3_last_insert_rowid(rs->db);
}

int runstore_step_commit(RunStore *rs, CrError *e) {
    if (need_step(rs, e) < 0) return -1;
    if (exec_sql(rs, "COMMIT", e) < 0) {
        runstore_step_abort(rs);
        return -1;
    }
    rs->in_step = 0;
    return 0;
}

void runstore_step_abort(RunStore *rs) {
    if (!rs->in_step) return;
    if (sqlite3_exec(rs->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK && sqlite3_get_autocommit(rs->db) == 0)
        fprintf(stderr, "crucible: warning: %s: rollback: %s\n", rs->path, sqlite3_errmsg(rs->db));
    rs->in_step = 0;
}

int runstore_add_checkpoint(RunStore *rs, int64_t run_id, int64_t step, const char *path, CrError *e) {
    sqlite3_stmt *st = prep(rs, "INSERT INTO checkpoints(run_id, step, path) VALUES (?1,?2,?3)", e);
    if (!st) return -1;
    if (bind_i64(rs, st, 1, run_id, e) || bind_i64(rs, st, 2, step, e) || bind_text(rs, st, 3, path, e)) {
        sqlite3_finalize(st);
        return -1;
    }
    return run_done(rs, st, "insert checkpoint", e);
}

int runstore_forget_checkpoints_before(RunStore *rs, int64_t run_id, int64_t step, CrError *e) {
    sqlite3_stmt *st = prep(rs, "DELETE FROM checkpoints WHERE run_id = ?1 AND step < ?2", e);
    if (!st) return -1;
    if (bind_i64(rs, st, 1, run_id, e) || bind_i64(rs, st, 2, step, e)) {
        sqlite3_finalize(st);
        return -1;
    }
    return run_done(rs, st, "delete checkpoints", e);
}

/* One int64 from a query with up to one int64 parameter; returns -1 and sets e on error,
 * `none` when no row / NULL. */
static int64_t query_i64(RunStore *rs, const char *sql, int64_t p1, int64_t none, CrError *e) {
    if (e) e->msg[0] = 0;
    sqlite3_stmt *st = prep(rs, sql, e);
    if (!st) return -1;
    int64_t v = none;
    if (sqlite3_bind_parameter_count(st) >= 1 && bind_i64(rs, st, 1, p1, e) < 0) {
        sqlite3_finalize(st);
        return -1;
    }
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_type(st, 0) != SQLITE_NULL) v = sqlite3_column_int64(st, 0);
    } else if (rc != SQLITE_DONE) v = db_err(rs, e, "query");
    sqlite3_finalize(st);
    return v;
}

int64_t runstore_last_step(RunStore *rs, int64_t run_id, CrError *e) {
    return query_i64(rs, "SELECT max(step) FROM steps WHERE run_id = ?1", run_id, -1, e);
}

int64_t runstore_latest_run(RunStore *rs, CrError *e) {
    return query_i64(rs, "SELECT max(id) FROM runs", 0, 0, e);
}

int runstore_source(RunStore *rs, int64_t run_id, const char *kind, char **source, char **revision, CrError *e) {
    *source = *revision = NULL;
    sqlite3_stmt *st = prep(rs, "SELECT source, revision FROM sources WHERE run_id = ?1 AND kind = ?2 "
                                "ORDER BY id LIMIT 1", e);
    if (!st) return -1;
    if (bind_i64(rs, st, 1, run_id, e) || bind_text(rs, st, 2, kind, e)) { sqlite3_finalize(st); return -1; }
    int rc = sqlite3_step(st), r = 0;
    if (rc == SQLITE_ROW) {
        const unsigned char *a = sqlite3_column_text(st, 0), *b = sqlite3_column_text(st, 1);
        *source = cr_strdup(a ? (const char *)a : "");
        *revision = b ? cr_strdup((const char *)b) : NULL;
        r = 1;
    } else if (rc != SQLITE_DONE) {
        r = db_err(rs, e, "read source");
    }
    sqlite3_finalize(st);
    return r;
}

/* Readers run in one read transaction so that they see a single snapshot. */
static int read_begin(RunStore *rs, CrError *e) {
    return sqlite3_get_autocommit(rs->db) ? exec_sql(rs, "BEGIN", e) : 0;
}
static void read_end(RunStore *rs, int began) {
    if (began) sqlite3_exec(rs->db, "COMMIT", NULL, NULL, NULL);
}

int runstore_each_execution(RunStore *rs, int64_t run_id, int64_t step_lo, int64_t step_hi,
                            int limit, RsExampleFn cb, void *ctx, CrError *e) {
    int began = sqlite3_get_autocommit(rs->db);
    if (read_begin(rs, e) < 0) return -1;
    sqlite3_stmt *st = prep(rs,
        "SELECT r.run_id, r.step, r.id, r.group_id, p.text, r.completion, x.verdict, x.compile_output, "
        "       x.passed, r.n_tokens, r.reward, r.advantage "
        "FROM executions x JOIN rollouts r ON r.id = x.rollout_id JOIN prompts p ON p.id = r.prompt_id "
        "WHERE (?1 = 0 OR r.run_id = ?1) AND (?2 < 0 OR r.step >= ?2) AND (?3 < 0 OR r.step <= ?3) "
        "ORDER BY r.id, x.id LIMIT ?4", e);
    int rc = -1;
    if (!st) goto out;
    if (bind_i64(rs, st, 1, run_id, e) || bind_i64(rs, st, 2, step_lo, e) || bind_i64(rs, st, 3, step_hi, e) ||
        bind_i64(rs, st, 4, limit > 0 ? limit : -1, e))
        goto out;
    int s;
    rc = 0;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        RsExample x = {
            .run_id = sqlite3_column_int64(st, 0), .step = sqlite3_column_int64(st, 1),
            .rollout_id = sqlite3_column_int64(st, 2), .group_id = sqlite3_column_int64(st, 3),
            .prompt = (const char *)sqlite3_column_text(st, 4),
            .completion = (const char *)sqlite3_column_text(st, 5),
            .verdict = (const char *)sqlite3_column_text(st, 6),
            .compile_output = (const char *)sqlite3_column_text(st, 7),
            .passed = sqlite3_column_int(st, 8), .n_tokens = sqlite3_column_int(st, 9),
            .reward = sqlite3_column_double(st, 10), .advantage = sqlite3_column_double(st, 11)};
        if (!x.prompt) x.prompt = "";
        if (!x.completion) x.completion = "";
        if (!x.verdict) x.verdict = "";
        rc = cb(ctx, &x);
        if (rc) break;
    }
    if (rc == 0 && s != SQLITE_DONE) rc = db_err(rs, e, "read executions");
out:
    sqlite3_finalize(st);
    read_end(rs, began);
    return rc;
}

int runstore_metric_series(RunStore *rs, int64_t run_id, const char *name, int64_t **steps,
                           double **values, int *n, CrError *e) {
    *steps = NULL;
    *values = NULL;
    *n = 0;
    sqlite3_stmt *st = prep(rs, "SELECT step, value FROM metrics WHERE run_id = ?1 AND name = ?2 ORDER BY step", e);
    if (!st) return -1;
    if (bind_i64(rs, st, 1, run_id, e) || bind_text(rs, st, 2, name, e)) {
        sqlite3_finalize(st);
        return -1;
    }
    int cap = 0, s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            *steps = cr_realloc(*steps, sizeof(int64_t) * (size_t)cap);
            *values = cr_realloc(*values, sizeof(double) * (size_t)cap);
        }
        (*steps)[*n] = sqlite3_column_int64(st, 0);
        (*values)[*n] = sqlite3_column_double(st, 1);
        (*n)++;
    }
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) {
        free(*steps); free(*values);
        *steps = NULL; *values = NULL; *n = 0;
        return db_err(rs, e, "read metrics");
    }
    return 0;
}

/* (text, count) rows of a grouping query into malloc'd arrays. */
static int text_count_rows(RunStore *rs, sqlite3_stmt *st, char ***names, int64_t **counts, int *n,
                           CrError *e) {
    int cap = 0, s;
    *names = NULL;
    if (counts) *counts = NULL;
    *n = 0;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            *names = cr_realloc(*names, sizeof(char *) * (size_t)cap);
            if (counts) *counts = cr_realloc(*counts, sizeof(int64_t) * (size_t)cap);
        }
        const char *t = (const char *)sqlite3_column_text(st, 0);
        (*names)[*n] = cr_strdup(t ? t : "");
        if (counts) (*counts)[*n] = sqlite3_column_int64(st, 1);
        (*n)++;
    }
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) {
        for (int i = 0; i < *n; i++) free((*names)[i]);
        free(*names);
        if (counts) free(*counts);
        *names = NULL;
        *n = 0;
        return db_err(rs, e, "read");
    }
    return 0;
}

int runstore_metric_names(RunStore *rs, int64_t run_id, char ***names, int *n, CrError *e) {
    sqlite3_stmt *st = prep(rs, "SELECT DISTINCT name FROM metrics WHERE run_id = ?1 ORDER BY name", e);
    if (!st) return -1;
    if (bind_i64(rs, st, 1, run_id, e) < 0) { sqlite3_finalize(st); return -1; }
    return text_count_rows(rs, st, names, NULL, n, e);
}

int runstore_verdict_histogram(RunStore *rs, int64_t run_id, int64_t step_lo, int64_t step_hi,
                               char ***verdicts, int64_t **counts, int *n, CrError *e) {
    sqlite3_stmt *st = prep(rs,
        "SELECT x.verdict, count(*) FROM executions x JOIN rollouts r ON r.id = x.rollout_id "
        "WHERE r.run_id = ?1 AND (?2 < 0 OR r.step >= ?2) AND (?3 < 0 OR r.step <= ?3) "
        "GROUP BY x.verdict ORDER BY x.verdict", e);
    if (!st) return -1;
    if (bind_i64(rs, st, 1, run_id, e) || bind_i64(rs, st, 2, step_lo, e) || bind_i64(rs, st, 3, step_hi, e)) {
        sqlite3_finalize(st);
        return -1;
    }
    return text_count_rows(rs, st, verdicts, counts, n, e);
}

int runstore_truncate_after(RunStore *rs, int64_t run_id, int64_t step, CrError *e) {
    if (rs->in_step) return cr_error_set(e, "%s: truncate with a step open", rs->path);
    static const char *const sql[] = {
        "DELETE FROM executions WHERE rollout_id IN (SELECT id FROM rollouts WHERE run_id = ?1 AND step > ?2)",
        "DELETE FROM rollouts WHERE run_id = ?1 AND step > ?2",
        "DELETE FROM metrics WHERE run_id = ?1 AND step > ?2",
        "DELETE FROM checkpoints WHERE run_id = ?1 AND step > ?2",
        "DELETE FROM steps WHERE run_id = ?1 AND step > ?2",
    };
    if (exec_sql(rs, "BEGIN IMMEDIATE", e) < 0) return -1;
    for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++) {
        sqlite3_stmt *st = prep(rs, sql[i], e);
        int bad = !st;
        if (!bad && (bind_i64(rs, st, 1, run_id, e) || bind_i64(rs, st, 2, step, e))) {
            sqlite3_finalize(st);
            bad = 1;
        }
        if (!bad && run_done(rs, st, "truncate", e) < 0) bad = 1;  /* run_done finalizes */
        if (bad) {
            exec_sql(rs, "ROLLBACK", NULL);
            return -1;
        }
    }
    return exec_sql(rs, "COMMIT", e);
}
