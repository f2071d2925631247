/* tests/integration/adapter_timeout_test.c — the PostgreSQL adapters' own timeouts.
 *
 * connect_timeout: a CAMA system pointed at a TCP listener that accepts and never answers
 * gives up after its connect_timeout with a transient "could not connect" error, instead of
 * waiting forever. statement_timeout: a CAMA write held by a trigger that sleeps far longer
 * than the timeout is cancelled by the server (SQLSTATE 57014), retried as transient, and
 * the run ends right long before the sleep would have.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "plugin_host.h"
#include "tfs_test.h"

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- a server that accepts and never says a word ---- */

typedef struct silent_server {
    int fd;
    int port;
    int conns[16];
    int n_conns;
    pthread_t thread;
} silent_server;

static void *silent_main(void *arg)
{
    silent_server *s = arg;
    for (;;) {
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        if (s->n_conns < 16)
            s->conns[s->n_conns++] = c; /* kept open, never written */
        else
            close(c);
    }
}

static void silent_start(silent_server *s)
{
    memset(s, 0, sizeof *s);
    s->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(s->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(s->fd, 16), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(s->fd, (struct sockaddr *)&a, &len), 0);
    s->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&s->thread, NULL, silent_main, s), 0);
}

static void silent_stop(silent_server *s)
{
    shutdown(s->fd, SHUT_RDWR);
    close(s->fd);
    pthread_join(s->thread, NULL);
    for (int i = 0; i < s->n_conns; i++)
        close(s->conns[i]);
}

Test(adapter_timeout, cama_gives_up_after_its_connect_timeout, .timeout = 60)
{
    silent_server srv;
    silent_start(&srv);
    tfs_error err = {0};
    tfs_plugin_host *host = NULL;
    cr_assert_eq(tfs_plugin_host_load_dir(TFS_PLUGIN_DIR, 2026, &host, &err), 0, "%s",
                 err.message);
    const tfs_plugin *cama = tfs_plugin_host_get(host, "cama");
    cr_assert(cama != NULL, "the cama plugin is not loaded");
    char conninfo[128];
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%d dbname=cama user=tfsync sslmode=disable", srv.port);
    json_t *settings = json_pack("{s:s, s:i}", "conninfo", conninfo, "connect_timeout", 2);

    /* Opening never connects (lazy open); the health check connects, and the attempt ends
     * after the 2 s. */
    tfs_instance *inst = NULL;
    long long t0 = now_ms();
    cr_assert_eq(tfs_instance_open(cama, "cama", settings, NULL, &inst, &err), 0, "%s", err.message);
    long long open_ms = now_ms() - t0;
    t0 = now_ms();
    int rc = tfs_instance_health(inst, &err);
    long long health_ms = now_ms() - t0;
    fprintf(stderr, "adapter_timeout: open %lld ms, health %lld ms: %s\n", open_ms, health_ms,
            err.message);
    cr_expect_eq(rc, TFS_ETRANSIENT, "the health check of a silent server: %d %s", rc,
                 err.message);
    cr_expect(strstr(err.message, "could not connect to the cama database") != NULL, "%s",
              err.message);
    cr_expect(strstr(err.message, "timeout") != NULL, "%s", err.message);
    cr_expect(open_ms < 500, "the open took %lld ms: it must not connect", open_ms);
    cr_expect_eq(srv.n_conns, 1, "one connection, by the health check");
    cr_expect(health_ms >= 1500 && health_ms < 5000, "the health check took %lld ms", health_ms);
    tfs_instance_close(inst);
    json_decref(settings);
    tfs_plugin_host_free(host);
    silent_stop(&srv);
}

Test(adapter_timeout, cama_settings_refuse_bad_timeouts)
{
    tfs_error err = {0};
    tfs_plugin_host *host = NULL;
    cr_assert_eq(tfs_plugin_host_load_dir(TFS_PLUGIN_DIR, 2026, &host, &err), 0, "%s",
                 err.message);
    const char *plugins[] = {"cama", "pacs"};
    for (int i = 0; i < 2; i++) {
        const tfs_plugin *p = tfs_plugin_host_get(host, plugins[i]);
        cr_assert(p != NULL);
        json_t *settings = json_pack("{s:s, s:i}", "conninfo", "dbname=x", "connect_timeout", 0);
        tfs_instance *inst = NULL;
        cr_expect_neq(tfs_instance_open(p, plugins[i], settings, NULL, &inst, &err), 0);
        cr_expect(strstr(err.message, "connect_timeout: \"0\"") != NULL, "%s", err.message);
        tfs_instance_close(inst);
        json_decref(settings);
        settings = json_pack("{s:s, s:i}", "conninfo", "dbname=x", "statement_timeout", -1);
        inst = NULL;
        cr_expect_neq(tfs_instance_open(p, plugins[i], settings, NULL, &inst, &err), 0);
        cr_expect(strstr(err.message, "statement_timeout: \"-1\"") != NULL, "%s", err.message);
        tfs_instance_close(inst);
        json_decref(settings);
    }
    tfs_plugin_host_free(host);
}

/* ---- statement_timeout ---- */

Test(adapter_timeout, cama_statement_timeout_cancels_a_hung_write, .timeout = 120)
{
    char *pacs, *cama, *state;
    tfs_test_clone_dbs(TFS_TEST_TMPL_PACS10K, NULL, &pacs, &cama, &state);
    /* The first write of one parcel sleeps 60 s (nextval is not rolled back with the
     * cancelled statement, so the retry goes through). */
    char *parid = tfs_test_pg_scalar(pacs, "SELECT parid FROM " TFS_TEST_ACTIVE_PROPS
                                           " a ORDER BY prop_id OFFSET 1500 LIMIT 1");
    cr_assert(parid != NULL);
    char sql[1024];
    snprintf(sql, sizeof sql,
             "CREATE SEQUENCE test_sleep_once;"
             "CREATE FUNCTION test_sleep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
             " IF NEW.parid = '%s' AND nextval('test_sleep_once') = 1 THEN"
             " PERFORM pg_sleep(60); END IF; RETURN NEW; END $$;"
             "CREATE TRIGGER test_sleep BEFORE INSERT OR UPDATE ON pardat FOR EACH ROW"
             " EXECUTE FUNCTION test_sleep()",
             parid);
    tfs_test_pg_exec(cama, sql);
    json_t *cfg = tfs_test_config_new(pacs, cama, state);
    json_t *cs = json_object_get(json_object_get(json_object_get(cfg, "systems"), "cama"),
                                 "settings");
    json_object_set_new(cs, "statement_timeout", json_integer(1000));
    tfs_test_daemon *d = tfs_test_daemon_start(cfg);

    /* GET /plugins shows the settings with their defaults. */
    tfs_test_response r = tfs_test_http(d, "GET", "/plugins", TFS_TEST_KEY_READ, NULL);
    cr_assert_eq(r.status, 200);
    cr_expect(strstr(r.body, "connect_timeout") && strstr(r.body, "statement_timeout"), "%s",
              r.body);
    tfs_test_response_free(&r);

    long long t0 = now_ms();
    json_int_t run_id = tfs_test_start_full(d, "pacs-to-cama");
    json_t *run = tfs_test_wait_run(d, run_id, 100);
    long long took = now_ms() - t0;
    fprintf(stderr, "adapter_timeout: the run took %lld ms\n", took);
    cr_expect_str_eq(json_string_value(json_object_get(run, "state")), "succeeded",
                     "the run did not succeed: %s",
                     json_string_value(json_object_get(run, "error")));
    cr_expect_lt(took, 45000, "the run waited out the 60 s sleep (%lld ms)", took);
    char *log = tfs_test_daemon_log(d);
    cr_expect(strstr(log, "statement timeout") != NULL && strstr(log, "retrying") != NULL,
              "the log does not show the write cancelled and retried:\n%s", log);
    free(log);
    /* The cancelled write was retried: CAMA is what the SQL twin says. */
    char *pacs_ci = tfs_test_pg_conninfo(pacs);
    tfs_test_assert_matches_twin(pacs_ci, cama, "pardat", TFS_TEST_PARDAT_COLS,
                                 "pacs_to_cama_pardat.sql");
    free(pacs_ci);
    json_decref(run);
    tfs_test_daemon_stop_clean(d);
    json_decref(cfg);
    free(parid);
    tfs_test_drop_dbs(&pacs, &cama, &state);
}
