/* tests/sdk/check_test.c — tfsyncd --check checks offline, and --check --connect checks
 * that every system and the state store answer.
 *
 * The real daemon is run with --check on a config whose PACS, CAMA and state store point at
 * a loopback port where a socket listens and never accepts: a connection attempt would
 * stay pending there (and hang until connect_timeout). Each offline test asserts the exit
 * code, the lines --check prints (one per problem, "path: what; how to fix", and a
 * summary) and that nothing connected: no connection is pending on that socket and the
 * check returned well before the 5 s connect_timeout. The daemon's start-up runs the same
 * settings checks, before it connects to anything. The --connect tests point the same
 * config at databases cloned from the test server's templates.
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
static check_result run_daemon_args(check_env *e, int check, int connect)
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
        char *argv[6] = {"tfsyncd", "--config", cfg_path, NULL, NULL, NULL};
        int argc = 3;
        if (check)
            argv[argc++] = "--check";
        if (connect)
            argv[argc++] = "--connect";
        execv(TFS_BINARY_DIR "/tfsyncd", argv);
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

static check_result run_daemon(check_env *e, int check)
{
    return run_daemon_args(e, check, 0);
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
    cr_expect_eq(r.status, 1, "a bad config passed --check (exit %d): %s", r.status, r.out);
    cr_expect(strstr(r.out, path_msg), "stdout lacks '%s':\n%s", path_msg, r.out);
    if (hint)
        cr_expect(strstr(r.out, hint), "stdout lacks the hint '%s':\n%s", hint, r.out);
    cr_expect(strstr(r.out, "is not valid: "), "no summary line:\n%s", r.out);
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
        /* --check says it on stdout, as one of its problem lines; the daemon in its log. */
        const char *said = check ? r.out : r.err;
        cr_expect_eq(r.status, 1, "exit %d with --check %d: %s", r.status, check, r.err);
        cr_expect(strstr(said, want), "output lacks '%s':\n%s", want, said);
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

/* ---- what the schemas' entity roles (SDK 1.4), the scripts and --connect add ---- */

/* PACS describes bill_status (what the ERP sends back) but only writes it: a pair reading
 * it from PACS failed at its first read, after --check had passed it. */
Test(check, source_entity_the_source_only_writes_is_refused, .timeout = 60)
{
    check_env e;
    env_init(&e);
    json_object_set_new(json_array_get(json_object_get(pair0(&e), "entities"), 0), "source",
                        json_string("bill_status"));
    expect_refused(&e, "pairs[0].entities[0].source: source system \"pacs\" does not read "
                       "entity \"bill_status\"; system \"pacs\" can read: property, owner, "
                       "sale, account\n",
                   NULL);
    env_free(&e);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Every problem is a line of its own, not only the first: two systems' settings, a target
 * entity and a source entity of another mapping, then the summary that counts them. */
Test(check, every_problem_is_reported_on_its_own_line, .timeout = 60)
{
    check_env e;
    env_init(&e);
    json_object_set_new(settings_of(&e, "tpl"), "rows", json_integer(-5));
    json_object_set_new(settings_of(&e, "cama"), "connect_timeout", json_integer(7200));
    json_t *ents = json_object_get(pair0(&e), "entities");
    json_array_set_new(json_object_get(json_array_get(ents, 0), "targets"), 1,
                       json_string("asmnt"));
    json_array_append_new(ents, json_pack("{s:s, s:[s], s:s}", "source", "owners", "targets",
                                          "owndat", "script", "pacs_owner_to_cama.lua"));
    check_result r = run_check(&e);
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.out);
    /* The cama settings are refused, so cama is not opened: its entities are not checked. */
    const char *want[] = {
        "systems.cama.settings.connect_timeout: \"7200\" is not a number of seconds from 1 "
        "to 3600",
        "systems.tpl.settings.rows: -5 is out of range",
        "pairs[0].entities[1].source: source system \"pacs\" has no entity \"owners\"; "
        "system \"pacs\" describes: property, owner, sale, account, parcel_gis, bill_status, "
        "account_mail\n",
        "is not valid: 3 problems\n",
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        cr_expect(strstr(r.out, want[i]), "stdout lacks '%s':\n%s", want[i], r.out);
    cr_expect_eq(count_lines(r.out), 4, "one line per problem and a summary:\n%s", r.out);
    expect_offline(&r);
    check_result_free(&r);
    env_free(&e);
}

/* A copy of the shipped transforms in the env's folder, transform_dir pointed at it, and
 * pacs_to_cama.lua edited: its line that holds `from` gets `to` instead. Returns that
 * line's number. */
static int edit_script(check_env *e, const char *from, const char *to)
{
    char cmd[600], path[200];
    snprintf(cmd, sizeof cmd, "cp -r %s/transforms %s/transforms", TFS_SOURCE_DIR, e->dir);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(path, sizeof path, "%s/transforms/pacs_to_cama.lua", e->dir);
    json_object_set_new(e->cfg, "transform_dir", json_string("transforms"));
    char *text = tfs_test_read_file(path);
    char *at = strstr(text, from);
    cr_assert_not_null(at, "pacs_to_cama.lua has no '%s'", from);
    int line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fprintf(f, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    cr_assert_eq(fclose(f), 0);
    free(text);
    return line;
}

/* The script sets a field CAMA's pardat does not have (a typo an analyst makes): the run
 * would dead-letter every record; --check names the script's line and pardat's fields. */
Test(check, script_field_the_target_lacks_is_refused_with_its_line, .timeout = 60)
{
    check_env e;
    env_init(&e);
    int line = edit_script(&e, "    zoning = p.zoning,", "    zonning = p.zoning,");
    char want[300];
    snprintf(want, sizeof want, "pairs[0].entities[0].script: pacs_to_cama.lua:%d: sets field "
             "\"zonning\" that target entity \"pardat\" of system \"cama\" does not have; "
             "pardat has: parid, ", line);
    expect_refused(&e, want, "zoning");
    env_free(&e);
}

/* A field added after the constructor (pardat.x = ...) is checked too. */
Test(check, script_field_assigned_later_is_checked, .timeout = 60)
{
    check_env e;
    env_init(&e);
    int line = edit_script(&e, "  return { pardat = pardat, asmt = asmt }",
                           "  asmt.valapr9 = land\n  return { pardat = pardat, asmt = asmt }");
    char want[300];
    snprintf(want, sizeof want, "pairs[0].entities[0].script: pacs_to_cama.lua:%d: sets field "
             "\"valapr9\" that target entity \"asmt\" of system \"cama\"", line);
    expect_refused(&e, want, NULL);
    env_free(&e);
}

/* A script that does not compile: refused with its file and line, before any run. */
Test(check, script_that_does_not_compile_is_refused_with_its_line, .timeout = 60)
{
    check_env e;
    env_init(&e);
    int line = edit_script(&e, "  local valclass = class", "  local valclass = = class");
    char want[200];
    snprintf(want, sizeof want, "pairs[0].entities[0].script: pacs_to_cama.lua:%d:", line);
    expect_refused(&e, want, NULL);
    env_free(&e);
}

/* ---- --connect, against the test server ---- */

typedef struct live_dbs {
    char *pacs, *cama, *state;
} live_dbs;

/* Clones of the PACS, CAMA and state templates, the env's conninfos pointed at them. */
static void live_init(check_env *e, live_dbs *db)
{
    db->pacs = tfs_test_db_clone(TFS_TEST_TMPL_PACS_EMPTY, "check_pacs");
    db->cama = tfs_test_db_clone(TFS_TEST_TMPL_CAMA, "check_cama");
    db->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "check_state");
    char *ci;
    json_object_set_new(settings_of(e, "pacs"), "conninfo",
                        json_string(ci = tfs_test_pg_conninfo(db->pacs)));
    free(ci);
    json_object_set_new(settings_of(e, "cama"), "conninfo",
                        json_string(ci = tfs_test_pg_conninfo(db->cama)));
    free(ci);
    json_object_set_new(json_object_get(e->cfg, "state"), "conninfo",
                        json_string(ci = tfs_test_pg_conninfo(db->state)));
    free(ci);
}

static void live_free(live_dbs *db)
{
    tfs_test_db_drop(db->pacs);
    tfs_test_db_drop(db->cama);
    tfs_test_db_drop(db->state);
    free(db->pacs);
    free(db->cama);
    free(db->state);
}

Test(check, connect_passes_a_config_whose_systems_and_store_answer, .timeout = 60)
{
    check_env e;
    env_init(&e);
    live_dbs db;
    live_init(&e, &db);
    check_result r = run_daemon_args(&e, 1, 1);
    cr_expect_eq(r.status, 0, "exit %d\nstdout: %s\nstderr: %s", r.status, r.out, r.err);
    cr_expect(strstr(r.out, "is valid: 3 systems (3 schemas checked and connected to, 0 not)"),
              "%s", r.out);
    cr_expect(strstr(r.out, "; the state store answers\n"), "%s", r.out);
    /* An empty state store is migrated when the daemon starts, not by the check. */
    cr_expect(strstr(r.out, "state store: at migration 0 of "), "%s", r.out);
    char *n = tfs_test_pg_scalar(db.state, "SELECT count(*) FROM pg_namespace WHERE nspname = "
                                           "'tfsync'");
    cr_expect_str_eq(n, "0", "--check --connect created the tfsync schema");
    free(n);
    check_result_free(&r);
    /* The same config offline: valid too, and nothing connected. */
    r = run_check(&e);
    cr_expect_eq(r.status, 0, "exit %d: %s", r.status, r.out);
    expect_offline(&r);
    check_result_free(&r);
    live_free(&db);
    env_free(&e);
}

/* A port where nothing listens: a socket bound to a free port, closed again. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* PACS's database is down, and CAMA's conninfo names a role the real server refuses (the
 * test server trusts local users, so a wrong password would be let in: a role that does
 * not exist is the credential it refuses). The offline check passes the same config; with
 * --connect each failure is a line naming the system, and the exit is 1. */
Test(check, connect_refuses_a_system_that_is_down_or_refuses_the_login, .timeout = 60)
{
    check_env e;
    env_init(&e);
    live_dbs db;
    live_init(&e, &db);
    char ci[200];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=pacs connect_timeout=5", dead_port());
    json_object_set_new(settings_of(&e, "pacs"), "conninfo", json_string(ci));
    char *cama = tfs_test_pg_conninfo(db.cama);
    char bad[600];
    snprintf(bad, sizeof bad, "%s user=tfs_check_no_such_role password=wrong", cama);
    free(cama);
    json_object_set_new(settings_of(&e, "cama"), "conninfo", json_string(bad));

    check_result r = run_check(&e);
    cr_expect_eq(r.status, 0, "offline: exit %d: %s", r.status, r.out);
    expect_offline(&r);
    check_result_free(&r);

    r = run_daemon_args(&e, 1, 1);
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.out);
    cr_expect(strstr(r.out, "systems.pacs: "), "pacs not named:\n%s", r.out);
    cr_expect(strstr(r.out, "Connection refused"), "%s", r.out);
    cr_expect(strstr(r.out, "systems.cama: "), "cama not named:\n%s", r.out);
    cr_expect(strstr(r.out, "tfs_check_no_such_role"), "%s", r.out);
    cr_expect(strstr(r.out, "reach it (host, port, credentials)"), "no hint:\n%s", r.out);
    cr_expect(strstr(r.out, "is not valid: 2 problems\n"), "%s", r.out);
    check_result_free(&r);
    live_free(&db);
    env_free(&e);
}

/* The state store down: named by its setting, exit 1. */
Test(check, connect_refuses_a_state_store_that_does_not_answer, .timeout = 60)
{
    check_env e;
    env_init(&e);
    live_dbs db;
    live_init(&e, &db);
    char ci[200];
    snprintf(ci, sizeof ci, "host=127.0.0.1 port=%d dbname=tfsync", dead_port());
    json_object_set_new(json_object_get(e.cfg, "state"), "conninfo", json_string(ci));
    check_result r = run_daemon_args(&e, 1, 1);
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.out);
    cr_expect(strstr(r.out, "state.conninfo: "), "%s", r.out);
    cr_expect(strstr(r.out, "is not valid: 1 problem\n"), "%s", r.out);
    check_result_free(&r);
    live_free(&db);
    env_free(&e);
}

/* --connect without --check is a usage error, not a daemon start. */
Test(check, connect_without_check_is_a_usage_error, .timeout = 60)
{
    check_env e;
    env_init(&e);
    check_result r = run_daemon_args(&e, 0, 1);
    cr_expect_eq(r.status, 2, "exit %d: %s", r.status, r.err);
    cr_expect(strstr(r.err, "--connect goes with --check"), "%s", r.err);
    expect_offline(&r);
    check_result_free(&r);
    env_free(&e);
}

/* A plugin that is not lazy (the SDK 1.2 build of tests/sdk/plugins/compat.c) is never
 * opened offline: its side of the pair is said to be unchecked and the check passes;
 * --check --connect opens it and finds the entity it lacks. */
Test(check, a_system_that_is_not_lazy_is_checked_only_with_connect, .timeout = 60)
{
    check_env e;
    env_init(&e);
    live_dbs db;
    live_init(&e, &db);
    char path[128];
    snprintf(path, sizeof path, "%s/compat.lua", e.dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("function map(rec)\n  return { item = { id = rec.id, name = rec.name } }\nend\n", f);
    cr_assert_eq(fclose(f), 0);
    json_object_set_new(e.cfg, "plugin_dir", json_string(TFS_COMPAT_PLUGIN_DIR));
    json_object_set_new(e.cfg, "transform_dir", json_string(e.dir));
    json_object_set_new(e.cfg, "systems",
                        json_pack("{s:{s:s, s:{s:s}}, s:{s:s, s:{s:s}}}", "old", "plugin",
                                  "compat_v1_2", "settings", "file", "old.tsv", "new",
                                  "plugin", "compat_v1_5", "settings", "file", "new.tsv"));
    json_object_set_new(e.cfg, "pairs",
                        json_pack("[{s:s, s:s, s:s, s:[{s:s, s:[s], s:s}]}]", "name",
                                  "old-to-new", "source", "old", "target", "new", "entities",
                                  "source", "itemz", "targets", "item", "script",
                                  "compat.lua"));
    check_result r = run_check(&e);
    cr_expect_eq(r.status, 0, "exit %d: %s", r.status, r.out);
    cr_expect(strstr(r.out, "system \"old\": schema not checked offline (its plugin connects "
                            "to describe it: no TFS_SDK_CAP_LAZY_OPEN); tfsyncd --check "
                            "--connect checks it\n"),
              "%s", r.out);
    cr_expect(strstr(r.out, "is valid: 2 systems (1 schema checked offline, 1 not)"), "%s",
              r.out);
    expect_offline(&r);
    check_result_free(&r);

    r = run_daemon_args(&e, 1, 1);
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.out);
    cr_expect(strstr(r.out, "pairs[0].entities[0].source: source system \"old\" has no entity "
                            "\"itemz\"; system \"old\" describes: item\n"),
              "%s", r.out);
    check_result_free(&r);
    live_free(&db);
    env_free(&e);
}

/* A target table dropped from the live CAMA (a database restored without it): --connect
 * fetches from each target entity a pair writes, by a key no record has, and names the
 * entity; nothing is written (the table's twin keeps no rows). */
Test(check, connect_refuses_a_target_whose_table_is_missing, .timeout = 60)
{
    check_env e;
    env_init(&e);
    live_dbs db;
    live_init(&e, &db);
    tfs_test_pg_exec(db.cama, "DROP TABLE asmt CASCADE");
    check_result r = run_daemon_args(&e, 1, 1);
    cr_expect_eq(r.status, 1, "exit %d: %s", r.status, r.out);
    /* The adapter checks its tables when it connects, so pardat's fetch says it too. */
    cr_expect(strstr(r.out, "systems.cama: entity \"asmt\": cama could not fetch: could not "
                            "use cama: table \"asmt\" does not exist; load "
                            "plugins/cama/schema.sql into the database; create what plugin \"cama\" "
                            "needs for entity \"asmt\""),
              "%s", r.out);
    cr_expect(strstr(r.out, "is not valid: "), "%s", r.out);
    cr_expect_not(strstr(r.out, "systems.pacs"), "%s", r.out);
    char *n = tfs_test_pg_scalar(db.cama, "SELECT count(*) FROM pardat");
    cr_expect_str_eq(n, "0", "--check --connect wrote into cama");
    free(n);
    check_result_free(&r);
    live_free(&db);
    env_free(&e);
}
