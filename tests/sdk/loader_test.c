/* tests/sdk/loader_test.c — the plugin host refuses every kind of bad plugin with a
 * message naming the file and the reason, and loads a good one. Files that are not whole
 * ELF shared objects, and files or folders others can write, are refused before dlopen:
 * the test process would die of a SIGBUS (or run their constructors) otherwise. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
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
    expect_refused("minor", "needs SDK 1.6, this host provides 1.5");
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

/* TFS_SDK_CAP_INSERT (1.5): refused from an older minor, which cannot have meant it, and
 * without the target capability. */
Test(loader, insert_capability_needs_sdk_1_5_and_a_target)
{
    expect_refused("insert_old", "declares the insert capability, which needs SDK 1.5");
    expect_refused("insert_source",
                   "declares the insert capability without the target capability");
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
    cr_assert(strstr(err.message, "not an ELF file"), "%s", err.message);
    remove(path);
    rmdir(dir);
}

/* ---- files and folders before dlopen ------------------------------------------------ */

static char *temp_dir(void)
{
    char *dir = strdup("/tmp/tfs-loader-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    return dir;
}

static void rm_rf(const char *dir)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "chmod -R u+w %s; rm -rf %s", dir, dir);
    cr_expect_eq(system(cmd), 0);
}

/* good.so copied to dir/name, its first `keep` bytes only when keep > 0, with mode. */
static char *copy_good(const char *dir, const char *name, long keep, mode_t mode)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *in = fopen(path_of("good"), "rb"), *out = fopen(path, "wb");
    cr_assert(in && out);
    char buf[8192];
    size_t n;
    long total = 0;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0) {
        if (keep > 0 && total + (long)n > keep)
            n = (size_t)(keep - total);
        fwrite(buf, 1, n, out);
        total += (long)n;
        if (keep > 0 && total >= keep)
            break;
    }
    fclose(in);
    fclose(out);
    cr_assert_eq(chmod(path, mode), 0);
    return path;
}

static long good_size(void)
{
    struct stat st;
    cr_assert_eq(stat(path_of("good"), &st), 0);
    return (long)st.st_size;
}

/* Refused with the reason, and never mapped: dlopen(RTLD_NOLOAD) does not find it. */
static void expect_file_refused(const char *path, const char *reason)
{
    tfs_plugin *p = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(path, 2026, &p, &err), TFS_EINVAL, "%s was loaded", path);
    cr_assert_null(p);
    cr_assert(strstr(err.message, path), "message names the file: %s", err.message);
    cr_assert(strstr(err.message, reason), "message \"%s\" says \"%s\"", err.message, reason);
    cr_assert_null(dlopen(path, RTLD_NOW | RTLD_NOLOAD), "%s was mapped", path);
}

/* Cut in half, its section headers are past the end; cut to 100 bytes, its program headers;
 * with the section header table taken out of the ELF header, only the segments say it:
 * each is refused naming what ends past the file, where dlopen would have died of a SIGBUS. */
Test(loader, truncated_shared_object_refused_without_mapping_it)
{
    char *dir = temp_dir();
    long size = good_size();
    expect_file_refused(copy_good(dir, "half.so", size / 2, 0644), "truncated: ");
    expect_file_refused(copy_good(dir, "half.so", size / 2, 0644), "section headers end at");
    expect_file_refused(copy_good(dir, "tiny.so", 100, 0644), "program headers end at");
    expect_file_refused(copy_good(dir, "tiny.so", 20, 0644), "shorter than an ELF header");

    char *path = copy_good(dir, "segments.so", size / 2, 0644);
    int fd = open(path, O_RDWR);
    cr_assert(fd >= 0);
    Elf64_Ehdr eh;
    cr_assert_eq(pread(fd, &eh, sizeof eh, 0), (ssize_t)sizeof eh);
    eh.e_shoff = 0;
    eh.e_shnum = 0;
    eh.e_shstrndx = 0;
    cr_assert_eq(pwrite(fd, &eh, sizeof eh, 0), (ssize_t)sizeof eh);
    close(fd);
    expect_file_refused(path, "its segment ");

    /* The whole file, for contrast, loads. */
    tfs_plugin *p = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_load(copy_good(dir, "whole.so", 0, 0755), 2026, &p, &err), 0, "%s",
                 err.message);
    tfs_plugin_free(p, true);
    rm_rf(dir);
    free(dir);
}

Test(loader, file_others_can_write_refused_with_the_chmod_to_do)
{
    char *dir = temp_dir();
    cr_assert_eq(chmod(dir, 0755), 0);
    expect_file_refused(copy_good(dir, "open.so", 0, 0666), "writable by everyone (mode 0666)");
    expect_file_refused(copy_good(dir, "group.so", 0, 0775), "writable by its group");
    expect_file_refused(copy_good(dir, "group.so", 0, 0775), "chmod go-w");

    /* In a folder load: the file is listed refused with the reason, the daemon goes on. */
    char group_so[4096];
    snprintf(group_so, sizeof group_so, "%s/group.so", dir);
    cr_assert_eq(remove(group_so), 0);
    tfs_plugin_host *h = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_host_load_dir(dir, 2026, &h, &err), 0, "%s", err.message);
    cr_assert_eq(h->n, 0);
    cr_assert_eq(h->n_refused, 1);
    cr_assert(strstr(h->refused[0].reason, "chmod go-w"), "%s", h->refused[0].reason);
    tfs_plugin_host_free(h);
    rm_rf(dir);
    free(dir);
}

/* A file someone else owns (root can make one): refused with the chown to do. */
Test(loader, file_owned_by_someone_else_refused)
{
    if (geteuid() != 0)
        cr_skip("needs root to give a file to another user");
    char *dir = temp_dir();
    char *path = copy_good(dir, "foreign.so", 0, 0755);
    cr_assert_eq(chown(path, 4242, 4242), 0);
    expect_file_refused(path, "is owned by uid 4242, not by the daemon's user");
    rm_rf(dir);
    free(dir);
}

/* A plugin_dir everyone can write is refused whole, before any of its files is opened (a
 * good plugin in it is not loaded either: anyone may have put it there); so is one under a
 * folder others can write without the sticky bit. */
Test(loader, world_writable_plugin_dir_refused_before_any_file)
{
    char *dir = temp_dir();
    char *path = strdup(copy_good(dir, "good.so", 0, 0755));
    cr_assert_eq(chmod(dir, 0777), 0);
    tfs_plugin_host *h = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_host_load_dir(dir, 2026, &h, &err), TFS_EINVAL, "loaded from %s",
                 dir);
    cr_assert_null(h);
    cr_assert(strstr(err.message, "refusing to load plugins from"), "%s", err.message);
    cr_assert(strstr(err.message, "writable by everyone (mode 0777); chmod go-w"), "%s",
              err.message);
    cr_assert_null(dlopen(path, RTLD_NOW | RTLD_NOLOAD), "good.so was mapped");

    /* The same folder under one others can write. */
    cr_assert_eq(chmod(dir, 0755), 0);
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/plugins", dir);
    cr_assert_eq(mkdir(sub, 0755), 0);
    cr_assert_eq(chmod(dir, 0777), 0);
    err = (tfs_error){0};
    cr_assert_eq(tfs_plugin_host_load_dir(sub, 2026, &h, &err), TFS_EINVAL);
    cr_assert(strstr(err.message, "directory \""), "%s", err.message);
    cr_assert(strstr(err.message, "chmod go-w"), "%s", err.message);
    /* Sticky (as /tmp is): allowed. */
    cr_assert_eq(chmod(dir, 01777), 0);
    err = (tfs_error){0};
    cr_assert_eq(tfs_plugin_host_load_dir(sub, 2026, &h, &err), 0, "%s", err.message);
    tfs_plugin_host_free(h);
    free(path);
    rm_rf(dir);
    free(dir);
}

Test(loader, directory_loads_good_and_lists_refused)
{
    tfs_plugin_host *h = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_plugin_host_load_dir(TFS_TEST_PLUGIN_DIR, 2026, &h, &err), 0, "%s",
                 err.message);
    cr_assert_eq(h->n, 3, "only the good, the 1.0 and the no-fetch plugins load, got %zu", h->n);
    cr_assert_not_null(tfs_plugin_host_get(h, "good"));
    cr_assert_eq(h->n_refused, 9, "nine refused, got %zu", h->n_refused);
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
