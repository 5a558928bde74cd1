/* tests/data/test_sft_data.c — SFT JSONL reader: both formats, errors with file:line:field. */
#include "tests/test.h"
#include "data/sft_data.h"

#include <string.h>

TEST(data_sft_parse_both_formats) {
    const char *text =
        "{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"role\":\"assistant\",\"content\":\"hello\"}],\"meta\":{\"x\":1}}\n"
        "{\"prompt\":\"def f():\",\"completion\":\"\\n    return 1\\n\"}\n";
    SftExample *xs; int n; CrError e;
    CHECKF(sft_parse(text, strlen(text), "s.jsonl", &xs, &n, &e) == 0, "%s", e.msg);
    if (FAILED()) return;
    CHECK(n == 2);
    CHECK(xs[0].n_messages == 3 && xs[0].roles[0] == SFT_SYSTEM && xs[0].roles[2] == SFT_ASSISTANT);
    CHECK(strcmp(xs[0].contents[2], "hello") == 0 && xs[0].prompt == NULL);
    CHECK(xs[1].n_messages == 0 && strcmp(xs[1].completion, "\n    return 1\n") == 0 && xs[1].line == 2);
    sft_free(xs, n);
}

TEST(data_sft_errors_name_line_and_field) {
    struct { const char *text, *want; } bad[] = {
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"bot\",\"content\":\"b\"}]}\n",
         "s.jsonl:1: field 'messages[1].role': 'bot' is not one of"},
        {"\n{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}\n", "s.jsonl:2: field 'messages': no assistant turn"},
        {"{\"messages\":[{\"role\":\"assistant\",\"content\":7}]}\n", "s.jsonl:1: field 'messages[0].content': expected a string"},
        {"{\"messages\":{}}\n", "s.jsonl:1: field 'messages': expected an array"},
        {"{\"prompt\":\"p\"}\n", "s.jsonl:1: field 'completion': missing"},
        {"{\"text\":\"p\"}\n", "s.jsonl:1: expected {\"messages\""},
        {"{\"prompt\":\"p\",\"completion\":\"c\"}\n{\"prompt\":\"p\",", "s.jsonl:2: invalid JSON"},
        {"\n\n", "s.jsonl: no examples"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        SftExample *xs; int n; CrError e;
        e.msg[0] = 0;
        CHECKF(sft_parse(bad[i].text, strlen(bad[i].text), "s.jsonl", &xs, &n, &e) < 0, "case %zu accepted", i);
        CHECKF(strstr(e.msg, bad[i].want) != NULL, "case %zu: '%s' lacks '%s'", i, e.msg, bad[i].want);
    }
}
