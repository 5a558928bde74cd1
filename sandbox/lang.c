/* sandbox/lang.c — the language table (see lang.h). */
#include "sandbox/lang.h"

#include <string.h>
#include <unistd.h>

/* V8 protects its code space with memory protection keys. */
#define RUST_TOOLCHAIN "/root/.rustup/toolchains/stable-x86_64-unknown-linux-gnu"

static const char *const k_node_extra[] = { "pkey_alloc", "pkey_free", "pkey_mprotect", NULL };

static const SandboxLang k_langs[] = {
    { "c", "gcc", "main.c",
      { "/usr/bin/gcc", "-O2", "-std=gnu17", "-pipe", "-o", "main", "main.c", "-lm", NULL },
      { "/box/main", NULL },
      128, 32, 0, 0, NULL, NULL },
    { "cpp", "c++ cxx g++", "main.cpp",
      { "/usr/bin/g++", "-O2", "-std=gnu++17", "-pipe", "-o", "main", "main.cpp", NULL },
      { "/box/main", NULL },
      128, 32, 0, 0, NULL, NULL },
    { "python", "python3 py", "main.py",
      { NULL },
      { "/usr/bin/python3", "-I", "-B", "/box/main.py", NULL },
      256, 32, 1, 1, NULL, NULL },
    { "javascript", "js node", "main.js",
      { NULL },
      { "/usr/bin/node", "--max-old-space-size=" SANDBOX_ARG_MEMORY_MB, "/box/main.js", NULL },
      -1, 64, 0, 0, k_node_extra, NULL },
    /* rustup's toolchain lives outside /usr; only that directory is made visible */
    { "rust", "rs", "main.rs",
      { RUST_TOOLCHAIN "/bin/rustc", "-O", "-o", "main", "main.rs", NULL },
      { "/box/main", NULL },
      128, 32, 0, 0, NULL, RUST_TOOLCHAIN },
};

int sandbox_lang_count(void) { return (int)(sizeof k_langs / sizeof k_langs[0]); }
const SandboxLang *sandbox_lang_at(int i) { return &k_langs[i]; }

static int has_word(const char *list, const char *w) {
    size_t n = strlen(w);
    for (const char *p = list; *p;) {
        while (*p == ' ') p++;
        const char *q = p;
        while (*q && *q != ' ') q++;
        if ((size_t)(q - p) == n && n && strncmp(p, w, n) == 0) return 1;
        p = q;
    }
    return 0;
}

const SandboxLang *sandbox_lang_find(const char *name) {
    if (!name) return NULL;
    for (int i = 0; i < sandbox_lang_count(); i++)
        if (strcmp(k_langs[i].name, name) == 0 || has_word(k_langs[i].aliases, name)) return &k_langs[i];
    return NULL;
}

int sandbox_lang_available(const SandboxLang *l) {
    const char *tool = l->compile_argv[0] ? l->compile_argv[0] : l->run_argv[0];
    if (access(tool, X_OK) != 0) return 0;
    /* A compiled language runs its own binary; an interpreted one needs the interpreter too. */
    return l->run_argv[0][0] == '/' && strncmp(l->run_argv[0], "/box/", 5) != 0
               ? access(l->run_argv[0], X_OK) == 0 : 1;
}
