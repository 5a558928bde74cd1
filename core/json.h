/* core/json.h — JSON documents that must be an object, with errors that say where.
 * Defines: cr_json_parse_object, cr_json_load_object.
 * The caller owns the returned tree (cJSON_Delete). */
#ifndef CRUCIBLE_CORE_JSON_H
#define CRUCIBLE_CORE_JSON_H

#include <cjson/cJSON.h>

#include "core/error.h"

/* Parse NUL-terminated text; NULL with "NAME: not a JSON object (syntax error near byte N)"
 * when it is not exactly one JSON object. */
cJSON *cr_json_parse_object(const char *text, const char *name, CrError *e);
/* Read PATH and parse it as above (the path names the errors). */
cJSON *cr_json_load_object(const char *path, CrError *e);

#endif
