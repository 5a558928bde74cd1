/* sandbox/lang.h — the language table: one entry per language, no per-language code paths.
 * Defines: SandboxLang, sandbox_lang_find, sandbox_lang_count, sandbox_lang_at.
 *
 * Inside the box the submission directory is /box (the source file `src_name`, and whatever the
 * compile step writes), the run step's working directory is a fresh /work. argv entries are
 * absolute paths inside the box (the box's /usr is the host's, read-only). */
#ifndef CRUCIBLE_SANDBOX_LANG_H
#define CRUCIBLE_SANDBOX_LANG_H

/* A run_argv element ending in this gets the run's memory limit in MB in its place (V8 sizes
 * its heap from a flag, not from the limits it runs under). */
#define SANDBOX_ARG_MEMORY_MB "@MB"

typedef struct SandboxLang {
    const char *name;              /* "c", "cpp", "python", "javascript" */
    const char *aliases;           /* space-separated other names ("c++ cxx") */
    const char *src_name;          /* file name of the source in /box */
    const char *compile_argv[12];  /* NULL-terminated; compile_argv[0] == NULL: no compile step */
    const char *run_argv[10];      /* NULL-terminated */
    long as_headroom_mb;           /* RLIMIT_AS = memory limit + this; < 0: no address-space
                                    * limit (runtimes reserving huge virtual ranges; the cgroup
                                    * limit then bounds memory) */
    int nproc;                     /* processes + threads inside the box */
    int run_allow_fork;            /* the run step may create processes (not only threads) */
    int harness;                   /* assertion tests (test_code/entry_point) supported */
    const char *const *run_extra;  /* extra syscalls for the run step */
    const char *toolchain_dir;     /* a toolchain outside /usr, bound read-only at the same path
                                    * (NULL: none); the language is available only if it exists */
} SandboxLang;

/* By name or alias; NULL when unknown. Does not check that the toolchain exists. */
const SandboxLang *sandbox_lang_find(const char *name);
int sandbox_lang_count(void);
const SandboxLang *sandbox_lang_at(int i);
/* 1 when the language's interpreter/compiler exists on this machine. */
int sandbox_lang_available(const SandboxLang *l);

#endif
