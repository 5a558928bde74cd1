/* tests/cli/test_device_cli.c — `--device` on every model-running command, run as the
 * built binary: every --help lists it; an unknown value and (without a GPU) cuda fail
 * with a non-zero exit and a message naming the flag; --device cpu gives the same bytes
 * as the default (auto, which is the CPU on a machine without a GPU) for init, score and
 * short sft and grpo runs. */
#include "tests/test.h"
#include "tests/util.h"
#include "core/alloc.h"
#include "core/file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* `crucible ARGS` with stdout and stderr together; exit status, output (malloc'd). */
static int run_all(const char *args, char **out) {
    size_t n = strlen(args) + 256;
    char *cmd = cr_malloc(n);
    snprintf(cmd, n, "%s %s 2>&1", test_crucible_bin(), args);
    FILE *f = popen(cmd, "r");
    if (!f) CR_DIE("popen");
    size_t cap = 1 << 14, len = 0, r;
    char *buf = cr_malloc(cap);
    while ((r = fread(buf + len, 1, cap - len - 1, f)) > 0) {
        len += r;
        if (len + 1 >= cap) buf = cr_realloc(buf, cap *= 2);
    }
    buf[len] = 0;
    int st = pclose(f);
    free(cmd);
    *out = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* The commands that run the model, each with the arguments it needs to reach the
 * device choice (%s = the temporary directory holding model/). */
static const char *const k_cmds[] = {
    "init --config configs/tiny/model.json --out %s/init_out",
    "score --model %s/model --tokens %s/none.json",
    "sample --model %s/model --prompts %s/none.jsonl -n 1",
    "sft --model %s/model --data %s/none.jsonl --out %s/sft_out",
    "grpo --model %s/model --tasks %s/none.jsonl --out %s/grpo_out --sandbox-workers 1",
    "eval --model %s/model --tasks %s/none.jsonl --workers 1",
    "rm train --db %s/none.db --model %s/model --out %s/rm_out",
    "rm score --rm %s/model --data %s/none.jsonl",
};
enum { N_CMDS = sizeof k_cmds / sizeof k_cmds[0] };

static void cmd_line(char *buf, size_t cap, int i, const char *d, const char *device) {
    char base[1024];
    snprintf(base, sizeof base, k_cmds[i], d, d, d);
    snprintf(buf, cap, "%s --device %s", base, device);
}

TEST(cli_device_flag_in_every_help) {
    const char *help[] = {"init", "score", "sample", "sft", "grpo", "eval", "rm train", "rm score"};
    for (size_t i = 0; i < sizeof help / sizeof help[0]; i++) {
        char args[128], *out;
        snprintf(args, sizeof args, "%s --help", help[i]);
        int st = run_all(args, &out);
        CHECKF(st == 0, "crucible %s --help exited %d", help[i], st);
        CHECKF(strstr(out, "--device") != NULL, "crucible %s --help does not list --device", help[i]);
        free(out);
    }
}

TEST(cli_device_bad_values_fail_naming_the_flag) {
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 1) == 0);
    if (FAILED()) return;
    int gpu = test_gpu_visible();
    for (int i = 0; i < N_CMDS; i++) {
        char args[2048], *out;
        cmd_line(args, sizeof args, i, d, "bogus");
        int st = run_all(args, &out);
        CHECKF(st != 0, "`crucible %s` exited 0", args);
        CHECKF(strstr(out, "--device") && strstr(out, "bogus"), "`crucible %s`: %s", args, out);
        free(out);
        if (gpu) continue;  /* cuda is available there: the no-GPU error cannot happen */
        cmd_line(args, sizeof args, i, d, "cuda");
        st = run_all(args, &out);
        CHECKF(st != 0, "`crucible %s` exited 0 without a GPU", args);
        CHECKF(strstr(out, "--device cuda") != NULL, "`crucible %s`: %s", args, out);
        free(out);
    }
    /* the same through --config's "device" key */
    char *cp = cr_path_join(d, "flags.json");
    CrError e;
    CHECK(cr_write_file_atomic(cp, "{\"device\": \"bogus\"}", 19, &e) == 0);
    char args[2048], *out;
    snprintf(args, sizeof args, "score --config %s --model %s/model --tokens %s/none.json", cp, d, d);
    CHECK(run_all(args, &out) != 0);
    CHECKF(strstr(out, "--device") && strstr(out, "bogus"), "--config {\"device\": \"bogus\"}: %s", out);
    free(out);
    free(cp);
    /* nothing was written by the refused runs */
    char p[1100];
    snprintf(p, sizeof p, "%s/init_out", d);
    CHECK(!cr_file_exists(p));
    snprintf(p, sizeof p, "%s/sft_out/run.db", d);
    CHECK(!cr_file_exists(p));
    if (gpu) SKIP("a CUDA device is visible: --device cuda's no-GPU error was not checked (bogus values were)");
}

TEST(cli_device_cpu_equals_default) {
    if (test_gpu_visible()) SKIP("a CUDA device is visible: the default (auto) is cuda there, not compared with cpu");
    char *d = test_tmpdir();
    CHECK(test_make_tiny_model(d, 2) == 0);
    if (FAILED()) return;
    const char *bin = test_crucible_bin();
    /* init: the same checkpoint bytes */
    CHECK(test_run("env -u CRUCIBLE_DEVICE %s init --config configs/tiny/model.json --out %s/i_auto --seed 3 >/dev/null",
                   bin, d) == 0);
    CHECK(test_run("%s init --config configs/tiny/model.json --out %s/i_cpu --seed 3 --device cpu >/dev/null", bin, d) == 0);
    char a[1100], b[1100];
    snprintf(a, sizeof a, "%s/i_auto/model.safetensors", d);
    snprintf(b, sizeof b, "%s/i_cpu/model.safetensors", d);
    CHECK(test_same_file(a, b));
    /* score: the same stdout */
    char *tp = cr_path_join(d, "seqs.json");
    const char *seqs = "{\"sequences\": [[1, 7, 9, 12, 4], [3, 3, 8]]}";
    CrError e;
    CHECK(cr_write_file_atomic(tp, seqs, strlen(seqs), &e) == 0);
    CHECK(test_run("env -u CRUCIBLE_DEVICE %s score --model %s/model --tokens %s >%s/s_auto.json", bin, d, tp, d) == 0);
    CHECK(test_run("%s score --model %s/model --tokens %s --device cpu >%s/s_cpu.json", bin, d, tp, d) == 0);
    snprintf(a, sizeof a, "%s/s_auto.json", d);
    snprintf(b, sizeof b, "%s/s_cpu.json", d);
    CHECK(test_same_file(a, b));
    char *cp = cr_path_join(d, "flags.json");
    CHECK(cr_write_file_atomic(cp, "{\"device\": \"cpu\"}", 17, &e) == 0);
    CHECK(test_run("env -u CRUCIBLE_DEVICE %s score --config %s --model %s/model --tokens %s >%s/s_cfg.json", bin, cp, d,
                   tp, d) == 0);
    snprintf(b, sizeof b, "%s/s_cfg.json", d);
    CHECK(test_same_file(a, b));
    free(cp);
    /* sft: three optimizer steps, the same final weights; the log names the device */
#define SFT "--data configs/tiny/sft.jsonl --batch-tokens 256 --lr 3e-3 --max-steps 3 --seed 1"
    CHECK(test_run("env -u CRUCIBLE_DEVICE %s sft --model %s/model --out %s/t_auto " SFT " 2>%s/t_auto.log", bin, d, d,
                   d) == 0);
    CHECK(test_run("%s sft --model %s/model --out %s/t_cpu " SFT " --device cpu 2>%s/t_cpu.log", bin, d, d, d) == 0);
    snprintf(a, sizeof a, "%s/t_auto/final/model.safetensors", d);
    snprintf(b, sizeof b, "%s/t_cpu/final/model.safetensors", d);
    CHECK(test_same_file(a, b));
    snprintf(a, sizeof a, "%s/t_auto/final/optimizer.safetensors", d);
    snprintf(b, sizeof b, "%s/t_cpu/final/optimizer.safetensors", d);
    CHECK(test_same_file(a, b));
    snprintf(a, sizeof a, "%s/t_auto.log", d);
    char *log = cr_read_file(a, NULL, &e);
    CHECKF(log && strstr(log, "sft: device cpu"), "auto on a machine without a GPU did not pick cpu: %s", log ? log : "");
    free(log);
    /* grpo: two steps with the KL term and mu = 2, the same final weights */
    char tasks[1100];
    snprintf(tasks, sizeof tasks, "%s/tasks.jsonl", d);
    CHECK(test_make_eos_happy(d) == 0 && test_write_comment_tasks(tasks, 3) == 0);
#define GRPO "--steps 2 --group 2 --prompts-per-step 2 --max-new-tokens 3 --lr 1e-3 --beta 0.04 --mu 2 " \
             "--sandbox-workers 1 --seed 2"
    CHECK(test_run("env -u CRUCIBLE_DEVICE %s grpo --model %s/model --tasks %s --out %s/g_auto " GRPO " 2>%s/g_auto.log",
                   bin, d, tasks, d, d) == 0);
    CHECK(test_run("%s grpo --model %s/model --tasks %s --out %s/g_cpu " GRPO " --device cpu 2>%s/g_cpu.log", bin, d,
                   tasks, d, d) == 0);
    snprintf(a, sizeof a, "%s/g_auto/final/model.safetensors", d);
    snprintf(b, sizeof b, "%s/g_cpu/final/model.safetensors", d);
    CHECK(test_same_file(a, b));
    snprintf(a, sizeof a, "%s/g_auto.log", d);
    log = cr_read_file(a, NULL, &e);
    CHECKF(log && strstr(log, "grpo: device cpu"), "%s", log ? log : "");
    free(log);
    free(tp);
}
