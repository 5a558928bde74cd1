/* core/json.c — see json.h */
#include "core/json.h"
#include "core/file.h"

#include <stdlib.h>

cJSON *cr_json_parse_object(const char *text, const char *name, CrError *e) {
    const char *ep = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &ep, 1);
    if (root && cJSON_IsObject(root)) return root;
    long off = root ? 0 : (ep ? (long)(ep - text) : 0);
    cJSON_Delete(root);
    cr_error_set(e, "%s: not a JSON object (syntax error near byte %ld)", name, off);
    return NULL;
}

cJSON *cr_json_load_object(const char *path, CrError *e) {
    char *text = cr_read_file(path, NULL, e);
    if (!text) return NULL;
    cJSON *root = cr_json_parse_object(text, path, e);
    free(text);
    return root;
}
