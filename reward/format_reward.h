/* reward/format_reward.h — fenced code blocks: the format reward and the code extractor.
 * Defines: CodeFence, CodeSource, reward_lang_matches, reward_find_fences, reward_extract_code,
 *          reward_format.
 *
 * A fence is a line whose first non-blank characters (at most 3 spaces of indent) are
 * three or more backticks; the rest of that line is the info string, whose first word
 * (lower-cased) names the language. The block ends at the next line that is a fence of
 * at least as many backticks with nothing but blanks after them; a block with no
 * closing fence (a truncated completion) runs to the end of the text and is "open".
 *
 * Language names (task "language" field) and their accepted fence tags:
 *   python: python py python3 | c: c h | cpp: cpp c++ cc cxx hpp | java | javascript: js
 *   javascript node | typescript: ts typescript | rust: rust rs | go: go golang |
 *   bash: bash sh shell; any other language: its own name only. Case-insensitive.
 *
 * Extraction rule (what the trainer sends to the sandbox), in order:
 *   1. the LAST closed block tagged with the task's language (models often sketch
 *      first and give the final answer last; DeepSeek-Coder's chat format ends with it);
 *   2. else the last closed block with no language tag;
 *   3. else the last open (unterminated) block tagged with the language or untagged;
 *   4. else the whole completion (raw: a model that answers with bare code).
 * Blocks tagged with another language are never extracted (e.g. a ```bash usage line).
 * CODE_FIRST instead takes the first block at steps 1-3.
 *
 * Format reward: 1 when the completion has a closed block tagged with the task's
 * language, else 0. */
#ifndef CRUCIBLE_REWARD_FORMAT_REWARD_H
#define CRUCIBLE_REWARD_FORMAT_REWARD_H

#include <stddef.h>

typedef struct CodeFence {
    size_t start, len;  /* body: bytes [start, start+len) of the completion */
    char lang[24];      /* first word of the info string, lower-cased ("" if none) */
    int closed;         /* 1 when a closing fence was found */
} CodeFence;

typedef enum CodeSource { CODE_FROM_LANG_BLOCK, CODE_FROM_PLAIN_BLOCK, CODE_FROM_OPEN_BLOCK, CODE_FROM_RAW } CodeSource;
typedef enum CodePick { CODE_LAST, CODE_FIRST } CodePick;

/* 1 when fence tag `tag` denotes task language `lang` (table above). */
int reward_lang_matches(const char *lang, const char *tag);
/* Find up to max fenced blocks; returns how many exist (may exceed max). */
int reward_find_fences(const char *text, CodeFence *out, int max);
/* The code to judge: a malloc'd NUL-terminated copy (caller frees); *src says which
 * rule applied (may be NULL). Never fails: the raw completion is the fallback. */
char *reward_extract_code(const char *completion, const char *lang, CodePick pick, CodeSource *src);
/* 1.0 or 0.0 (see above). */
double reward_format(const char *completion, const char *lang);

#endif
