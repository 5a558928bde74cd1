/* data/tasks.h — programming-task datasets (JSONL, one task per line), read directly
 * in several public formats. Defines: Task, TaskTest, TaskFormat, tasks_load,
 * tasks_parse, tasks_free, task_format_name.
 *
 * Accepted line formats (detected per line, so files may mix them):
 *  - ours (DESIGN.md §7):   {"id","language","prompt","tests":[{"stdin","stdout"},...]}
 *                        or {"id","language","prompt","test_code","entry_point"}
 *                           optional "solution".
 *  - HumanEval:             {"task_id","prompt","entry_point","canonical_solution","test"}
 *                           -> test_code = test, program_prefix = prompt.
 *  - HumanEval+/MBPP+ (EvalPlus): the HumanEval fields plus "base_input", "plus_input",
 *                           "atol", "contract". EvalPlus's released "test" field already
 *                           embeds the base and plus inputs with their expected outputs,
 *                           so it is used as test_code (when it has no check() function,
 *                           a no-op `def check(candidate)` is appended: its asserts run at
 *                           module level); base_input/plus_input are kept
 *                           as JSON text (plus_input_json) but not judged separately.
 *  - MBPP:                  {"task_id","text","code","test_list","test_setup_code"}
 *                           (or sanitized MBPP: "prompt" and "test_imports"):
 *                           prompt = text + "\nYour code should pass these tests:\n" +
 *                           tests; test_code = setup + asserts at module level + a no-op
 *                           check(candidate), so that it is judged like HumanEval with no
 *                           program_prefix; entry_point = the
 *                           function the first assert calls. challenge_test_list is not used.
 *  - APPS / CodeContests style: {"problem_id"|"id", "question"|"prompt", "input_output"}
 *                           where input_output is an object or a JSON string with
 *                           "inputs"/"outputs" (strings, or arrays of lines joined with
 *                           "\n") -> stdin/stdout tests. With "fn_name" (call-based) the
 *                           cases become Python test_code calling entry_point = fn_name.
 *                           Language defaults to python; "solutions" (first) -> solution.
 *
 * Memory: tasks_load/tasks_parse return a malloc'd array of Tasks owning all their
 * strings; release with tasks_free. Errors name FILE:LINE and the field; the reader
 * never crashes on any input (fuzzed by tests/fuzz/fuzz_tasks.c). */
#ifndef CRUCIBLE_DATA_TASKS_H
#define CRUCIBLE_DATA_TASKS_H

#include <stddef.h>
#include "core/error.h"

typedef enum TaskFormat {
    TASK_FMT_CRUCIBLE = 0,
    TASK_FMT_HUMANEVAL,
    TASK_FMT_EVALPLUS,
    TASK_FMT_MBPP,
    TASK_FMT_APPS,
} TaskFormat;

/* One stdin/stdout case. (Not named stdin/stdout: those are macros in <stdio.h>.) */
typedef struct TaskTest {
    char *stdin_text;   /* "" when the field is absent */
    char *stdout_text;  /* expected output, compared by the judge */
} TaskTest;

typedef struct Task {
    char *id;
    char *language;       /* lower-case, e.g. "python", "c", "cpp" */
    char *prompt;
    TaskTest *tests;      /* stdin/stdout cases; NULL when n_tests == 0 */
    int n_tests;
    char *test_code;      /* code-style test (defines check(candidate)); NULL if none */
    char *entry_point;    /* function under test; NULL if none */
    char *solution;       /* canonical_solution / reference code if given, else NULL */
    char *program_prefix; /* code the completion continues (HumanEval/EvalPlus: the prompt;
                             ours: optional "program_prefix"), else NULL. A code-style task
                             is judged as the program
                               program_prefix + completion + "\n" + test_code +
                               "\ncheck(" + entry_point + ")\n"                          */
    char *plus_input_json;/* EvalPlus plus_input as JSON text, else NULL (informative) */
    TaskFormat format;    /* the format the line was read as */
    int line;             /* line of the source file it came from */
} Task;

/* Read PATH (.jsonl or .jsonl.gz, detected by content). Every task has either tests
 * (n_tests > 0) or test_code (or both). Returns 0 with *out and *n set, or -1 with e set
 * ("FILE:LINE: field 'tests[1].stdout': expected a string, got a number"). Duplicate
 * ids are an error naming both lines. */
int tasks_load(const char *path, Task **out, int *n, CrError *e);
/* The same on a buffer already in memory (name is used in messages). */
int tasks_parse(const char *buf, size_t len, const char *name, Task **out, int *n, CrError *e);
void tasks_free(Task *tasks, int n);
const char *task_format_name(TaskFormat f);

#endif
