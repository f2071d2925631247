/* tests/integration/cli_test.c — the tfsync command-line client against a real daemon:
 * each case runs the built TFS_BINARY_DIR/tfsync as a subprocess (popen, stderr to a file;
 * under a pseudo-terminal for the progress bar) and checks what it prints and how it
 * exits. The PACS-to-CAMA daemon for sync, status and audit; the SDK's probe plugin (an
 * estimate, and a gate file that holds a run after its first batch) for the progress bar,
 * --timeout, pairs, plugins, validate and audit's filters and pages; bash for the
 * completion script. */
#define _GNU_SOURCE /* posix_openpt, ptsname */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../../sdk/tfsync_plugin.h"
#include "tfs_test.h"

#define TFSYNC TFS_BINARY_DIR "/tfsync"

/* The commands, as the completion must offer them. */
static const char *const cli_names[] = {"sync",         "run",       "status",  "pairs",
                                        "plugins",      "validate",  "audit",   "cancel",
                                        "dead-letters", "conflicts", "confirm", "transform",
                                        "health",       NULL};

typedef struct run_result {
    int code;  /* exit code; -1 when it did not exit normally */
    char *out; /* owned */
    char *err; /* owned */
} run_result;

typedef struct env {
    char *pacs, *cama, *state;
    tfs_test_daemon *d;
    char url[64];
} env;

static void result_free(run_result *r)
{
    free(r->out);
    free(r->err);
}

/* Runs tfsync with args (a shell fragment: quote what needs it), TFSYNC_URL and
 * TFSYNC_KEY cleared. */
static run_result tfsync(const char *args)
{
    char errpath[] = "/tmp/tfs-cli-err-XXXXXX";
    int fd = mkstemp(errpath);
    cr_assert_geq(fd, 0, "could not create a temporary file");
    close(fd);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "env -u TFSYNC_URL -u TFSYNC_KEY %s %s 2>%s", TFSYNC, args,
             errpath);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p, "could not run %s", cmd);
    size_t cap = 4096, len = 0, n;
    char *out = malloc(cap);
    while ((n = fread(out + len, 1, cap - len - 1, p)) > 0) {
        len += n;
        if (cap - len < 2048)
            out = realloc(out, cap *= 2);
    }
    out[len] = '\0';
    int st = pclose(p);
    run_result r = {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out, tfs_test_read_file(errpath)};
    unlink(errpath);
    return r;
}

static run_result tfsync_at(const env *e, const char *key, const char *args)
{
    char full[4096];
    snprintf(full, sizeof full, "--url %s%s%s %s", e->url, key ? " --key " : "",
             key ? key : "", args);
    return tfsync(full);
}

static void env_up(env *e)
{
    e->pacs = tfs_test_db_clone(TFS_TEST_TMPL_PACS10K, "clipacs");
    e->cama = tfs_test_db_clone(TFS_TEST_TMPL_CAMA, "clicama");
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "clistate");
    json_t *cfg = tfs_test_config_new(e->pacs, e->cama, e->state);
    e->d = tfs_test_daemon_start(cfg);
    json_decref(cfg);
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", e->d->port);
}

static void env_down(env *e)
{
    tfs_test_daemon_stop(e->d);
    tfs_test_db_drop(e->pacs);
    tfs_test_db_drop(e->cama);
    tfs_test_db_drop(e->state);
    free(e->pacs);
    free(e->cama);
    free(e->state);
}

static void assert_no_key(const run_result *r, const char *key)
{
    cr_assert_null(strstr(r->out, key), "the key was printed on stdout:\n%s", r->out);
    cr_assert_null(strstr(r->err, key), "the key was printed on stderr:\n%s", r->err);
}

Test(cli, sync_status_audit_and_errors, .timeout = 600)
{
    env e;
    env_up(&e);

    /* health needs no key. */
    run_result r = tfsync_at(&e, NULL, "health");
    cr_assert_eq(r.code, 0, "health exited %d\n%s%s", r.code, r.out, r.err);
    cr_assert(strncmp(r.out, "ok", 2) == 0, "health printed:\n%s", r.out);
    result_free(&r);

    /* A full sync, followed to its end. */
    r = tfsync_at(&e, TFS_TEST_KEY_OPERATE, "sync full pacs-to-cama --wait");
    cr_assert_eq(r.code, 0, "sync --wait exited %d\nstdout:\n%s\nstderr:\n%s", r.code, r.out,
                 r.err);
    cr_assert_gt(atol(r.out), 0, "the first line is not a run id:\n%s", r.out);
    cr_assert_not_null(strstr(r.out, "succeeded"), "no end line:\n%s", r.out);
    cr_assert_not_null(strstr(r.out, "property: read"), "no progress line:\n%s", r.out);
    assert_no_key(&r, TFS_TEST_KEY_OPERATE);
    long run_id = atol(r.out);
    result_free(&r);
    char *rows = tfs_test_pg_scalar(e.cama, "SELECT count(*) FROM pardat");
    cr_assert_gt(atol(rows), 0, "CAMA has no pardat rows after the sync");
    free(rows);

    /* status: the pair, its last run, succeeded. */
    r = tfsync_at(&e, TFS_TEST_KEY_READ, "status");
    cr_assert_eq(r.code, 0, "status exited %d\n%s%s", r.code, r.out, r.err);
    cr_assert_not_null(strstr(r.out, "pacs-to-cama"), "status:\n%s", r.out);
    cr_assert_not_null(strstr(r.out, "succeeded"), "status:\n%s", r.out);
    cr_assert_not_null(strstr(r.out, "checkpoint"), "status:\n%s", r.out);
    result_free(&r);

    char args[256];
    snprintf(args, sizeof args, "status %ld", run_id);
    r = tfsync_at(&e, TFS_TEST_KEY_READ, args);
    cr_assert_eq(r.code, 0, "%s exited %d\n%s%s", args, r.code, r.out, r.err);
    cr_assert_not_null(strstr(r.out, "full, succeeded"), "%s:\n%s", args, r.out);
    result_free(&r);

    /* --json prints the API's JSON as it is. */
    r = tfsync_at(&e, TFS_TEST_KEY_READ, "--json status");
    cr_assert_eq(r.code, 0);
    json_t *j = json_loads(r.out, 0, NULL);
    cr_assert_not_null(json_object_get(json_object_get(j, "pairs"), "pacs-to-cama"),
                       "--json status:\n%s", r.out);
    json_decref(j);
    result_free(&r);

    /* audit: take the first entry's key, then filter by it. */
    r = tfsync_at(&e, TFS_TEST_KEY_READ, "audit --pair pacs-to-cama --limit 1");
    cr_assert_eq(r.code, 0, "audit exited %d\n%s%s", r.code, r.out, r.err);
    char key[128] = "";
    long id = 0, run = 0;
    cr_assert_eq(sscanf(r.out, "%ld run %ld %127s", &id, &run, key), 3, "audit:\n%s", r.out);
    cr_assert_eq(run, run_id);
    result_free(&r);
    snprintf(args, sizeof args, "audit --record '%s'", key);
    r = tfsync_at(&e, TFS_TEST_KEY_READ, args);
    cr_assert_eq(r.code, 0, "%s exited %d\n%s%s", args, r.code, r.out, r.err);
    char want[256];
    snprintf(want, sizeof want, "%ld run %ld %s insert ", id, run_id, key);
    cr_assert(strncmp(r.out, want, strlen(want)) == 0, "%s printed:\n%s", args, r.out);
    cr_assert_not_null(strstr(r.out, "pardat."), "no changed field:\n%s", r.out);
    cr_assert_null(strchr(strchr(r.out, '\n') + 1, '\n'), "more than one line:\n%s", r.out);
    result_free(&r);

    r = tfsync_at(&e, TFS_TEST_KEY_READ, "dead-letters --pair pacs-to-cama");
    cr_assert_eq(r.code, 0, "dead-letters exited %d\n%s%s", r.code, r.out, r.err);
    result_free(&r);

    /* A bad key: the problem's title on stderr, exit 2, the key never shown. */
    r = tfsync_at(&e, "no-such-key-1234", "status");
    cr_assert_eq(r.code, 2, "a bad key exited %d\n%s%s", r.code, r.out, r.err);
    cr_assert_not_null(strstr(r.err, "tfsync: unauthorized: "), "stderr:\n%s", r.err);
    assert_no_key(&r, "no-such-key-1234");
    result_free(&r);

    /* A read key may not start a run. */
    r = tfsync_at(&e, TFS_TEST_KEY_READ, "sync incremental pacs-to-cama");
    cr_assert_eq(r.code, 2, "exited %d\n%s%s", r.code, r.out, r.err);
    cr_assert_not_null(strstr(r.err, "forbidden"), "stderr:\n%s", r.err);
    result_free(&r);

    /* An unknown pair. */
    r = tfsync_at(&e, TFS_TEST_KEY_OPERATE, "sync full pacs-to-gis --wait");
    cr_assert_eq(r.code, 2, "an unknown pair exited %d\n%s%s", r.code, r.out, r.err);
    cr_assert_not_null(strstr(r.err, "pacs-to-gis"), "stderr:\n%s", r.err);
    cr_assert_str_eq(r.out, "");
    result_free(&r);

    /* An unknown run. */
    r = tfsync_at(&e, TFS_TEST_KEY_READ, "status 999999");
    cr_assert_eq(r.code, 2, "an unknown run exited %d\n%s%s", r.code, r.out, r.err);
    result_free(&r);

    env_down(&e);
}

Test(cli, dead_port_exits_3)
{
    /* A port that was just free: bind nothing there. */
    run_result r = tfsync("--url http://127.0.0.1:9 --key secret-key-77 status");
    cr_assert_eq(r.code, 3, "exited %d\n%s%s", r.code, r.out, r.err);
    cr_assert(strncmp(r.err, "tfsync: could not reach http://127.0.0.1:9: ", 44) == 0,
              "stderr:\n%s", r.err);
    assert_no_key(&r, "secret-key-77");
    result_free(&r);
}

Test(cli, usage_errors_exit_64)
{
    static const char *const bad[] = {"", "frobnicate", "sync", "sync full",
                                      "sync sideways pacs-to-cama", "status abc",
                                      "audit --limit", "audit --bogus 1", "--bogus health",
                                      "sync full p --timeout 0", "audit --after-id -1",
                                      "validate", "pairs extra"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_result r = tfsync(bad[i]);
        cr_assert_eq(r.code, 64, "\"%s\" exited %d\n%s%s", bad[i], r.code, r.out, r.err);
        cr_assert_not_null(strstr(r.err, "usage: tfsync"), "\"%s\" stderr:\n%s", bad[i], r.err);
        cr_assert_not_null(strstr(r.err, "--help"), "\"%s\" does not point to --help:\n%s",
                           bad[i], r.err);
        result_free(&r);
    }
    /* An unknown option or command is named, with the help to read. */
    static const char *const named[][3] = {
        {"status --bogus", "unknown option \"--bogus\"", "tfsync status --help"},
        {"audit --key-of-record 7", "unknown option \"--key-of-record\"", "tfsync audit --help"},
        {"run full p --frob", "unknown option \"--frob\"", "tfsync sync --help"},
        {"frobnicate", "unknown command \"frobnicate\"", "tfsync --help"},
        {"pairs --all", "unknown option \"--all\"", "tfsync pairs --help"},
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i++) {
        run_result r = tfsync(named[i][0]);
        cr_assert_eq(r.code, 64, "\"%s\" exited %d", named[i][0], r.code);
        cr_assert_not_null(strstr(r.err, named[i][1]), "\"%s\" stderr:\n%s", named[i][0], r.err);
        cr_assert_not_null(strstr(r.err, named[i][2]), "\"%s\" stderr:\n%s", named[i][0], r.err);
        result_free(&r);
    }
}

Test(cli, environment_gives_url_and_key)
{
    /* TFSYNC_URL is read when --url is absent; a trailing slash is dropped. */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "env TFSYNC_URL=http://127.0.0.1:9/ %s health 2>&1", TFSYNC);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char line[512] = "";
    cr_assert_not_null(fgets(line, sizeof line, p));
    int st = pclose(p);
    cr_assert_eq(WEXITSTATUS(st), 3);
    cr_assert_not_null(strstr(line, "could not reach http://127.0.0.1:9:"), "%s", line);
}

/* ---- help, version, the key ---- */

Test(cli, help_of_every_command_names_its_options)
{
    /* Each command, and options its help must name. */
    static const char *const cmds[][6] = {
        {"sync", "--wait", "--timeout", NULL},
        {"run", "--wait", "--timeout", NULL},
        {"status", "RUN_ID", NULL},
        {"pairs", NULL},
        {"plugins", "NAME", NULL},
        {"validate", "--sample", NULL},
        {"audit", "--record", "--since", "--until", "--after-id", "--entity"},
        {"dead-letters", "--pair", "--stage", "--status", "--after", NULL},
        {"conflicts", "--status", "--record", "--after", NULL},
        {"cancel", "RUN_ID", NULL},
        {"confirm", "RUN_ID", NULL},
        {"transform", "--source", "--entity", NULL},
        {"health", NULL},
    };
    run_result top = tfsync("--help");
    cr_assert_eq(top.code, 0, "--help exited %d\n%s", top.code, top.err);
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++) {
        char args[128], want[128];
        snprintf(args, sizeof args, "%s --help", cmds[i][0]);
        run_result r = tfsync(args);
        cr_assert_eq(r.code, 0, "\"%s\" exited %d\n%s", args, r.code, r.err);
        snprintf(want, sizeof want, "usage: tfsync %s",
                 strcmp(cmds[i][0], "run") == 0 ? "sync" : cmds[i][0]);
        cr_assert(strncmp(r.out, want, strlen(want)) == 0, "\"%s\" printed:\n%s", args, r.out);
        for (int k = 1; k < 6 && cmds[i][k]; k++)
            cr_assert_not_null(strstr(r.out, cmds[i][k]), "\"%s\" does not name %s:\n%s", args,
                               cmds[i][k], r.out);
        cr_assert_not_null(strstr(r.out, "examples:"), "\"%s\":\n%s", args, r.out);
        cr_assert_not_null(strstr(r.out, "--key KEY"), "\"%s\": no global options", args);
        /* The top-level help lists it. */
        snprintf(want, sizeof want, "\n  %s ", cmds[i][0]);
        cr_assert_not_null(strstr(top.out, want), "--help does not list %s:\n%s", cmds[i][0],
                           top.out);
        result_free(&r);
    }
    /* -h after a subcommand's arguments is its help too. */
    run_result r = tfsync("audit --pair p -h");
    cr_assert_eq(r.code, 0);
    cr_assert(strncmp(r.out, "usage: tfsync audit", 19) == 0, "%s", r.out);
    result_free(&r);
    result_free(&top);
}

Test(cli, version_names_client_sdk_and_libraries)
{
    run_result r = tfsync("--version");
    cr_assert_eq(r.code, 0, "--version exited %d\n%s", r.code, r.err);
    char want[64];
    cr_assert(strncmp(r.out, "tfsync 0.1.0\n", 13) == 0, "%s", r.out);
    snprintf(want, sizeof want, "\nSDK %d.%d\n", TFS_SDK_VERSION_MAJOR, TFS_SDK_VERSION_MINOR);
    cr_assert_not_null(strstr(r.out, want), "no %s in:\n%s", want, r.out);
    cr_assert_not_null(strstr(r.out, "\nlibcurl 7."), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "\njansson 2."), "%s", r.out);
    result_free(&r);
}

/* A key given where a command's argument or another option's value was expected, and
 * failed calls: its value appears in no output. */
Test(cli, key_never_echoed)
{
#define K "s3cret-key-value-42"
    static const char *const misplaced[] = {
        "--url http://127.0.0.1:9 status --key " K,      /* after the command */
        "--url http://127.0.0.1:9 status 5 --key " K,    /* after an argument */
        "--url --key " K " health",                      /* as --url's value */
        "--url http://127.0.0.1:9 --key " K " cancel " K, /* as an argument */
        "--url http://127.0.0.1:9 --key " K " confirm 3 " K,
        "--key " K " --bogus health",
        "--key=" K " audit --run " K,
        "--key " K " transform test x.lua /nonexistent/" K ".json",
        "--url http://127.0.0.1:9/" K " --key " K " health",
    };
    for (size_t i = 0; i < sizeof misplaced / sizeof misplaced[0]; i++) {
        run_result r = tfsync(misplaced[i]);
        cr_assert_neq(r.code, 0, "\"%s\" exited 0", misplaced[i]);
        cr_assert_neq(r.err[0], '\0', "\"%s\" said nothing", misplaced[i]);
        assert_no_key(&r, K);
        result_free(&r);
    }
#undef K
}

/* ---- the probe: a source with an estimate and a gate that holds a run ---- */

typedef struct penv {
    char *state;
    char root[256];
    json_t *cfg;
    tfs_test_daemon *d;
    char url[64];
} penv;

static void pwrite_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "could not write %s", path);
    fputs(text, f);
    cr_assert_eq(fclose(f), 0);
}

/* A probe system name over <root>/name with n items; gate: a file name under root ("":
 * none). */
static void padd_system(penv *e, const char *name, int n, const char *gate)
{
    char dir[512], p[600];
    snprintf(dir, sizeof dir, "%s/%s", e->root, name);
    cr_assert_eq(mkdir(dir, 0700), 0);
    snprintf(p, sizeof p, "%s/item.tsv", dir);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    for (int i = 1; i <= n; i++)
        fprintf(f, "%d\tname-%02d\n", i, i);
    cr_assert_eq(fclose(f), 0);
    json_t *settings = json_pack("{ss}", "dir", dir);
    if (gate && *gate) {
        snprintf(p, sizeof p, "%s/%s", e->root, gate);
        json_object_set_new(settings, "gate", json_string(p));
    }
    json_object_set_new(json_object_get(e->cfg, "systems"), name,
                        json_pack("{ssso}", "plugin", "probe", "settings", settings));
}

static void padd_pair(penv *e, const char *name, const char *src, const char *tgt,
                      const char *script)
{
    json_array_append_new(json_object_get(e->cfg, "pairs"),
                          json_pack("{sssssssis[{sss[ss]ss}]}", "name", name, "source", src,
                                    "target", tgt, "batch_size", 10, "entities", "source",
                                    "item", "targets", "left", "right", "script", script));
}

static void open_gate(const penv *e, const char *gate)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", e->root, gate);
    pwrite_text(p, "");
}

/* Two pairs over gated sources (pa: 60 items, pb: 30), one whose script sets a field the
 * target lacks (pbad), and a plugin folder with the probe and a file that is no plugin. */
static void penv_up(penv *e)
{
    memset(e, 0, sizeof *e);
    e->state = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "clipstate");
    snprintf(e->root, sizeof e->root, "/tmp/tfs-cli-%d-XXXXXX", (int)getpid());
    cr_assert_not_null(mkdtemp(e->root));
    char p[512], cmd[1200];
    snprintf(p, sizeof p, "%s/plugins", e->root);
    cr_assert_eq(mkdir(p, 0700), 0);
    snprintf(cmd, sizeof cmd, "cp '%s/probe.so' '%s/plugins/' && chmod 0755 '%s/plugins/probe.so'",
             TFS_TEST_PROBE_DIR, e->root, e->root);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    snprintf(p, sizeof p, "%s/plugins/broken.so", e->root);
    pwrite_text(p, "not a shared object\n");
    chmod(p, 0755);
    snprintf(p, sizeof p, "%s/transforms", e->root);
    cr_assert_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/transforms/probe.lua", e->root);
    pwrite_text(p, "function map(r)\n"
                   "  return { left = { id = r.id, name = r.name },\n"
                   "           right = { id = r.id, name = r.name } }\n"
                   "end\n");
    snprintf(p, sizeof p, "%s/transforms/bad.lua", e->root);
    pwrite_text(p, "function map(r)\n"
                   "  return { left = { id = r.id, name = r.name, colour = 'red' },\n"
                   "           right = { id = r.id, name = r.name } }\n"
                   "end\n");
    e->cfg = tfs_test_config_new("unused", "unused", e->state);
    snprintf(p, sizeof p, "%s/plugins", e->root);
    json_object_set_new(e->cfg, "plugin_dir", json_string(p));
    snprintf(p, sizeof p, "%s/transforms", e->root);
    json_object_set_new(e->cfg, "transform_dir", json_string(p));
    json_object_set_new(e->cfg, "systems", json_object());
    json_object_set_new(e->cfg, "pairs", json_array());
    padd_system(e, "srca", 60, "gate-a");
    padd_system(e, "srcb", 30, "gate-b");
    padd_system(e, "srcc", 5, "");
    padd_system(e, "dsta", 0, "");
    padd_system(e, "dstb", 0, "");
    padd_system(e, "dstc", 0, "");
    padd_pair(e, "pa", "srca", "dsta", "probe.lua");
    padd_pair(e, "pb", "srcb", "dstb", "probe.lua");
    padd_pair(e, "pbad", "srcc", "dstc", "bad.lua");
    e->d = tfs_test_daemon_start(e->cfg);
    snprintf(e->url, sizeof e->url, "http://127.0.0.1:%d", e->d->port);
}

static void penv_down(penv *e)
{
    tfs_test_daemon_stop(e->d);
    json_decref(e->cfg);
    tfs_test_db_drop(e->state);
    free(e->state);
    if (e->root[0] && !getenv("TFS_TEST_KEEP")) {
        char cmd[300];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", e->root);
        cr_expect_eq(system(cmd), 0);
    }
}

static run_result ptfsync(const penv *e, const char *key, const char *args)
{
    char full[4096];
    snprintf(full, sizeof full, "--url %s --key %s %s", e->url, key, args);
    return tfsync(full);
}

/* tfsync under a pseudo-terminal (stdin, stdout and stderr on its slave side). */
typedef struct pty_child {
    pid_t pid;
    int master;
    char buf[65536];
    size_t len;
} pty_child;

static void pty_start(pty_child *p, char *const argv[])
{
    memset(p, 0, sizeof *p);
    p->master = posix_openpt(O_RDWR | O_NOCTTY);
    cr_assert_geq(p->master, 0, "posix_openpt: %s", strerror(errno));
    cr_assert_eq(grantpt(p->master), 0);
    cr_assert_eq(unlockpt(p->master), 0);
    const char *slave = ptsname(p->master);
    cr_assert_not_null(slave);
    p->pid = fork();
    cr_assert_geq(p->pid, 0);
    if (p->pid == 0) {
        setsid();
        int s = open(slave, O_RDWR); /* the session's controlling terminal */
        if (s < 0)
            _exit(126);
        dup2(s, 0);
        dup2(s, 1);
        dup2(s, 2);
        close(s);
        close(p->master);
        unsetenv("TFSYNC_KEY");
        execv(TFSYNC, argv);
        _exit(127);
    }
}

/* Reads the child's output until it holds needle (NULL: until it ends); 0 when the
 * deadline passed first. */
static int pty_read_until(pty_child *p, const char *needle, int timeout_s)
{
    time_t end = time(NULL) + timeout_s;
    for (;;) {
        if (needle && strstr(p->buf, needle))
            return 1;
        int left = (int)(end - time(NULL));
        if (left <= 0)
            return 0;
        struct pollfd pfd = {p->master, POLLIN, 0};
        int n = poll(&pfd, 1, left * 1000);
        if (n <= 0)
            continue;
        ssize_t got = read(p->master, p->buf + p->len, sizeof p->buf - 1 - p->len);
        if (got <= 0) /* EIO: the slave side closed, the child ended */
            return needle ? strstr(p->buf, needle) != NULL : 1;
        p->len += (size_t)got;
        p->buf[p->len] = '\0';
    }
}

static int pty_wait(pty_child *p)
{
    int st = 0;
    cr_assert_eq(waitpid(p->pid, &st, 0), p->pid);
    close(p->master);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int count_of_str(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *s = hay; (s = strstr(s, needle)); s += strlen(needle))
        n++;
    return n;
}

Test(cli, wait_shows_a_progress_bar_on_a_terminal_and_plain_lines_otherwise)
{
    penv e;
    penv_up(&e);

    /* Under a terminal: the run reads its first batch (10 of its estimated 60) and waits
     * at the gate; the bar shows 10/60, redrawn in place, until the gate opens. */
    char *argv[] = {"tfsync", "--url", e.url, "--key", TFS_TEST_KEY_OPERATE, "sync", "full",
                    "pa", "--wait", NULL};
    pty_child p;
    pty_start(&p, argv);
    int seen = pty_read_until(&p, " 10/60 ", 60);
    cr_assert(seen, "no bar with 10/60 within 60 s; the terminal showed:\n%s", p.buf);
    long id = atol(p.buf);
    cr_assert_gt(id, 0, "the first line is not the run id:\n%s", p.buf);
    /* Redrawn while it waits: a second bar line after a \r, the same 10/60. */
    char want[128];
    snprintf(want, sizeof want, "\rrun %ld running [####--------------------] 10/60 ", id);
    const char *bar1 = strstr(p.buf, want);
    cr_assert_not_null(bar1, "no bar %s:\n%s", want + 1, p.buf);
    size_t at = (size_t)(bar1 - p.buf) + 1;
    time_t until = time(NULL) + 30;
    while (!strstr(p.buf + at, want) && time(NULL) < until)
        pty_read_until(&p, NULL, 1);
    cr_assert_not_null(strstr(p.buf + at, want), "not redrawn in place:\n%s", p.buf);
    open_gate(&e, "gate-a");
    cr_assert(pty_read_until(&p, NULL, 60), "tfsync did not end:\n%s", p.buf);
    int code = pty_wait(&p);
    cr_assert_eq(code, 0, "sync --wait exited %d:\n%s", code, p.buf);
    snprintf(want, sizeof want, "\rrun %ld ", id);
    cr_assert_geq(count_of_str(p.buf, want), 3, "not redrawn in place (%s):\n%s", want + 1,
                  p.buf);
    snprintf(want, sizeof want, "\nrun %ld running", id);
    cr_assert_null(strstr(p.buf, want), "a bar line not drawn in place:\n%s", p.buf);
    cr_assert_not_null(strstr(p.buf, "rec/s"), "no rate:\n%s", p.buf);
    cr_assert_not_null(strstr(p.buf, "ETA "), "no ETA:\n%s", p.buf);
    snprintf(want, sizeof want, "\rrun %ld succeeded [########################] 60/60 100%%",
             id);
    cr_assert_not_null(strstr(p.buf, want), "no final bar (%s):\n%s", want + 1, p.buf);
    /* The final line, on a line of its own after the bar. */
    snprintf(want, sizeof want, "\r\nrun %ld succeeded in ", id);
    const char *fin = strstr(p.buf, want);
    cr_assert_not_null(fin, "no end line:\n%s", p.buf);
    cr_assert_null(strchr(fin + 2, '\r') && strchr(fin + 2, '\r')[1] != '\n' ? fin : NULL,
                   "a bar after the end line:\n%s", p.buf);
    cr_assert_null(strstr(p.buf, TFS_TEST_KEY_OPERATE), "the key on the terminal");

    /* Not a terminal: plain lines, no \r, the end line last. */
    run_result r = ptfsync(&e, TFS_TEST_KEY_OPERATE, "sync full pa --wait");
    cr_assert_eq(r.code, 0, "exited %d\n%s%s", r.code, r.out, r.err);
    cr_assert_null(strchr(r.out, '\r'), "a \\r in plain output:\n%s", r.out);
    id = atol(r.out);
    snprintf(want, sizeof want, "run %ld succeeded: 60/60 100%%", id);
    cr_assert_not_null(strstr(r.out, want), "no plain state line (%s):\n%s", want, r.out);
    cr_assert_not_null(strstr(r.out, "item: read 60 written 0 unchanged 60"), "%s", r.out);
    snprintf(want, sizeof want, "run %ld succeeded in ", id);
    const char *last = strstr(r.out, want);
    cr_assert_not_null(last, "%s", r.out);
    cr_assert_eq(strchr(last, '\n')[1], '\0', "the end line is not the last:\n%s", r.out);
    result_free(&r);
    penv_down(&e);
}

Test(cli, timeout_expires_on_a_held_run)
{
    penv e;
    penv_up(&e);
    /* pb's run waits at its gate after the first batch: --timeout gives up, exit 6, and
     * the run goes on until it is cancelled. */
    time_t t0 = time(NULL);
    run_result r = ptfsync(&e, TFS_TEST_KEY_OPERATE, "sync full pb --wait --timeout 2");
    time_t took = time(NULL) - t0;
    cr_assert_eq(r.code, 6, "exited %d\n%s%s", r.code, r.out, r.err);
    cr_assert_geq(took, 2);
    cr_assert_lt(took, 30, "took %ld s", (long)took);
    long id = atol(r.out);
    cr_assert_gt(id, 0, "%s", r.out);
    char want[160];
    snprintf(want, sizeof want, "tfsync: run %ld is still running after --timeout 2 s", id);
    cr_assert_not_null(strstr(r.err, want), "stderr:\n%s", r.err);
    result_free(&r);

    /* The run is not touched by the timeout: it still runs; cancel it. */
    char args[64];
    snprintf(args, sizeof args, "status %ld", id);
    r = ptfsync(&e, TFS_TEST_KEY_READ, args);
    cr_assert_eq(r.code, 0);
    cr_assert_not_null(strstr(r.out, "full, running"), "%s", r.out);
    result_free(&r);
    snprintf(args, sizeof args, "cancel %ld", id);
    r = ptfsync(&e, TFS_TEST_KEY_OPERATE, args);
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert_not_null(strstr(r.out, "cancel asked"), "%s", r.out);
    result_free(&r);
    open_gate(&e, "gate-b");
    json_t *run = tfs_test_wait_run(e.d, id, 60);
    cr_assert_str_eq(json_string_value(json_object_get(run, "state")), "cancelled");
    json_decref(run);
    penv_down(&e);
}

Test(cli, pairs_plugins_validate_and_audit)
{
    penv e;
    penv_up(&e);
    open_gate(&e, "gate-a");
    json_t *run = tfs_test_run_pair(e.d, "pa", "full", "succeeded");
    long id = (long)json_integer_value(json_object_get(run, "run_id"));
    json_decref(run);

    /* pairs: systems, batch, mappings, schedule, last run. */
    run_result r = ptfsync(&e, TFS_TEST_KEY_READ, "pairs");
    cr_assert_eq(r.code, 0, "pairs exited %d\n%s%s", r.code, r.out, r.err);
    char want[256];
    snprintf(want, sizeof want,
             "pa: srca -> dsta, batch 10, conflicts source_wins\n"
             "  item -> left, right (probe.lua)\n"
             "  schedule: none (runs start through the API)\n"
             "  last run %ld: full succeeded, by ",
             id);
    cr_assert_not_null(strstr(r.out, want), "pairs printed:\n%s\nwanted:\n%s", r.out, want);
    cr_assert_not_null(strstr(r.out, "pb: srcb -> dstb, batch 10"), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "pbad: srcc -> dstc"), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "  last run: none\n"), "%s", r.out);
    result_free(&r);

    /* plugins: the probe with its capabilities, the refused file with its reason. */
    r = ptfsync(&e, TFS_TEST_KEY_READ, "plugins");
    cr_assert_eq(r.code, 0, "plugins exited %d\n%s%s", r.code, r.out, r.err);
    cr_assert_not_null(strstr(r.out, "probe "), "%s", r.out);
    char sdk[64];
    snprintf(sdk, sizeof sdk, " (SDK %d.%d): source, target", TFS_SDK_VERSION_MAJOR,
             TFS_SDK_VERSION_MINOR);
    cr_assert_not_null(strstr(r.out, sdk), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "refused "), "no refused file:\n%s", r.out);
    cr_assert_not_null(strstr(r.out, "broken.so: "), "%s", r.out);
    result_free(&r);
    r = ptfsync(&e, TFS_TEST_KEY_READ, "plugins probe");
    cr_assert_eq(r.code, 0);
    cr_assert_not_null(strstr(r.out, "  settings:\n"), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "    dir (string, required): "), "%s", r.out);
    cr_assert_not_null(strstr(r.out, "    estimate (bool, default true): "), "%s", r.out);
    result_free(&r);
    r = ptfsync(&e, TFS_TEST_KEY_READ, "plugins nosuch");
    cr_assert_eq(r.code, 2);
    cr_assert_not_null(strstr(r.err, "no plugin \"nosuch\""), "%s", r.err);
    result_free(&r);

    /* validate: a valid pair exits 0, one whose script sets a field the target lacks 1. */
    r = ptfsync(&e, TFS_TEST_KEY_OPERATE, "validate pa --sample 5");
    cr_assert_eq(r.code, 0, "validate exited %d\n%s%s", r.code, r.out, r.err);
    cr_assert(strncmp(r.out, "pa: valid, sample 5\nitem -> left, right (probe.lua): ok", 55) == 0,
              "validate printed:\n%s", r.out);
    result_free(&r);
    r = ptfsync(&e, TFS_TEST_KEY_OPERATE, "validate pbad");
    cr_assert_eq(r.code, 1, "validate pbad exited %d\n%s%s", r.code, r.out, r.err);
    cr_assert(strncmp(r.out, "pbad: NOT VALID, sample 20\n", 27) == 0, "%s", r.out);
    cr_assert_not_null(strstr(r.out, "unknown field left.colour (5 records)"), "%s", r.out);
    result_free(&r);
    r = ptfsync(&e, TFS_TEST_KEY_OPERATE, "validate nosuch");
    cr_assert_eq(r.code, 2, "%s%s", r.out, r.err);
    cr_assert_not_null(strstr(r.err, "nosuch"), "%s", r.err);
    result_free(&r);

    /* audit: a page of 25 says where to read on; --after-id reads on; --all reads all. */
    r = ptfsync(&e, TFS_TEST_KEY_READ, "audit --pair pa --entity item --limit 25");
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert_eq(count_of_str(r.out, "\n"), 25, "%s", r.out);
    long first = atol(r.out);
    snprintf(want, sizeof want, "%ld run %ld 1 insert left.id,left.name,right.id,right.name "
                                "(pa item, operator at ",
             first, id);
    cr_assert(strncmp(r.out, want, strlen(want)) == 0, "audit printed:\n%s\nwanted %s", r.out,
              want);
    const char *more = strstr(r.err, "--after-id ");
    cr_assert_not_null(more, "no next page on stderr:\n%s", r.err);
    long next = atol(more + 11);
    cr_assert_eq(next, first + 24, "%s", r.err);
    result_free(&r);
    char args[256];
    snprintf(args, sizeof args, "audit --pair pa --limit 25 --after-id %ld", next);
    r = ptfsync(&e, TFS_TEST_KEY_READ, args);
    cr_assert_eq(r.code, 0);
    cr_assert_eq(atol(r.out), next + 1, "%s", r.out);
    cr_assert_eq(count_of_str(r.out, "\n"), 25);
    result_free(&r);
    r = ptfsync(&e, TFS_TEST_KEY_READ, "audit --pair pa --limit 25 --all");
    cr_assert_eq(r.code, 0);
    cr_assert_eq(count_of_str(r.out, " insert "), 60, "--all:\n%s", r.out);
    cr_assert_str_eq(r.err, "");
    result_free(&r);
    r = ptfsync(&e, TFS_TEST_KEY_READ, "--json audit --pair pa --limit 7 --all");
    json_t *j = json_loads(r.out, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(j, "entries")), 60, "%s", r.out);
    json_decref(j);
    result_free(&r);
    /* --record is the record's key; --key stays the API key. */
    r = ptfsync(&e, TFS_TEST_KEY_READ, "audit --record 7 --key " TFS_TEST_KEY_READ);
    cr_assert_eq(r.code, 0, "%s%s", r.out, r.err);
    cr_assert_eq(count_of_str(r.out, "\n"), 1, "%s", r.out);
    snprintf(want, sizeof want, " run %ld 7 insert ", id);
    cr_assert_not_null(strstr(r.out, want), "%s", r.out);
    result_free(&r);
    /* --since and --until: a day long past holds nothing, from then on everything. */
    r = ptfsync(&e, TFS_TEST_KEY_READ,
                "audit --since 2001-01-01T00:00:00Z --until 2001-01-02T00:00:00Z");
    cr_assert_eq(r.code, 0);
    cr_assert_str_eq(r.out, "");
    result_free(&r);
    r = ptfsync(&e, TFS_TEST_KEY_READ, "audit --since 2001-01-01T00:00:00Z --all --limit 50");
    cr_assert_eq(count_of_str(r.out, " insert "), 60, "%s", r.out);
    result_free(&r);
    r = ptfsync(&e, TFS_TEST_KEY_READ, "audit --entity nosuch");
    cr_assert_eq(r.code, 0);
    cr_assert_str_eq(r.out, "");
    result_free(&r);
    r = ptfsync(&e, TFS_TEST_KEY_READ, "audit --since yesterday");
    cr_assert_eq(r.code, 2);
    cr_assert_not_null(strstr(r.err, "since=\"yesterday\" is not a time"), "%s", r.err);
    result_free(&r);
    penv_down(&e);
}

/* ---- bash completion ---- */

/* The words completion offers for the command line words (a bash array's text) with the
 * cursor on word cword; owned. */
static char *complete(const char *words, int cword)
{
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "PATH='%s':\"$PATH\" bash -c 'source \"%s/cli/completion/tfsync.bash\" && "
             "COMP_WORDS=(%s); COMP_CWORD=%d; COMP_LINE=\"${COMP_WORDS[*]}\"; "
             "_tfsync tfsync \"${COMP_WORDS[COMP_CWORD]}\"; printf \"%%s\\n\" \"${COMPREPLY[@]}\"' "
             "2>&1",
             TFS_BINARY_DIR, TFS_SOURCE_DIR, words, cword);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char *out = calloc(1, 65536);
    size_t n = fread(out, 1, 65535, p);
    out[n] = '\0';
    cr_assert_eq(pclose(p), 0, "%s\n%s", cmd, out);
    return out;
}

Test(cli, completion_loads_and_completes)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "bash -c 'source \"%s/cli/completion/tfsync.bash\" && complete -p tfsync' 2>&1",
             TFS_SOURCE_DIR);
    FILE *p = popen(cmd, "r");
    char line[512] = "";
    cr_assert_not_null(fgets(line, sizeof line, p));
    cr_assert_eq(pclose(p), 0, "%s", line);
    cr_assert_not_null(strstr(line, "-F _tfsync"), "%s", line);
    cr_assert_not_null(strstr(line, " tfsync"), "%s", line);

    char *c = complete("tfsync st", 1);
    cr_assert_str_eq(c, "status\n");
    free(c);
    c = complete("tfsync \"\"", 1);
    for (size_t i = 0; cli_names[i]; i++) {
        char w[64];
        snprintf(w, sizeof w, "%s\n", cli_names[i]);
        cr_assert_not_null(strstr(c, w), "no %s in:\n%s", cli_names[i], c);
    }
    free(c);
    c = complete("tfsync audit --re", 2);
    cr_assert_str_eq(c, "--record\n");
    free(c);
    c = complete("tfsync --json sync full pa --ti", 5);
    cr_assert_str_eq(c, "--timeout\n");
    free(c);
    c = complete("tfsync dead-letters re", 2);
    cr_assert_str_eq(c, "replay\n");
    free(c);
    /* No daemon: pair names are quietly nothing. */
    c = complete("tfsync --url http://127.0.0.1:9 sync full \"\"", 5);
    cr_assert_str_eq(c, "\n");
    free(c);

    /* A daemon: the pair names from tfsync pairs. */
    penv e;
    penv_up(&e);
    char words[512];
    snprintf(words, sizeof words, "tfsync --url %s --key %s sync full p", e.url,
             TFS_TEST_KEY_READ);
    c = complete(words, 7);
    cr_assert_str_eq(c, "pa\npb\npbad\n");
    free(c);
    snprintf(words, sizeof words, "tfsync --url %s --key %s validate pb", e.url,
             TFS_TEST_KEY_READ);
    c = complete(words, 6);
    cr_assert_str_eq(c, "pb\npbad\n");
    free(c);
    snprintf(words, sizeof words, "tfsync --url %s --key %s audit --pair pa", e.url,
             TFS_TEST_KEY_READ);
    c = complete(words, 7);
    cr_assert_str_eq(c, "pa\n");
    free(c);
    penv_down(&e);
}
