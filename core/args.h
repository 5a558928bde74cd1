/* core/args.h — command-line flags shared by every command.
 * Defines: ArgType, ArgSpec, cr_args_parse, cr_args_usage, CR_ARGS_HELP.
 *
 * Every command takes `--config FILE.json` whose keys equal the long flag names
 * (without the dashes); flags given on the command line override the file.
 * Accepted forms: --name VALUE, --name=VALUE, and for ARG_BOOL a bare --name
 * (or --name=true/false). ARG_STR_LIST flags may repeat and accumulate; in the
 * config file they take a JSON array or a string. Unknown flags, missing values,
 * malformed numbers and unknown config keys are errors naming the flag/key. */
#ifndef CRUCIBLE_CORE_ARGS_H
#define CRUCIBLE_CORE_ARGS_H

#include "core/error.h"

typedef enum ArgType {
    ARG_STR,       /* const char **dest */
    ARG_INT,       /* long *dest */
    ARG_FLOAT,     /* double *dest */
    ARG_BOOL,      /* int *dest (0/1) */
    ARG_STR_LIST,  /* CrStrList *dest */
} ArgType;

typedef struct CrStrList {
    const char **items;
    int n;
} CrStrList;

typedef struct ArgSpec {
    const char *name;   /* long name without dashes; NULL terminates the table */
    ArgType type;
    void *dest;         /* holds the default on entry */
    const char *help;
    int required;
} ArgSpec;

#define CR_ARGS_HELP 1  /* cr_args_parse returned because --help was given (usage printed) */

/* Parse argv[0..argc) (argv[0] is NOT the program name: pass the arguments after the
 * command words). Positional arguments are returned in *pos (malloc'd array of
 * pointers into argv/config, may be NULL when npos is NULL: then positionals are an
 * error). Returns 0, CR_ARGS_HELP, or -1 with e set. Strings stay valid for the life
 * of the process (config file contents are intentionally kept). */
int cr_args_parse(const char *usage_line, const ArgSpec *specs, int argc, char **argv,
                  const char ***pos, int *npos, CrError *e);
void cr_args_usage(const char *usage_line, const ArgSpec *specs);
/* The effective values of every flag as a JSON object (malloc'd text): what a run
 * records as its config. */
char *cr_args_to_json(const ArgSpec *specs);

#endif
