/* tests/install/install_test.c — what an operator or a vendor gets from `cmake --install`
 * and from the .deb, used the way they would use it: the build installed into a staging
 * prefix, then the installed daemon run with the installed plugins, transforms and example
 * config against the test server (a full PACS→CAMA sync through the installed CLI), the
 * template plugin built from its installed source with `pkg-config --cflags tfsync-sdk`
 * alone and loaded by the installed daemon, the package built by `cpack -G DEB` and read
 * back with dpkg-deb, the unit checked by systemd-analyze (when there), the man pages
 * rendered by groff with its warnings on.
 *
 * Outside tools (cmake --install, cpack, dpkg-deb, cc, pkg-config, groff, systemd-analyze)
 * run against the plain build only: tests/CMakeLists.txt registers this suite only when
 * TFS_SANITIZE is off (label "install").
 */
#define _GNU_SOURCE /* asprintf, memmem */
#include <criterion/criterion.h>

#include <errno.h>
#include <glob.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tfs_test.h"
#include "tfsync_plugin.h"

#define STR_(x) #x
#define STR(x) STR_(x)
#define SDK_VERSION STR(TFS_SDK_VERSION_MAJOR) "." STR(TFS_SDK_VERSION_MINOR)

/* The shipped adapters, as the package must hold them. */
static const char *const shipped[] = {"pacs", "cama", "gis", "erp", "crm"};

/* Runs cmd under sh, its stdout and stderr together into *out (owned; may be NULL).
 * Returns the exit status, or -1 when it did not exit. */
static int run(const char *cmd, char **out)
{
    char *full = NULL;
    cr_assert(asprintf(&full, "(%s) 2>&1", cmd) > 0);
    FILE *p = popen(full, "r");
    cr_assert_not_null(p, "could not run %s: %s", cmd, strerror(errno));
    size_t len = 0, cap = 4096;
    char *buf = malloc(cap);
    cr_assert_not_null(buf);
    size_t n;
    while ((n = fread(buf + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 2) {
            cap *= 2;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
    }
    buf[len] = '\0';
    int st = pclose(p);
    free(full);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs cmd and fails the test with its output unless it exits 0; the output, owned. */
static char *run_ok(const char *cmd)
{
    char *out = NULL;
    int rc = run(cmd, &out);
    cr_assert_eq(rc, 0, "`%s` exited %d:\n%s", cmd, rc, out);
    return out;
}

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* A fresh staging folder with the build installed into it (cmake --install --prefix). */
static void stage(char dir[64])
{
    snprintf(dir, 64, "/tmp/tfs-install-XXXXXX");
    cr_assert_not_null(mkdtemp(dir), "could not make a staging folder");
    /* mkdtemp's 0700 would do; 0755 is what a prefix such as /usr/local looks like. */
    chmod(dir, 0755);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' --install '%s' --prefix '%s'", TFS_TEST_CMAKE,
             TFS_BINARY_DIR, dir);
    free(run_ok(cmd));
}

static void remove_tree(const char *dir)
{
    if (getenv("TFS_TEST_KEEP"))
        return;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
}

/* The installed example config, parsed (owned). */
static json_t *example_config(const char *prefix)
{
    char path[256];
    snprintf(path, sizeof path, "%s/share/doc/tfsync/examples/tfsyncd.json", prefix);
    json_error_t je;
    json_t *cfg = json_load_file(path, 0, &je);
    cr_assert_not_null(cfg, "the example config %s does not parse: %s (line %d)", path, je.text,
                       je.line);
    return cfg;
}

static void write_config(const json_t *cfg, const char *path)
{
    cr_assert_eq(json_dump_file(cfg, path, JSON_INDENT(2)), 0, "could not write %s", path);
}

/* `tfsyncd --version` of the installed daemon names the project's version, the SDK's, and
 * the libraries it runs with as they answer themselves. */
static void expect_version(const char *prefix)
{
    char cmd[256], want[160];
    snprintf(cmd, sizeof cmd, "'%s/sbin/tfsyncd' --version", prefix);
    char *out = run_ok(cmd);
    snprintf(want, sizeof want, "tfsyncd %s\n", TFS_TEST_VERSION);
    cr_expect(strncmp(out, want, strlen(want)) == 0, "--version starts %s, not:\n%s", want, out);
    int pq = PQlibVersion();
    const char *lines[5];
    char l_sdk[32], l_mhd[64], l_pq[32], l_tls[64];
    snprintf(l_sdk, sizeof l_sdk, "\nsdk %s\n", SDK_VERSION);
    snprintf(l_mhd, sizeof l_mhd, "\nlibmicrohttpd %s\n", MHD_get_version());
    snprintf(l_pq, sizeof l_pq, "\nlibpq %d.%d\n", pq / 10000, pq % 10000);
    snprintf(l_tls, sizeof l_tls, "\ngnutls %s\n", gnutls_check_version(NULL));
    lines[0] = l_sdk, lines[1] = l_mhd, lines[2] = l_pq, lines[3] = l_tls;
    lines[4] = "\nlua 5.4.";
    for (int i = 0; i < 5; i++)
        cr_expect_not_null(strstr(out, lines[i]), "--version lacks \"%s\":\n%s", lines[i] + 1,
                           out);
    char l_j[64];
    snprintf(l_j, sizeof l_j, "\njansson %s\n", jansson_version_str());
    cr_expect_not_null(strstr(out, l_j), "--version lacks \"%s\":\n%s", l_j + 1, out);
    free(out);
}

/* The installed daemon, plugins, transforms and CLI, with the example config pointed at the
 * test server, run the demo's full PACS→CAMA sync to succeeded. */
Test(install, installed_daemon_runs_the_demo_sync_with_the_example_config, .timeout = 240)
{
    char prefix[64];
    stage(prefix);
    expect_version(prefix);

    char path[320];
    snprintf(path, sizeof path, "%s/lib/tfsync/plugins/template.so", prefix);
    cr_expect(!exists(path), "the SDK's template plugin is installed among the adapters: %s",
              path);

    /* As installed, it names the installed folders, and passes the offline check. */
    json_t *cfg = example_config(prefix);
    char want[256];
    snprintf(want, sizeof want, "%s/lib/tfsync/plugins", prefix);
    cr_expect_str_eq(json_string_value(json_object_get(cfg, "plugin_dir")), want);
    snprintf(want, sizeof want, "%s/share/tfsync/transforms", prefix);
    cr_expect_str_eq(json_string_value(json_object_get(cfg, "transform_dir")), want);
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "'%s/sbin/tfsyncd' --check --config '%s/share/doc/tfsync/examples/tfsyncd.json'",
             prefix, prefix);
    char *out = run_ok(cmd);
    cr_expect_not_null(strstr(out, "is valid: 2 systems (2 schemas checked offline"), "%s", out);
    cr_expect_not_null(strstr(out, "5 plugins loaded, 0 refused"), "%s", out);
    free(out);

    /* Its shape, pointed at the test server's databases, with keys and a free port. */
    char *pacs = tfs_test_db_clone(TFS_TEST_TMPL_PACS10K, "instpacs");
    char *cama = tfs_test_db_clone(TFS_TEST_TMPL_CAMA, "instcama");
    char *state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "inststate");
    json_t *ref = tfs_test_config_new(pacs, cama, state);
    json_object_set(cfg, "api_keys", json_object_get(ref, "api_keys"));
    json_object_set(cfg, "state", json_object_get(ref, "state"));
    json_t *systems = json_object_get(cfg, "systems");
    json_object_set(json_object_get(systems, "pacs"), "settings",
                    json_object_get(json_object_get(json_object_get(ref, "systems"), "pacs"),
                                    "settings"));
    json_object_set(json_object_get(systems, "cama"), "settings",
                    json_object_get(json_object_get(json_object_get(ref, "systems"), "cama"),
                                    "settings"));
    json_object_set_new(json_object_get(cfg, "listen"), "port", json_integer(0));
    char daemon[128];
    snprintf(daemon, sizeof daemon, "%s/sbin/tfsyncd", prefix);
    setenv("TFS_TEST_TFSYNCD", daemon, 1);
    tfs_test_daemon *d = tfs_test_daemon_start(cfg);

    snprintf(cmd, sizeof cmd,
             "TFSYNC_URL=http://127.0.0.1:%d TFSYNC_KEY=%s '%s/bin/tfsync' sync full "
             "pacs-to-cama --wait",
             d->port, TFS_TEST_KEY_OPERATE, prefix);
    char *cli = NULL;
    int rc = run(cmd, &cli);
    char *log = tfs_test_daemon_log(d);
    cr_assert_eq(rc, 0, "the installed tfsync exited %d:\n%s\ndaemon log:\n%s", rc, cli, log);
    free(log);
    free(cli);

    /* CAMA holds what the SQL twins of the mappings compute from PACS, owners and sales. */
    char *pacs_ci = tfs_test_pg_conninfo(pacs);
    tfs_test_assert_matches_twin(pacs_ci, cama, "pardat", TFS_TEST_PARDAT_COLS,
                                 "pacs_to_cama_pardat.sql");
    tfs_test_assert_matches_twin(pacs_ci, cama, "asmt", TFS_TEST_ASMT_COLS,
                                 "pacs_to_cama_asmt.sql");
    free(pacs_ci);
    char *owndat = tfs_test_pg_scalar(cama, "SELECT count(*) FROM owndat");
    char *sales = tfs_test_pg_scalar(cama, "SELECT count(*) FROM sales");
    cr_expect_gt(atol(owndat), 9000, "owndat has %s rows", owndat);
    cr_expect_gt(atol(sales), 0, "sales has %s rows", sales);
    free(owndat), free(sales);

    int status = tfs_test_daemon_stop_status(d);
    cr_expect_eq(status, 0, "the installed tfsyncd exited %d", status);
    json_decref(ref);
    json_decref(cfg);
    tfs_test_db_drop(pacs), tfs_test_db_drop(cama), tfs_test_db_drop(state);
    free(pacs), free(cama), free(state);
    remove_tree(prefix);
}

/* A vendor with only the installed SDK: the template's installed source builds with the
 * flags of `pkg-config --cflags tfsync-sdk` and nothing else, and the installed daemon loads
 * what it built. So does the template's own CMake file, finding the SDK the same way. */
Test(install, template_builds_against_the_installed_sdk_with_pkg_config_alone, .timeout = 120)
{
    char prefix[64];
    stage(prefix);
    char env[160], cmd[1400];
    snprintf(env, sizeof env, "PKG_CONFIG_PATH='%s/share/pkgconfig'", prefix);

    snprintf(cmd, sizeof cmd, "%s pkg-config --modversion tfsync-sdk", env);
    char *out = run_ok(cmd);
    cr_expect_str_eq(out, SDK_VERSION "\n", "tfsync-sdk.pc says version %s", out);
    free(out);

    snprintf(cmd, sizeof cmd, "mkdir -m 755 '%s/vendor' '%s/vendor/plugins' && "
             "cc $(%s pkg-config --cflags tfsync-sdk) -std=c11 -Wall -Wextra -Werror "
             "-shared -fPIC -fvisibility=hidden -o '%s/vendor/plugins/template.so' "
             "'%s/share/tfsync/sdk/template/template.c'",
             prefix, prefix, env, prefix, prefix);
    free(run_ok(cmd));

    /* The example config with one system on the vendor's plugin, checked offline. */
    json_t *cfg = example_config(prefix);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/vendor/plugins", prefix);
    json_object_set_new(cfg, "plugin_dir", json_string(dir));
    json_object_set_new(cfg, "systems",
                        json_pack("{s{sss{si}}}", "shop", "plugin", "template", "settings",
                                  "rows", 10));
    json_object_set_new(cfg, "pairs", json_array());
    char path[160];
    snprintf(path, sizeof path, "%s/vendor/tfsyncd.json", prefix);
    write_config(cfg, path);
    snprintf(cmd, sizeof cmd, "'%s/sbin/tfsyncd' --check --config '%s'", prefix, path);
    out = run_ok(cmd);
    cr_expect_not_null(strstr(out, "1 system (1 schema checked offline"), "%s", out);
    cr_expect_not_null(strstr(out, "1 plugin loaded, 0 refused"), "%s", out);
    free(out);
    json_decref(cfg);

    snprintf(cmd, sizeof cmd,
             "%s '%s' -S '%s/share/tfsync/sdk/template' -B '%s/vendor/cmake' >/dev/null && "
             "'%s' --build '%s/vendor/cmake' && test -f '%s/vendor/cmake/template.so'",
             env, TFS_TEST_CMAKE, prefix, prefix, TFS_TEST_CMAKE, prefix, prefix);
    free(run_ok(cmd));
    remove_tree(prefix);
}

/* `dpkg-deb --contents` of pkg as one text; fails the test when it cannot be read. */
static char *deb_contents(const char *deb)
{
    char cmd[320];
    snprintf(cmd, sizeof cmd, "dpkg-deb --contents '%s'", deb);
    return run_ok(cmd);
}

static void expect_in_deb(const char *contents, const char *path)
{
    char want[256];
    snprintf(want, sizeof want, " root/root ");
    const char *at = strstr(contents, path);
    cr_expect_not_null(at, "the package lacks %s", path);
    if (at) {
        const char *line = at;
        while (line > contents && line[-1] != '\n')
            line--;
        cr_expect_not_null(memmem(line, (size_t)(at - line), want, strlen(want)),
                           "%s is not owned by root in the package", path);
    }
}

/* cpack -G DEB builds a package whose Depends are the runtime libraries, whose maintainer
 * scripts create the tfsync user and start nothing, and which holds everything installed
 * with the prefix /usr, the adapters but not the template plugin. */
Test(install, deb_package_depends_on_its_libraries_and_creates_the_user, .timeout = 180)
{
    char out_dir[64];
    snprintf(out_dir, sizeof out_dir, "/tmp/tfs-deb-XXXXXX");
    cr_assert_not_null(mkdtemp(out_dir));
    char cmd[700];
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s' -G DEB -B '%s'", TFS_BINARY_DIR, TFS_TEST_CPACK,
             out_dir);
    free(run_ok(cmd));
    char pattern[96];
    snprintf(pattern, sizeof pattern, "%s/tfsync_%s_*.deb", out_dir, TFS_TEST_VERSION);
    glob_t g;
    cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "cpack made no %s", pattern);
    char deb[256];
    snprintf(deb, sizeof deb, "%s", g.gl_pathv[0]);
    globfree(&g);

    snprintf(cmd, sizeof cmd, "dpkg-deb --field '%s' Depends", deb);
    char *depends = run_ok(cmd);
    /* Debian 12's names of the libraries the daemon, the CLI and the adapters link. */
    static const char *const libs[] = {"libc6 ", "libmicrohttpd12 ", "libjansson4 ",
                                       "libpq5 ", "liblua5.4-0 ", "libgnutls30 ",
                                       "libcurl4 ", "libcsv3 "};
    for (size_t i = 0; i < sizeof libs / sizeof *libs; i++)
        cr_expect_not_null(strstr(depends, libs[i]), "Depends lacks %s: %s", libs[i], depends);
    free(depends);

    snprintf(cmd, sizeof cmd, "dpkg-deb --info '%s'", deb);
    char *info = run_ok(cmd);
    cr_expect_not_null(strstr(info, " Package: tfsync\n"), "%s", info);
    static const char *const scripts[] = {"postinst", "prerm", "postrm"};
    for (size_t i = 0; i < 3; i++) {
        char want[64];
        snprintf(want, sizeof want, "   *  %s ", scripts[i]);
        cr_expect_not_null(strstr(info, want), "no executable %s in the package:\n%s",
                           scripts[i], info);
        snprintf(cmd, sizeof cmd, "dpkg-deb --info '%s' %s", deb, scripts[i]);
        char *text = run_ok(cmd);
        /* Valid sh: dpkg runs it with /bin/sh, which may be dash. */
        snprintf(cmd, sizeof cmd, "dpkg-deb --info '%s' %s | sh -n", deb, scripts[i]);
        free(run_ok(cmd));
        cr_expect_null(strstr(text, "systemctl start"), "%s starts the daemon", scripts[i]);
        cr_expect_null(strstr(text, "systemctl enable"), "%s enables the unit", scripts[i]);
        if (i == 0) {
            cr_expect_not_null(strstr(text, "useradd --system"), "postinst:\n%s", text);
            cr_expect_not_null(strstr(text, "systemd-sysusers"), "postinst:\n%s", text);
        }
        free(text);
    }
    free(info);

    char *contents = deb_contents(deb);
    static const char *const files[] = {
        "./usr/sbin/tfsyncd\n", "./usr/bin/tfsync\n",
        "./usr/include/tfsync/tfsync_plugin.h\n", "./usr/share/pkgconfig/tfsync-sdk.pc\n",
        "./usr/lib/systemd/system/tfsyncd.service\n", "./usr/lib/sysusers.d/tfsync.conf\n",
        "./usr/share/man/man8/tfsyncd.8.gz\n",
        "./usr/share/tfsync/transforms/pacs_to_cama.lua\n",
        "./usr/share/tfsync/transforms/lookups/",
        "./usr/share/tfsync/sdk/template/template.c\n",
        "./usr/share/doc/tfsync/examples/tfsyncd.json\n", "./usr/share/doc/tfsync/README.md\n",
        "./usr/share/doc/tfsync/docs/openapi.yaml\n"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        expect_in_deb(contents, files[i]);
    for (size_t i = 0; i < sizeof shipped / sizeof *shipped; i++) {
        char p[96];
        snprintf(p, sizeof p, "./usr/lib/tfsync/plugins/%s.so\n", shipped[i]);
        expect_in_deb(contents, p);
    }
    cr_expect_null(strstr(contents, "template.so"), "the package holds the template plugin");
    /* Every man page the build made is in it. */
    snprintf(pattern, sizeof pattern, "%s/man/*.gz", TFS_BINARY_DIR);
    cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "the build made no man page (%s)", pattern);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *name = strrchr(g.gl_pathv[i], '/') + 1;
        const char *sec = strrchr(name, '.') - 1; /* tfsyncd.8.gz: '8' */
        char p[128];
        snprintf(p, sizeof p, "./usr/share/man/man%c/%s\n", *sec, name);
        expect_in_deb(contents, p);
    }
    globfree(&g);
    free(contents);

    /* With the prefix /usr, the unit and the example name /usr and /etc. */
    snprintf(cmd, sizeof cmd,
             "dpkg-deb --fsys-tarfile '%s' | tar -xO ./usr/lib/systemd/system/tfsyncd.service",
             deb);
    char *unit = run_ok(cmd);
    cr_expect_not_null(strstr(unit, "\nExecStart=/usr/sbin/tfsyncd --config "
                                    "/etc/tfsync/tfsyncd.json\n"), "%s", unit);
    free(unit);
    snprintf(cmd, sizeof cmd,
             "dpkg-deb --fsys-tarfile '%s' | tar -xO ./usr/share/doc/tfsync/examples/tfsyncd.json",
             deb);
    char *example = run_ok(cmd);
    cr_expect_not_null(strstr(example, "\"plugin_dir\": \"/usr/lib/tfsync/plugins\""), "%s",
                       example);
    cr_expect_not_null(strstr(example, "\"transform_dir\": \"/usr/share/tfsync/transforms\""),
                       "%s", example);
    free(example);
    remove_tree(out_dir);
}

/* The unit: Type=notify, the tfsync user, the hardening asked for, reload by SIGHUP; and
 * systemd-analyze verify passes on it as installed, when systemd-analyze is there. */
Test(install, unit_is_hardened_and_verifies, .timeout = 60)
{
    char prefix[64];
    stage(prefix);
    char path[160];
    snprintf(path, sizeof path, "%s/lib/systemd/system/tfsyncd.service", prefix);
    char *unit = tfs_test_read_file(path);
    char exec[256];
    snprintf(exec, sizeof exec, "\nExecStart=%s/sbin/tfsyncd --config %s/etc/tfsync/tfsyncd.json\n",
             prefix, prefix);
    static const char *const lines[] = {
        "\nType=notify\n", "\nUser=tfsync\n", "\nExecReload=/bin/kill -HUP $MAINPID\n",
        "\nProtectSystem=strict\n", "\nNoNewPrivileges=yes\n", "\nPrivateTmp=yes\n",
        "\nProtectHome=yes\n", "\nStateDirectory=tfsync\n", "\nCapabilityBoundingSet=\n",
        "\nRestrictAddressFamilies=AF_UNIX AF_INET AF_INET6\n",
        "\nSystemCallFilter=@system-service\n"};
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        cr_expect_not_null(strstr(unit, lines[i]), "the unit lacks %s", lines[i] + 1);
    cr_expect_not_null(strstr(unit, exec), "the unit lacks %s:\n%s", exec + 1, unit);
    free(unit);

    if (run("command -v systemd-analyze", NULL) != 0) {
        cr_log_warn("systemd-analyze is not installed: the unit was not verified by it");
    } else {
        /* Its Documentation= names man:tfsyncd(8): the installed one. */
        char cmd[400], *out = NULL;
        snprintf(cmd, sizeof cmd, "MANPATH='%s/share/man' systemd-analyze verify '%s'", prefix,
                 path);
        int rc = run(cmd, &out);
        cr_expect_eq(rc, 0, "systemd-analyze verify exited %d:\n%s", rc, out);
        cr_expect_str_empty(out, "systemd-analyze verify warns:\n%s", out);
        free(out);
    }
    remove_tree(prefix);
}

/* Every man page the build made renders with groff's warnings on and none given, is
 * installed compressed, and tfsyncd's page names every option of `tfsyncd --help`. */
Test(install, man_pages_build_render_and_name_every_option, .timeout = 60)
{
    char prefix[64];
    stage(prefix);
    char pattern[160];
    snprintf(pattern, sizeof pattern, "%s/man/*.[0-9]", TFS_BINARY_DIR);
    glob_t g;
    cr_assert_eq(glob(pattern, 0, NULL, &g), 0, "the build made no man page (%s)", pattern);
    int saw_tfsyncd = 0;
    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *page = g.gl_pathv[i], *name = strrchr(page, '/') + 1;
        char cmd[400], *out = NULL;
        snprintf(cmd, sizeof cmd, "groff -man -Tutf8 -ww -z '%s'", page);
        int rc = run(cmd, &out);
        cr_expect_eq(rc, 0, "groff on %s exited %d:\n%s", name, rc, out);
        cr_expect_str_empty(out, "groff warns on %s:\n%s", name, out);
        free(out);
        char inst[256];
        snprintf(inst, sizeof inst, "%s/share/man/man%c/%s.gz", prefix, name[strlen(name) - 1],
                 name);
        cr_expect(exists(inst), "%s is not installed as %s", name, inst);
        if (strcmp(name, "tfsyncd.8") == 0)
            saw_tfsyncd = 1;
    }
    globfree(&g);
    cr_assert(saw_tfsyncd, "no tfsyncd.8 among the man pages built");

    char cmd[400];
    snprintf(cmd, sizeof cmd, "groff -man -Tutf8 -P-cbou '%s/man/tfsyncd.8'", TFS_BINARY_DIR);
    char *page = run_ok(cmd);
    snprintf(cmd, sizeof cmd, "'%s/tfsyncd' --help", TFS_BINARY_DIR);
    char *help = run_ok(cmd);
    for (char *p = help; (p = strstr(p, "--")) != NULL; p += 2) {
        char opt[32];
        if (sscanf(p, "%31[-a-z]", opt) != 1 || strlen(opt) < 3)
            continue;
        cr_expect_not_null(strstr(page, opt), "tfsyncd.8 does not describe %s", opt);
    }
    free(help);
    free(page);
    remove_tree(prefix);
}
