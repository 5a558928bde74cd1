/* cli/cmd_version.c — `crucible version`: source commit and optional parts built in. */
#include "cli/command.h"

#include <stdio.h>

const char cmd_version_summary[] = "print the source commit and the optional parts built in";

int cmd_version(int argc, char **argv) {
    (void)argc;
    (void)argv;
    printf("crucible %s (%s)\n", crucible_git_commit, crucible_build_features);
    return 0;
}
