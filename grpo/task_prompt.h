/* grpo/task_prompt.h — the token ids a policy is prompted with for a task.
 * Defines: PromptFormat, prompt_format_parse, task_prompt_encode, task_prompt_stops.
 *  PROMPT_CHAT: the Coder-V2-Instruct chat template with one user turn (the task's
 *               prompt) and the generation prompt "Assistant:" (spec §10.4);
 *  PROMPT_RAW:  BOS + the task's program_prefix (HumanEval style code continuation) or,
 *               when it has none, its prompt. */
#ifndef CRUCIBLE_GRPO_TASK_PROMPT_H
#define CRUCIBLE_GRPO_TASK_PROMPT_H

#include "core/error.h"
#include "data/chat.h"
#include "data/tasks.h"

typedef enum PromptFormat { PROMPT_CHAT, PROMPT_RAW } PromptFormat;

int prompt_format_parse(const char *s, PromptFormat *out, CrError *e);
int task_prompt_encode(const Tokenizer *tok, const Task *t, PromptFormat f, TokenSeq *out, CrError *e);
/* Stop strings for sampling a completion of the prompt: with PROMPT_RAW, a Python
 * code-style task (program_prefix + test_code: HumanEval) is a function body to
 * continue, and a base model goes on past it (more functions, tests, prints), so the
 * Codex paper's set is used: "\nclass", "\ndef", "\n#", "\nif", "\nprint" (code at
 * column 0 after the body). Otherwise none (*n = 0, NULL): the model's EOS ends it. */
const char *const *task_prompt_stops(const Task *t, PromptFormat f, int *n);

#endif
