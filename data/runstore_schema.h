/* data/runstore_schema.h — ordered schema migrations of the run store (internal to
 * data/runstore.c; documented in docs/runstore.md). */
#ifndef CRUCIBLE_DATA_RUNSTORE_SCHEMA_H
#define CRUCIBLE_DATA_RUNSTORE_SCHEMA_H

extern const char *const runstore_migrations[];
extern const int runstore_n_migrations;

#endif
