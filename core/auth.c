/* core/auth.c — API keys and roles; see auth.h. Keys are hashed with GnuTLS's SHA-256 and
 * compared in constant time, every configured key in full, so the time taken says nothing
 * about which key (or which byte) matched. */
#include "auth.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <gnutls/crypto.h>

#define AUTH_MAGIC 0x54465341u /* "TFSA" */

struct tfs_auth {
    unsigned magic;
    tfs_api_key *keys; /* owned copies */
    size_t n;
};

/* ---- roles --------------------------------------------------------------------------- */

int tfs_role_from_name(const char *name)
{
    if (!name)
        return -1;
    if (strcmp(name, "read") == 0)
        return TFS_ROLE_READ;
    if (strcmp(name, "operate") == 0)
        return TFS_ROLE_OPERATE;
    if (strcmp(name, "admin") == 0)
        return TFS_ROLE_ADMIN;
    return -1;
}

const char *tfs_role_name(tfs_role role)
{
    switch (role) {
    case TFS_ROLE_NONE:
        return "none";
    case TFS_ROLE_READ:
        return "read";
    case TFS_ROLE_OPERATE:
        return "operate";
    case TFS_ROLE_ADMIN:
        return "admin";
    }
    return "unknown";
}

/* ---- keys ---------------------------------------------------------------------------- */

static int key_hash(const char *key, size_t len, unsigned char out[32])
{
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, key, len, out) < 0) {
        memset(out, 0, 32);
        return TFS_EIO;
    }
    return 0;
}

void tfs_auth_key_hash(const char *key, unsigned char out[32])
{
    if (!out)
        return;
    if (!key)
        key = "";
    (void)key_hash(key, strlen(key), out);
}

int tfs_auth_new(const tfs_api_key *keys, size_t n, tfs_auth **out, tfs_error *err)
{
    *out = NULL;
    if (n > 0 && !keys)
        return tfs_error_set(err, TFS_EINVAL, "%zu API keys announced but none given", n);
    tfs_auth *a = calloc(1, sizeof *a);
    if (!a || (n > 0 && !(a->keys = calloc(n, sizeof *a->keys)))) {
        free(a);
        return tfs_error_set(err, TFS_ENOMEM, "out of memory");
    }
    a->magic = AUTH_MAGIC;
    for (size_t i = 0; i < n; i++) {
        a->keys[i] = keys[i];
        if (!(a->keys[i].name = strdup(keys[i].name ? keys[i].name : ""))) {
            tfs_auth_free(a);
            return tfs_error_set(err, TFS_ENOMEM, "out of memory");
        }
        a->n++;
    }
    *out = a;
    return 0;
}

void tfs_auth_free(tfs_auth *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free(a->keys[i].name);
    free(a->keys);
    a->magic = 0;
    free(a);
}

/* The configured key whose hash equals the token's, or NULL. Every key is compared in
 * full, whatever matched before, so the time does not depend on where a match is. */
static const tfs_api_key *key_lookup(const tfs_auth *a, const char *token, size_t len)
{
    unsigned char h[32];
    const tfs_api_key *found = NULL;
    if (len == 0 || key_hash(token, len, h) < 0)
        return NULL;
    for (size_t k = 0; k < a->n; k++) {
        unsigned char diff = 0;
        for (size_t i = 0; i < sizeof h; i++)
            diff |= (unsigned char)(h[i] ^ a->keys[k].sha256[i]);
        if (diff == 0 && !found)
            found = &a->keys[k];
    }
    return found;
}

/* The token of "Bearer <token>" (scheme case-insensitive, blanks around), or NULL. */
static const char *bearer_token(const char *header, size_t *len)
{
    if (!header)
        return NULL;
    while (*header == ' ' || *header == '\t')
        header++;
    if (strncasecmp(header, "Bearer", 6) != 0 || (header[6] != ' ' && header[6] != '\t'))
        return NULL;
    const char *t = header + 6;
    while (*t == ' ' || *t == '\t')
        t++;
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    if (n == 0)
        return NULL;
    *len = n;
    return t;
}

tfs_auth_result tfs_auth_check(const tfs_auth *a, const char *authorization, tfs_role min_role,
                               const tfs_api_key **key)
{
    *key = NULL;
    if (min_role <= TFS_ROLE_NONE)
        return TFS_AUTH_OK;
    size_t len = 0;
    const char *token = bearer_token(authorization, &len);
    if (!token)
        return TFS_AUTH_NO_KEY;
    const tfs_api_key *k = a && a->magic == AUTH_MAGIC ? key_lookup(a, token, len) : NULL;
    if (!k)
        return TFS_AUTH_BAD_KEY;
    *key = k;
    return k->role < min_role ? TFS_AUTH_FORBIDDEN : TFS_AUTH_OK;
}
