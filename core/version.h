/* core/version.h — build facts baked in at compile time (build/gen/version.c, written by
 * the Makefile): the git commit of the Crucible source ("-dirty" when the tree had
 * uncommitted changes) and the optional parts built in. For library code; the CLI
 * declares the same in cli/command.h. */
#ifndef CRUCIBLE_CORE_VERSION_H
#define CRUCIBLE_CORE_VERSION_H

extern const char crucible_git_commit[];
extern const char crucible_build_features[];

#endif
