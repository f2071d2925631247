/* tests/sdk/check_test.c — tfsyncd --check checks offline.
 *
 * The real daemon is run with --check on a config whose PACS, CAMA and state store point at
 * a loopback port where a socket listens and never accepts: a connection attempt would
 * stay pending there (and hang until connect_timeout). Each test asserts the exit code,
 * what --check says and that nothing connected: no connection is pending on that socket
 * and the check returned well before the 5 s connect_timeout. The daemon's start-up runs
 * the same settings checks, before it connects to anything.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "tfs_test.h"

typedef struct check_env {
    int listen_fd; /* listens, never accepts: the place every conninfo points at */
    int port;
    char dir[64];
    json_t *cfg;
} check_env;

typedef struct check_result {
    int status; /* exit code */
    char *out, *err;
    long long ms;
    int connected; /* a connection reached the listening socket */
} check_result;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void env_init(check_env *e)
{
    memset(e, 0, sizeof *e);
    e->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(e->listen_fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(e->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(e->listen_fd, 16), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(e->listen_fd, (struct sockaddr *)&a, &len), 0);
    e->port = ntohs(a.sin_port);
    fcntl(e->listen_fd, F_SETFL, O_NONBLOCK);
    snprintf(e->dir, sizeof e->dir, "/tmp/tfs-check-XXXXXX");
    cr_assert(mkdtemp(e->dir));
    char ci[3][160];
    const char *db[] = {"pacs", "cama", "state"};
    for (int i = 0; i < 3; i++)
        snprintf(ci[i], sizeof ci[i], "host=127.0.0.1 port=%d dbname=%s user=tfsync "
                 "sslmode=disable", e->port, db[i]);
    e->cfg = json_pack(
        "{s:{s:s, s:i}, s:{s:s}, s:s, s:s, s:i, s:i,"
        " s:{s:{s:s, s:{s:s}}, s:{s:s, s:{s:s}}, s:{s:s, s:{}}},"
        " s:[{s:s, s:s, s:s, s:[{s:s, s:[s, s], s:s}]}]}",
        "listen", "address", "127.0.0.1", "port", 0, "state", "conninfo", ci[2], "plugin_dir",
        TFS_TEST_PLUGINS_WITH_TEMPLATE, "transform_dir", TFS_SOURCE_DIR "/transforms", "roll_year", 2026,
        "workers", 1, "systems", "pacs", "plugin", "pacs", "settings", "conninfo", ci[0],
        "cama", "plugin", "cama", "settings", "conninfo", ci[1], "tpl", "plugin", "template",
        "settings", "pairs", "name", "pacs-to-cama", "source", "pacs", "target", "cama",
        "entities", "source", "property", "targets", "pardat", "asmt", "script",
        "pacs_to_cama.lua");
    cr_assert_not_null(e->cfg);
}

static void env_free(check_env *e)
{
    close(e->listen_fd);
    json_decref(e->cfg);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", e->dir);
    cr_expect_eq(system(cmd), 0);
}

static json_t *pair0(check_env *e)
{
    return json_array_get(json_object_get(e->cfg, "pairs"), 0);
}

static json_t *settings_of(check_env *e, const char *system)
{
    return json_object_get(json_object_get(json_object_get(e->cfg, "systems"), system),
                           "settings");
}

/* Runs tfsyncd on the env's config, with --check or not; the result is owned
 * (check_result_free). */
static check_result run_daemon(check_env *e, int check)
{
    check_result r = {0};
    char cfg_path[128], out_path[128], err_path[128];
    snprintf(cfg_path, sizeof cfg_path, "%s/tfsync.json", e->dir);
    snprintf(out_path, sizeof out_path, "%s/out", e->dir);
    snprintf(err_path, sizeof err_path, "%s/err", e->dir);
    cr_assert_eq(json_dump_file(e->cfg, cfg_path, JSON_INDENT(2)), 0);
    long long t0 = now_ms();
    pid_t pid = fork();
    cr_assert(pid >= 0);
    if (pid == 0) {
        int o = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int x = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        dup2(o, 1);
        dup2(x, 2);
        execl(TFS_BINARY_DIR "/tfsyncd", "tfsyncd", "--config", cfg_path,
              check ? "--check" : (char *)NULL, (char *)NULL);
        _exit(127);
    }
    int st = 0;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    r.ms = now_ms() - t0;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.out = tfs_test_read_file(out_path);
    r.err = tfs_test_read_file(err_path);
    int c = accept(e->listen_fd, NULL, NULL);
    r.connected = c >= 0;
    if (c >= 0)
        close(c);
    else
        cr_assert(errno == EAGAIN || errno == EWOULDBLOCK, "accept: %s", strerror(errno));
    return r;
}

static check_result run_check(check_env *e)
{
    return run_daemon(e, 1);
}

static void check_result_free(check_result *r)
{
    free(r->out);
    free(r->err);
}

/* Nothing connected, and the check did not wait for any connect_timeout. */
static void expect_offline(const check_result *r)
{
    cr_expect_not(r->connected, "--check connected to the systems' port");
    cr_expect_lt(r->ms, 3000, "--check took %lld ms (a connect_timeout is 5 s)", r->ms);
}

Test(check, valid_config_reads_the_lazy_schemas_offline, .timeout = 60)
{
    check_env e;
    env_init(&e);
    check_result r = run_check(&e);
    cr_expect_eq(r.status, 0, "exit %d\nstdout: %s\nstderr: %s", r.status, r.out, r.err);
    cr_expect(strstr(r.out, "is valid: 3 systems (3 schemas checked offline, 0 not), 1 pair "
                            "(1 checked against a schema)"),
              "%s", r.out);
    expect_offline(&r);
    fprintf(stderr, "check: a valid config in %lld ms\n", r.ms);
    check_result_free(&r);
    env_free(&e);
}

/* The pair names something a schema lacks: refused offline with the path and what
 * exists. */
static void expect_refused(check_env *e, const char *path_msg, const char *hint)
{
    check_result r = run_check(e);
    cr_expect_neq(r.status, 0, "a bad pair passed --check: %s", r.out);
    cr_expect(strstr(r.err, path_msg), "stderr lacks '%s':\n%s", path_msg, r.err);
    if (hint)
        cr_expect(strstr(r.err, hint), "stderr lacks the hint '%s':\n%s", hint, r.err);
    cr_expect_not(strstr(r.out, "is valid"), "%s", r.out);
    expect_offline(&r);
    check_result_free(&r);
}

Test(check, unknown_target_entity_is_refused_with_its_path, .timeout = 60)
{
    check_env e;
    env_init(&e);
    json_t *targets = json_object_get(json_array_get(json_object_get(pair0(&e), "entities"), 0),
                                      "targets");
    json_array_set_new(targets, 1, json_string("asmnt"));
    expect_refused(&e, "pairs[0].entities[0].targets[1]: target system \"cama\" has no "
                       "entity \"asmnt\"",
                   "system \"cama\" describes: pardat, asmt, owndat, sales");
    env_free(&e);
}

Test(check, unknown_source_entity_is_refused_with_its_path, .timeout = 60)
{
    check_env e;
    env_init(&e);
    json_object_set_new(json_array_get(json_object_get(pair0(&e), "entities"), 0), "source",
                        json_string("parcel"));
    expect_refused(&e, "pairs[0].entities[0].source: source system \"pacs\" has no entity "
                       "\"parcel\"",
                   "system \"pacs\" describes: property");
    env_free(&e);
}

Test(check, unknown_rule_field_is_refused_with_its_path, .timeout = 60)
{
    check_env e;
    env_init(&e);
    json_t *rules = json_pack("{s:[{s:s, s:b}, {s:s, s:s}]}", "asmt", "field", "valasm3",
                              "required", 1, "field", "valasm3", "max", "valapr9");
    json_object_set_new(pair0(&e), "rules", rules);
    expect_refused(&e, "pairs[0].rules.asmt[1].max: entity \"asmt\" of system \"cama\" has no "
                       "field \"valapr9\"",
                   "asmt has: parid, taxyr");
    env_free(&e);
}

Test(check, unknown_conflicts_field_is_refused_with_its_path, .timeout = 60)
{
    check_env e;
    env_init(&e);
    json_object_set_new(pair0(&e), "conflicts",
                        json_pack("{s:{s:{s:s}}}", "fields", "pardat", "zone", "target_wins"));
    expect_refused(&e, "pairs[0].conflicts.fields.pardat.zone: entity \"pardat\" of system "
                       "\"cama\" has no field \"zone\"",
                   "zoning");
    env_free(&e);
}

Test(check, bad_conninfo_is_refused_naming_the_setting, .timeout = 60)
{
    check_env e;
    env_init(&e);
    json_object_set_new(settings_of(&e, "pacs"), "conninfo", json_string("host=x port"));
    expect_refused(&e, "systems.pacs.settings.conninfo: not a valid libpq connection string",
                   NULL);
    env_free(&e);
}

Test(check, out_of_range_numbers_are_refused_naming_the_setting, .timeout = 60)
{
    check_env e;
    env_init(&e);
    json_object_set_new(settings_of(&e, "pacs"), "fetch_size", json_integer(0));
    expect_refused(&e, "systems.pacs.settings.fetch_size: \"0\" is not a number from 1", NULL);
    json_object_del(settings_of(&e, "pacs"), "fetch_size");
    json_object_set_new(settings_of(&e, "cama"), "connect_timeout", json_integer(7200));
    expect_refused(&e, "systems.cama.settings.connect_timeout: \"7200\" is not a number of "
                       "seconds from 1 to 3600",
                   NULL);
    json_object_del(settings_of(&e, "cama"), "connect_timeout");
    json_object_set_new(settings_of(&e, "cama"), "who",
                        json_string("a-name-that-is-longer-than-thirty-characters"));
    expect_refused(&e, "systems.cama.settings.who: ", NULL);
    env_free(&e);
}

/* The template plugin's cb_check, reached the same way. */
Test(check, template_cb_check_refuses_a_bad_setting, .timeout = 60)
{
    check_env e;
    env_init(&e);
    json_object_set_new(settings_of(&e, "tpl"), "rows", json_integer(-5));
    expect_refused(&e, "systems.tpl.settings.rows: -5 is out of range", NULL);
    json_object_set_new(settings_of(&e, "tpl"), "rows", json_integer(5));
    json_object_set_new(settings_of(&e, "tpl"), "seed_file", json_string("no-such.csv"));
    expect_refused(&e, "systems.tpl.settings.seed_file: ", "no-such.csv");
    env_free(&e);
}

/* The daemon starts without a missing plugin (its systems stay down); --check says the
 * config would not work. */
Test(check, a_missing_plugin_fails_the_check, .timeout = 60)
{
    check_env e;
    env_init(&e);
    json_object_set_new(json_object_get(json_object_get(e.cfg, "systems"), "tpl"), "plugin",
                        json_string("inventory"));
    expect_refused(&e, "systems.tpl.plugin: plugin \"inventory\" is not loaded",
                   "put inventory.so in plugin_dir");
    env_free(&e);
}

/* The same cb_check runs when the daemon starts: a setting it refuses stops the start-up
 * before anything connects (the state store included), with the same message. */
Test(check, start_up_refuses_what_cb_check_refuses, .timeout = 60)
{
    check_env e;
    env_init(&e);
    json_object_set_new(settings_of(&e, "pacs"), "fetch_size", json_integer(200000));
    check_result r = run_daemon(&e, 0);
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "systems.pacs.settings.fetch_size: \"200000\" is not a number "
                            "from 1 to 100000"),
              "%s", r.err);
    expect_offline(&r);
    check_result_free(&r);
    env_free(&e);
}

/* plugin_dir as a copy of the shipped plugins the check's config uses, in the env's folder;
 * its path is owned by the caller. */
static char *plugins_copy(check_env *e)
{
    char *dir = malloc(128), cmd[600];
    snprintf(dir, 128, "%s/plugins", e->dir);
    snprintf(cmd, sizeof cmd, "mkdir -m 755 %s && cp %s/pacs.so %s/cama.so %s/template.so %s",
             dir, TFS_PLUGIN_DIR, TFS_PLUGIN_DIR, TFS_TEMPLATE_PLUGIN_DIR, dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    json_object_set_new(e->cfg, "plugin_dir", json_string(dir));
    return dir;
}

/* A plugin_dir everyone can write: the daemon does not start and --check fails, both
 * saying which folder and what to chmod; nothing in it was loaded (no "loading" line). */
Test(check, world_writable_plugin_dir_refuses_start_up_and_check, .timeout = 60)
{
    check_env e;
    env_init(&e);
    char *dir = plugins_copy(&e);
    cr_assert_eq(chmod(dir, 0777), 0);
    char want[300];
    snprintf(want, sizeof want, "refusing to load plugins from \"%s\": plugin_dir \"%s\" is "
             "writable by everyone (mode 0777); chmod go-w \"%s\"", dir, dir, dir);
    for (int check = 1; check >= 0; check--) {
        check_result r = run_daemon(&e, check);
        cr_expect_eq(r.status, 1, "exit %d with --check %d: %s", r.status, check, r.err);
        cr_expect(strstr(r.err, want), "stderr lacks '%s':\n%s", want, r.err);
        cr_expect_not(strstr(r.err, "loading "), "a plugin was opened:\n%s", r.err);
        cr_expect_not(strstr(r.out, "is valid"), "%s", r.out);
        expect_offline(&r);
        check_result_free(&r);
    }
    free(dir);
    env_free(&e);
}

/* A truncated plugin beside the good ones (the daemon would die of a SIGBUS mapping it):
 * refused alone with the reason, which --check prints; the config is valid without it. */
Test(check, truncated_plugin_is_refused_alone_and_named_by_check, .timeout = 60)
{
    check_env e;
    env_init(&e);
    char *dir = plugins_copy(&e);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "head -c 30000 %s/pacs.so > %s/broken.so", dir, dir);
    cr_assert_eq(system(cmd), 0);
    check_result r = run_check(&e);
    cr_expect_eq(r.status, 0, "exit %d: %s", r.status, r.err);
    char want[300];
    snprintf(want, sizeof want, "plugin refused: could not load plugin \"%s/broken.so\": "
             "truncated: 30000 bytes", dir);
    cr_expect(strstr(r.out, want), "stdout lacks '%s':\n%s", want, r.out);
    cr_expect(strstr(r.out, "3 plugins loaded, 1 refused"), "%s", r.out);
    expect_offline(&r);
    check_result_free(&r);
    free(dir);
    env_free(&e);
}
