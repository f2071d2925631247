/* core/auth.h — API keys and roles: who may call which route.
 *
 * A key is configured by its SHA-256 only (config: api_keys[].sha256) and comes in as
 * "Authorization: Bearer <key>"; it is hashed and compared with every configured hash in
 * constant time. Roles are ordered: a route's minimum role admits every role above it.
 * Nothing here knows HTTP beyond the header's text: the server (http.c) turns the verdicts
 * into 401 and 403 problems.
 */
#ifndef TFS_AUTH_H
#define TFS_AUTH_H

#include <stddef.h>

#include "error.h"

typedef enum tfs_role {
    TFS_ROLE_NONE = 0, /* no key needed (only /health) */
    TFS_ROLE_READ = 1,
    TFS_ROLE_OPERATE = 2,
    TFS_ROLE_ADMIN = 3,
} tfs_role;

/* "read", "operate", "admin" -> role, or -1 (NULL, "none" and anything else). */
int tfs_role_from_name(const char *name);
/* The role's name ("none" for TFS_ROLE_NONE, "unknown" outside the enum); static. */
const char *tfs_role_name(tfs_role role);

typedef struct tfs_api_key {
    char *name;               /* the actor in the audit trail */
    tfs_role role;
    unsigned char sha256[32]; /* SHA-256 of the key; the key itself is never stored */
} tfs_api_key;

/* SHA-256 of a NUL-terminated key (NULL hashes as ""), for config checks and tests. On a
 * hashing failure out is zeroed, which matches no configured key. */
void tfs_auth_key_hash(const char *key, unsigned char out[32]);

/* The configured keys, copied: the config need not outlive it. */
typedef struct tfs_auth tfs_auth;

/* Copies n keys (names duplicated). keys may be NULL when n is 0 (then every route that
 * needs a role refuses). *out is owned (tfs_auth_free). 0, TFS_EINVAL or TFS_ENOMEM. */
int tfs_auth_new(const tfs_api_key *keys, size_t n, tfs_auth **out, tfs_error *err);
/* Frees the copies; accepts NULL. */
void tfs_auth_free(tfs_auth *a);

typedef enum tfs_auth_result {
    TFS_AUTH_OK = 0,    /* a configured key with at least the role (or no role needed) */
    TFS_AUTH_NO_KEY,    /* no "Bearer <token>" in the header: 401 */
    TFS_AUTH_BAD_KEY,   /* a token that is none of the configured keys: 401 */
    TFS_AUTH_FORBIDDEN, /* a configured key whose role is too small: 403 */
} tfs_auth_result;

/* Checks an Authorization header value (NULL: none sent) against min_role. *key gets the
 * matching configured key (borrowed from a, valid until tfs_auth_free) with TFS_AUTH_OK
 * and TFS_AUTH_FORBIDDEN, NULL otherwise and when min_role is TFS_ROLE_NONE (no key is
 * looked at then). Safe from several threads at once. */
tfs_auth_result tfs_auth_check(const tfs_auth *a, const char *authorization, tfs_role min_role,
                               const tfs_api_key **key);

#endif
