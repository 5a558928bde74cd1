/* tests/model/test_config_roundtrip.c — the fuzz_config property on the committed seeds
 * (including the inputs the fuzzer once broke: absent num_key_value_heads, negative
 * n_group, rope_theta beyond fp32, 3.7e8 layers): each file is either refused with a
 * message naming the field, or parses to a config whose JSON form parses back identically
 * and quickly. */
#include "tests/test.h"
#include "core/alloc.h"
#include "core/file.h"
#include "model/config.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

TEST(model_config_fuzz_seeds_round_trip) {
    const char *dir = "tests/fuzz/seeds/fuzz_config";
    DIR *d = opendir(dir);
    CHECKF(d, "cannot open %s", dir);
    if (!d) return;
    int n = 0, refused = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        char *p = cr_path_join(dir, de->d_name);
        CrError e;
        char *text = cr_read_file(p, NULL, &e);
        CHECKF(text, "%s", e.msg);
        ModelConfig c, r;
        if (text && model_config_parse(&c, text, de->d_name, &e) == 0) {
            char *js = model_config_to_json(&c);
            CHECKF(model_config_parse(&r, js, "round trip", &e) == 0 && memcmp(&c, &r, sizeof c) == 0,
                   "%s does not round trip: %s", de->d_name, e.msg);
            free(js);
        } else if (text) {
            refused++;
            CHECKF(strstr(e.msg, "field") || strstr(e.msg, "JSON"), "%s: unhelpful error: %s", de->d_name, e.msg);
            if (strstr(de->d_name, "regress_") && !strstr(de->d_name, "kv_heads"))
                CHECKF(strstr(e.msg, "n_group") || strstr(e.msg, "rope_theta") || strstr(e.msg, "num_hidden_layers"),
                       "%s: %s", de->d_name, e.msg);
        }
        n++;
        free(text);
        free(p);
    }
    closedir(d);
    CHECK(n >= 7 && refused >= 3);
}
