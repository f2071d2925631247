/* tests/integration/cli_test.c — the tfsync command-line client against a real daemon:
 * each case runs the built TFS_BINARY_DIR/tfsync as a subprocess (popen, stderr to a file)
 * and checks what it prints and how it exits. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tfs_test.h"

#define TFSYNC TFS_BINARY_DIR "/tfsync"

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
    snprintf(args, sizeof args, "audit --key '%s'", key);
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
                                      "audit --limit", "audit --bogus 1", "--bogus health"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        run_result r = tfsync(bad[i]);
        cr_assert_eq(r.code, 64, "\"%s\" exited %d\n%s%s", bad[i], r.code, r.out, r.err);
        cr_assert_not_null(strstr(r.err, "usage: tfsync"), "\"%s\" stderr:\n%s", bad[i], r.err);
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
