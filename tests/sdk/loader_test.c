/* tests/sdk/loader_test.c — the plugin host refuses every kind of bad plugin with a
 * message naming the file and the reason, and loads a good one. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "plugin_host.h"
#include "plugin_private.h" /* what the loader copied of a descriptor */

static char *path_of(const char *name)
{
    static char buf[4096];
    snprintf(buf, sizeof buf, "%s/%s.so", TFS_TEST_PLUGIN_DIR, name);
    return buf;
}

static void expect_refused(const char *name, const char *reason)
{
    tfs_plugin *p = NULL;
    tfs_error err = {0};
    int rc = tfs_plugin_load(path_of(name), 2026, &p, &err);
    cr_assert_eq(rc, TFS_EINVAL, "%s.so should be refused", name);
    cr_assert_null(p);
    cr_assert(strstr(err.message, path_of(name)), "message names the file: %s", err.message);
    cr_assert(strstr(err.message, reason), "message \"%s\" says \"%s\"", err.message, reason);
}

Test(loader, good_plugin_loads)
{
    tfs_plugin *p = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(path_of("good"), 2026, &p, &err), 0, "%s", err.message);
    cr_assert_str_eq(tfs_plugin_get_info(p).name, "good");
    cr_assert_eq(p->desc.n_config_keys, 3);
    cr_assert_eq(p->host.roll_year, 2026);
    tfs_plugin_free(p, true);
}

Test(loader, missing_entry_symbol)
{
    expect_refused("no_entry", "undefined symbol tfs_sdk_entry");
}

Test(loader, other_major_version)
{
    expect_refused("major", "built for SDK major version 2, this host speaks 1");
}

Test(loader, newer_minor_version)
{
    expect_refused("minor", "needs SDK 1.4, this host provides 1.3");
}

Test(loader, older_minor_with_its_own_size_loads)
{
    tfs_plugin *p = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(path_of("old_minor"), 2026, &p, &err), 0, "%s", err.message);
    cr_assert_eq(p->desc.sdk_minor, 0);
    cr_assert_null(p->desc.cb_changes_start, "fields past a 1.0 descriptor read as NULL");
    tfs_plugin_free(p, true);
}

Test(loader, target_without_fetch_declares_it)
{
    tfs_plugin *p = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(path_of("no_fetch"), 2026, &p, &err), 0, "%s", err.message);
    cr_assert(tfs_plugin_get_info(p).capabilities & TFS_SDK_CAP_NO_FETCH);
    tfs_plugin_free(p, true);
    /* the flag is 1.2's: a 1.1 plugin cannot have meant it */
    expect_refused("no_fetch_old", "needs SDK 1.2");
}

Test(loader, bad_struct_size)
{
    expect_refused("size", "struct_size 12");
}

Test(loader, malformed_descriptor)
{
    expect_refused("no_name", "no valid name");
    expect_refused("null_desc", "returned no descriptor");
}

Test(loader, not_a_shared_object)
{
    char dir[] = "/tmp/tfs-loader-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/junk.so", dir);
    FILE *f = fopen(path, "w");
    fputs("not an ELF file", f);
    fclose(f);
    tfs_plugin *p = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(path, 2026, &p, &err), TFS_EINVAL);
    cr_assert(strstr(err.message, "junk.so"), "%s", err.message);
    remove(path);
    rmdir(dir);
}

Test(loader, directory_loads_good_and_lists_refused)
{
    tfs_plugin_host *h = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_host_load_dir(TFS_TEST_PLUGIN_DIR, 2026, &h, &err), 0, "%s",
                 err.message);
    cr_assert_eq(h->n, 3, "only the good, the 1.0 and the no-fetch plugins load, got %zu", h->n);
    cr_assert_not_null(tfs_plugin_host_get(h, "good"));
    cr_assert_eq(h->n_refused, 7, "seven refused, got %zu", h->n_refused);
    tfs_plugin_host_free(h);
}

Test(loader, settings_checked_against_declared_keys)
{
    tfs_plugin *p = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(path_of("good"), 2026, &p, &err), 0);
    char **values = NULL;
    json_t *s = json_pack("{sssi}", "dsn", "x", "limit", 5);
    cr_assert_eq(tfs_plugin_check_settings(p, s, "systems.a.settings", &values, &err), 0);
    cr_assert_str_eq(values[0], "x");
    cr_assert_str_eq(values[1], "5");
    cr_assert_str_eq(values[2], "false", "the default fills in");
    tfs_plugin_values_free(p, values);
    json_decref(s);

    s = json_pack("{ssss}", "dsn", "x", "colour", "red");
    cr_assert_eq(tfs_plugin_check_settings(p, s, "systems.a.settings", &values, &err),
                 TFS_EINVAL);
    cr_assert(strstr(err.message, "systems.a.settings.colour: unknown setting"), "%s",
              err.message);
    json_decref(s);

    s = json_pack("{siss}", "dsn", 3, "limit", "ten");
    cr_assert_eq(tfs_plugin_check_settings(p, s, "systems.a.settings", &values, &err),
                 TFS_EINVAL);
    cr_assert(strstr(err.message, "must be a string") || strstr(err.message, "must be an integer"),
              "%s", err.message);
    json_decref(s);

    s = json_object();
    cr_assert_eq(tfs_plugin_check_settings(p, s, "systems.a.settings", &values, &err),
                 TFS_EINVAL);
    cr_assert(strstr(err.message, "systems.a.settings.dsn: missing"), "%s", err.message);
    json_decref(s);
    tfs_plugin_free(p, true);
}
