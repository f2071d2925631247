/* core/validator.h — checking transformed records against the target's described schema.
 *
 * Values produced by a script are loosely typed (a Lua number, a string); the validator
 * coerces each to its field's declared type where that loses nothing (an integral float to
 * an integer, a number to a decimal at the field's scale, a number to text) and refuses the
 * rest. Every problem of a record is reported, not just the first, so an analyst fixes a
 * mapping in one pass.
 */
#ifndef TFS_VALIDATOR_H
#define TFS_VALIDATOR_H

#include <jansson.h>

#include "record.h"

/* Coerces rec in place (new text goes to its arena) and appends one message per problem to
 * reasons (a JSON array): "pardat.adrstr: 61 characters, at most 50". Bookkeeping fields are
 * cleared: the target system sets them. Returns the number of problems (0: valid), or -1
 * when out of memory. */
int tfs_validate_record(tfs_record *rec, json_t *reasons);

#endif
