/* cli/main.c — the `crucible` dispatcher. */
#include "cli/command.h"
#include "model/ops.h"

#include <stdio.h>
#include <string.h>

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} Command;

static const Command k_commands[] = {
#define X(name) {#name, cmd_##name, cmd_##name##_summary},
#include "commands.h"
#undef X
};

static void usage(void) {
    fprintf(stderr, "crucible — post-training for DeepSeek-V2-style MoE code models\n"
                    "usage: crucible COMMAND [flags]   (crucible COMMAND --help for flags)\n\n");
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        fprintf(stderr, "  %-10s %s\n", k_commands[i].name, k_commands[i].summary);
}

int main(int argc, char **argv) {
    /* BLAS kernel choice and OpenMP wait policy are read at load time: may re-exec once. */
    ops_cpu_env_init(argc, argv);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    for (size_t i = 0; i < sizeof k_commands / sizeof k_commands[0]; i++)
        if (!strcmp(argv[1], k_commands[i].name)) return k_commands[i].fn(argc - 2, argv + 2);
    fprintf(stderr, "crucible: unknown command '%s'\n\n", argv[1]);
    usage();
    return 2;
}
