/* cli/command.h — one CLI command per file cli/cmd_NAME.c, which defines
 *   int cmd_NAME(int argc, char **argv);   argv[0] is the first argument after NAME
 *   extern const char cmd_NAME_summary[];   one line for `crucible --help`
 * The Makefile collects the files into the dispatcher's table (no central list to edit).
 * Return value is the process exit status: 0 success, 1 runtime failure, 2 usage error. */
#ifndef CRUCIBLE_CLI_COMMAND_H
#define CRUCIBLE_CLI_COMMAND_H

#define X(name) int cmd_##name(int argc, char **argv); extern const char cmd_##name##_summary[];
#include "commands.h"
#undef X

/* Build facts baked in at compile time (build/gen/version.c). */
extern const char crucible_git_commit[];
extern const char crucible_build_features[];

#endif
