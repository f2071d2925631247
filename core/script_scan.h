/* core/script_scan.h — the fields a transform script's text sets on each target entity's
 * records, read without running it, for tfsyncd --check.
 *
 * A script maps a record by returning tables keyed by target entity; the shipped ones
 * build each record as a table constructor bound to the entity's name, either in place
 * (`return { roll_owner = { prop_id = ..., ... } }`) or in a variable of that name
 * (`local pardat = { parid = ..., ... }` ... `return { pardat = pardat }`), and may add
 * fields later (`pardat.zoning = ...`). Those are what is read: the Lua text is tokenised
 * (comments, short and long strings skipped) and the named fields of every constructor
 * bound to a target entity's name, of the anonymous constructors listed directly in one
 * (`sales = { {...}, {...} }`) and of `<entity>.<field> =` assignments are reported with
 * their line. A record built any other way (a field name computed at run time, a table
 * under another name) is not seen: the run, or POST /transforms/{name}/test, finds those.
 */
#ifndef TFS_SCRIPT_SCAN_H
#define TFS_SCRIPT_SCAN_H

#include <stddef.h>

/* Called once per field found: the index into names of the entity, the field's name
 * (len bytes, not NUL-terminated; borrowed for the call) and its line (from 1). */
typedef void (*tfs_script_field_fn)(void *ctx, size_t entity, const char *field, size_t len,
                                    int line);

/* Scans text (len bytes) for the fields set on records of the entities names[0..n-1].
 * Returns how many fields it reported. Never fails: text it cannot tokenise (an
 * unfinished string) ends the scan there, and loading the script reports that. */
size_t tfs_script_scan(const char *text, size_t len, const char *const *names, size_t n,
                       tfs_script_field_fn fn, void *ctx);

#endif
