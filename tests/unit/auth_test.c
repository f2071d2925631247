/* tests/unit/auth_test.c — API keys and roles without a server: the Bearer header's forms,
 * every verdict of tfs_auth_check, role order and names, and that keys are copied. */
#include <criterion/criterion.h>
#include <string.h>

#include "auth.h"

static tfs_auth *auth;
static char reader_name[] = "reader";

static void setup(void)
{
    tfs_api_key keys[2] = {{.name = reader_name, .role = TFS_ROLE_READ},
                           {.name = "operator", .role = TFS_ROLE_OPERATE}};
    tfs_auth_key_hash("reader-secret", keys[0].sha256);
    tfs_auth_key_hash("operator-secret", keys[1].sha256);
    tfs_error err = {0};
    cr_assert_eq(tfs_auth_new(keys, 2, &auth, &err), 0, "%s", err.message);
}

static void teardown(void)
{
    tfs_auth_free(auth);
}

TestSuite(auth, .init = setup, .fini = teardown);

Test(auth, key_hash_is_sha256)
{
    static const unsigned char abc[32] = {
        0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40, 0xde, 0x5d, 0xae, 0x22, 0x23,
        0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17, 0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    unsigned char h[32];
    tfs_auth_key_hash("abc", h);
    cr_assert_eq(memcmp(h, abc, 32), 0);
}

Test(auth, no_role_needs_no_key)
{
    const tfs_api_key *k = (const tfs_api_key *)1;
    cr_assert_eq(tfs_auth_check(auth, NULL, TFS_ROLE_NONE, &k), TFS_AUTH_OK);
    cr_assert_null(k);
    cr_assert_eq(tfs_auth_check(auth, "Bearer wrong", TFS_ROLE_NONE, &k), TFS_AUTH_OK,
                 "a key sent to an open route is not looked at");
}

Test(auth, missing_or_malformed_header)
{
    const tfs_api_key *k;
    cr_assert_eq(tfs_auth_check(auth, NULL, TFS_ROLE_READ, &k), TFS_AUTH_NO_KEY);
    cr_assert_eq(tfs_auth_check(auth, "", TFS_ROLE_READ, &k), TFS_AUTH_NO_KEY);
    cr_assert_eq(tfs_auth_check(auth, "Basic cmVhZGVy", TFS_ROLE_READ, &k), TFS_AUTH_NO_KEY);
    cr_assert_eq(tfs_auth_check(auth, "Bearer", TFS_ROLE_READ, &k), TFS_AUTH_NO_KEY);
    cr_assert_eq(tfs_auth_check(auth, "Bearer   ", TFS_ROLE_READ, &k), TFS_AUTH_NO_KEY);
    cr_assert_eq(tfs_auth_check(auth, "Bearerreader-secret", TFS_ROLE_READ, &k),
                 TFS_AUTH_NO_KEY);
    cr_assert_null(k);
}

Test(auth, unknown_key)
{
    const tfs_api_key *k;
    cr_assert_eq(tfs_auth_check(auth, "Bearer reader-secreT", TFS_ROLE_READ, &k),
                 TFS_AUTH_BAD_KEY);
    cr_assert_eq(tfs_auth_check(auth, "Bearer reader-secret2", TFS_ROLE_READ, &k),
                 TFS_AUTH_BAD_KEY, "a longer token is another key");
    cr_assert_null(k);
}

Test(auth, every_byte_of_the_hash_counts)
{
    /* A configured hash that differs from the token's in one byte only, at each end. */
    for (int at = 0; at < 32; at += 31) {
        tfs_api_key near = {.name = "near", .role = TFS_ROLE_ADMIN};
        tfs_auth_key_hash("almost", near.sha256);
        near.sha256[at] ^= 1;
        tfs_auth *a = NULL;
        tfs_error err = {0};
        cr_assert_eq(tfs_auth_new(&near, 1, &a, &err), 0);
        const tfs_api_key *k;
        cr_expect_eq(tfs_auth_check(a, "Bearer almost", TFS_ROLE_READ, &k), TFS_AUTH_BAD_KEY,
                     "byte %d differs", at);
        tfs_auth_free(a);
    }
}

Test(auth, roles_are_ordered)
{
    const tfs_api_key *k;
    cr_assert_eq(tfs_auth_check(auth, "Bearer reader-secret", TFS_ROLE_READ, &k), TFS_AUTH_OK);
    cr_assert_str_eq(k->name, "reader");
    cr_assert_eq(tfs_auth_check(auth, "Bearer reader-secret", TFS_ROLE_OPERATE, &k),
                 TFS_AUTH_FORBIDDEN);
    cr_assert_not_null(k, "the key is given with a refusal, for the message");
    cr_assert_eq(k->role, TFS_ROLE_READ);
    cr_assert_eq(tfs_auth_check(auth, "Bearer operator-secret", TFS_ROLE_READ, &k), TFS_AUTH_OK);
    cr_assert_str_eq(k->name, "operator");
    cr_assert_eq(tfs_auth_check(auth, "Bearer operator-secret", TFS_ROLE_ADMIN, &k),
                 TFS_AUTH_FORBIDDEN);
}

Test(auth, header_forms)
{
    const tfs_api_key *k;
    cr_assert_eq(tfs_auth_check(auth, "bearer reader-secret", TFS_ROLE_READ, &k), TFS_AUTH_OK);
    cr_assert_eq(tfs_auth_check(auth, " \tBEARER \t reader-secret \t", TFS_ROLE_READ, &k),
                 TFS_AUTH_OK, "blanks around the scheme and the token");
}

Test(auth, keys_are_copied)
{
    reader_name[0] = 'X'; /* the caller's key, changed after tfs_auth_new */
    const tfs_api_key *k;
    cr_assert_eq(tfs_auth_check(auth, "Bearer reader-secret", TFS_ROLE_READ, &k), TFS_AUTH_OK);
    cr_assert_str_eq(k->name, "reader");
    reader_name[0] = 'r';
}

Test(auth, no_keys_and_bad_arguments)
{
    tfs_auth *none = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_auth_new(NULL, 0, &none, &err), 0);
    const tfs_api_key *k;
    cr_assert_eq(tfs_auth_check(none, "Bearer reader-secret", TFS_ROLE_READ, &k),
                 TFS_AUTH_BAD_KEY);
    tfs_auth_free(none);
    cr_assert_eq(tfs_auth_new(NULL, 2, &none, &err), TFS_EINVAL);
    cr_assert_null(none);
    cr_assert(strstr(err.message, "2 API keys announced"), "%s", err.message);
    tfs_auth_free(NULL);
}

Test(auth, role_names)
{
    cr_assert_eq(tfs_role_from_name("read"), TFS_ROLE_READ);
    cr_assert_eq(tfs_role_from_name("operate"), TFS_ROLE_OPERATE);
    cr_assert_eq(tfs_role_from_name("admin"), TFS_ROLE_ADMIN);
    cr_assert_eq(tfs_role_from_name("none"), -1, "no key may be given no role");
    cr_assert_eq(tfs_role_from_name(NULL), -1);
    cr_assert_str_eq(tfs_role_name(TFS_ROLE_NONE), "none");
    cr_assert_str_eq(tfs_role_name(TFS_ROLE_ADMIN), "admin");
    cr_assert_str_eq(tfs_role_name((tfs_role)9), "unknown");
}
