/* data/sft_data.h — supervised fine-tuning datasets (JSONL).
 * Defines: SftExample, SftRole, sft_load, sft_parse, sft_free.
 *
 * Line formats (detected per line):
 *   {"messages":[{"role":"system"|"user"|"assistant","content":"..."}, ...]}
 *       at least one assistant turn (else there is nothing to learn: an error);
 *   {"prompt":"...","completion":"..."}   raw continuation (base-model style);
 *   {"fim_prefix","fim_suffix","fim_middle"}   fill-in-the-middle (PSM order when encoded).
 * Optional provenance on any line (as `crucible ingest` writes): "repo", "commit",
 * "path", "language". Other extra fields are ignored. Turning an example into token ids and a loss mask is
 * data/chat.h (chat_encode_example). Errors: "FILE:LINE: field 'messages[2].role':
 * expected one of system, user, assistant". */
#ifndef CRUCIBLE_DATA_SFT_DATA_H
#define CRUCIBLE_DATA_SFT_DATA_H

#include <stddef.h>
#include "core/error.h"

typedef enum SftRole { SFT_SYSTEM = 0, SFT_USER, SFT_ASSISTANT } SftRole;

typedef struct SftExample {
    int n_messages;     /* > 0 for chat examples, 0 for the other kinds */
    SftRole *roles;
    char **contents;
    char *prompt;       /* prompt/completion examples only, else NULL */
    char *completion;
    char *fim_prefix, *fim_suffix, *fim_middle; /* FIM examples only, else NULL */
    char *repo, *commit, *path;                 /* provenance when given, else NULL */
    int line;           /* source line */
} SftExample;

/* Read PATH (.jsonl or .jsonl.gz). Returns 0 with a malloc'd array (free with sft_free)
 * or -1 with e naming FILE:LINE and the field. An empty file is an error. */
int sft_load(const char *path, SftExample **out, int *n, CrError *e);
int sft_parse(const char *buf, size_t len, const char *name, SftExample **out, int *n, CrError *e);
void sft_free(SftExample *ex, int n);
const char *sft_role_name(SftRole r);

#endif
