/* tests/fault/outage_test.c — outages healed without an operator: the target, the source or
 * the state store server stopped while a full sync of TFS_FAULT_PARCELS parcels runs. The
 * run stops at a known record (the hold), the server is stopped, and the run must show
 * `waiting` with the system's breaker open and /health saying `down` (answering in well
 * under a second), then end by itself, exactly right, once the server is back. Beside them:
 * a worker that is not held by a waiting run, a schedule that goes on, transient SQLSTATEs
 * injected on target writes, a system that accepts connections and never answers, and the
 * cancel of a waiting run.
 *
 * Each case prints how long the run took to heal (from the server's start to the run's
 * end) as "heal: <case>: <ms> ms".
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fault_env.h"

TestSuite(outage, .timeout = 900);

/* Probes back off up to this in the cases, so a case heals within seconds of the server's
 * start (the default is 30s). */
#define PROBE_MAX "1s"

static const char *const role_system[] = {"pacs", "cama", NULL};

/* GET path; the response (fails unless an HTTP answer came). */
static tfs_test_response get(fault_env *e, const char *path)
{
    tfs_test_response r = tfs_test_http(e->d, "GET", path, TFS_TEST_KEY_READ, NULL);
    cr_assert_neq(r.status, 0, "GET %s: no answer: %s", path, r.error);
    return r;
}

/* GET /health, which must answer within a second whatever is down. */
static json_t *health(fault_env *e)
{
    long long t0 = fault_now_ms();
    tfs_test_response r = tfs_test_http(e->d, "GET", "/health", NULL, NULL);
    long long took = fault_now_ms() - t0;
    cr_assert_neq(r.status, 0, "GET /health: no answer: %s", r.error);
    cr_assert_lt(took, 1000, "GET /health took %lld ms", took);
    json_t *body = json_incref(r.json);
    tfs_test_response_free(&r);
    cr_assert_not_null(body, "GET /health: not JSON");
    return body;
}

/* The part of /health for a system, or for the state store (system NULL). */
static json_t *health_of(json_t *h, const char *system)
{
    return system ? json_object_get(json_object_get(h, "systems"), system)
                  : json_object_get(h, "state_store");
}

/* Waits until /health shows system (NULL: the state store) with this status and circuit
 * (NULL: any). */
static void wait_health(fault_env *e, const char *system, const char *status,
                        const char *circuit)
{
    long long deadline = fault_now_ms() + 120000;
    for (;;) {
        json_t *h = health(e);
        json_t *o = health_of(h, system);
        const char *st = json_string_value(json_object_get(o, "status"));
        const char *ci = json_string_value(json_object_get(o, "circuit"));
        int ok = st && ci && strcmp(st, status) == 0 && (!circuit || strcmp(ci, circuit) == 0);
        char *text = json_dumps(h, JSON_COMPACT);
        json_decref(h);
        if (ok) {
            free(text);
            return;
        }
        cr_assert_lt(fault_now_ms(), deadline, "/health never showed %s %s/%s: %s",
                     system ? system : "the state store", status, circuit ? circuit : "any",
                     text);
        free(text);
        fault_pause_ms(50);
    }
}

/* The run's state through the API, or "" while the API cannot tell (the store is down). */
static void run_state(fault_env *e, json_int_t run_id, char out[32], json_t **run)
{
    char path[64];
    snprintf(path, sizeof path, "/sync/status/%lld", (long long)run_id);
    tfs_test_response r = get(e, path);
    const char *st = r.status == 200 ? json_string_value(json_object_get(r.json, "state")) : "";
    snprintf(out, 32, "%s", st ? st : "");
    if (run)
        *run = r.status == 200 ? json_incref(r.json) : NULL;
    tfs_test_response_free(&r);
}

/* Waits (up to within_ms) until the run is in state; its status (owned). */
static json_t *wait_state_within(fault_env *e, json_int_t run_id, const char *state,
                                 long long within_ms)
{
    long long deadline = fault_now_ms() + within_ms;
    for (;;) {
        char st[32];
        json_t *run;
        run_state(e, run_id, st, &run);
        if (strcmp(st, state) == 0)
            return run;
        json_decref(run);
        cr_assert(strcmp(st, "failed") != 0 && strcmp(st, "succeeded") != 0 &&
                      strcmp(st, "cancelled") != 0,
                  "run %lld ended %s, want %s", (long long)run_id, st, state);
        cr_assert_lt(fault_now_ms(), deadline, "run %lld never became %s (it is %s)",
                     (long long)run_id, state, st);
        fault_pause_ms(50);
    }
}

static json_t *wait_state(fault_env *e, json_int_t run_id, const char *state)
{
    return wait_state_within(e, run_id, state, 300000);
}

static void env_up(fault_env *e)
{
    fault_env_init(e);
    json_object_set_new(e->cfg, "breaker", json_pack("{ss}", "max_probe_interval", PROBE_MAX));
    json_object_set_new(e->cfg, "retry", json_pack("{ss}", "max_backoff", "1s"));
}

/* A second pair, tpl-self, on the template plugin (no server): its systems stay up
 * whatever the case stops. Its mapping goes into a copy of the transform folder. */
static char *add_template_pair(fault_env *e)
{
    char *dir = strdup("/tmp/tfs-fault-transforms-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "cp -R '%s/.' '%s/'",
             json_string_value(json_object_get(e->cfg, "transform_dir")), dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/item_copy.lua", dir);
    FILE *f = fopen(cmd, "w");
    cr_assert_not_null(f);
    fputs("function map(s)\n"
          "  return { item = { id = s.id + 100000, name = s.name, price = s.price,\n"
          "                    updated = s.updated } }\n"
          "end\n",
          f);
    fclose(f);
    json_object_set_new(e->cfg, "transform_dir", json_string(dir));
    /* The template is built apart from the shipped plugins; this folder holds both. */
    json_object_set_new(e->cfg, "plugin_dir", json_string(TFS_TEST_PLUGINS_WITH_TEMPLATE));
    json_object_set_new(json_object_get(e->cfg, "systems"), "tpl",
                        json_pack("{sss{si}}", "plugin", "template", "settings", "rows", 50));
    json_array_append_new(json_object_get(e->cfg, "pairs"),
                          json_pack("{sssssssis[{sss[s]ss}]}", "name", "tpl-self", "source",
                                    "tpl", "target", "tpl", "batch_size", 10, "entities",
                                    "source", "item", "targets", "item", "script",
                                    "item_copy.lua"));
    return dir;
}

static void remove_dir(char *dir)
{
    char cmd[1100];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_expect_eq(system(cmd), 0);
    free(dir);
}

typedef struct outage_opts {
    const char *name;
    fault_role role;     /* the server stopped */
    long down_ms;        /* how long it stays down after the run is seen waiting */
    int other_pair;      /* with workers 1, a run of tpl-self completes meanwhile */
    int schedule;        /* the pair runs every second: scheduled runs go on afterwards */
    int crash;           /* the server crashes (immediate shutdown) rather than stops */
} outage_opts;

/* Holds the write of the parcel halfway through a full sync, stops the server, lets the
 * run go on into the outage, waits for `waiting` and the breaker open, keeps the server
 * down, starts it and waits for the run to end by itself. */
static void outage(const outage_opts *o)
{
    fault_env e;
    env_up(&e);
    char *dir = NULL;
    if (o->other_pair) {
        dir = add_template_pair(&e);
        json_object_set_new(e.cfg, "workers", json_integer(1));
    }
    if (o->schedule)
        json_object_set_new(json_array_get(json_object_get(e.cfg, "pairs"), 0), "schedule",
                            json_pack("{ss}", "incremental_every", "1s"));
    json_int_t total = fault_active_props(&e);
    fault_hold h;
    char parid[64];
    fault_nth_parid(&e, total / 2, TFS_TEST_ACTIVE_PROPS, parid);
    fault_hold_set(&e, &h, parid);
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t run_id = fault_start_run(&e, "full");
    fault_hold_wait(&e, &h, run_id, total / 2 / FAULT_BATCH * FAULT_BATCH);

    json_int_t mapped_before = 0;
    if (o->crash) {
        /* The WAL writer wakes every 10 s: the batches' commits, which do not wait for
         * the flush, stay in the server's WAL buffers and the crash takes them. */
        fault_exec(o->role, "postgres", "ALTER SYSTEM SET wal_writer_delay = '10s'");
        fault_exec(o->role, "postgres", "SELECT pg_reload_conf()");
        if (o->role == FAULT_STATE)
            mapped_before = fault_int(FAULT_STATE, e.state, "SELECT count(*) FROM"
                                                            " tfsync.sync_map");
        fault_server_crash(o->role);
    } else {
        fault_server_stop(o->role);
    }
    long long stopped = fault_now_ms();
    if (o->role == FAULT_TARGET)
        fault_hold_drop(&h);
    else
        fault_hold_release(&h);
    const char *system = o->role == FAULT_STATE ? NULL : role_system[o->role];
    wait_health(&e, system, "down", "open");
    if (o->role != FAULT_STATE) {
        json_t *run = wait_state_within(&e, run_id, "waiting", 30000);
        json_t *w = json_object_get(run, "waiting");
        cr_assert(json_is_string(json_object_get(w, "reason")) &&
                      json_is_string(json_object_get(w, "since")),
                  "a waiting run says why and since when");
        json_decref(run);
        /* One run per pair: a waiting run holds it. */
        tfs_test_response r = tfs_test_http(e.d, "POST", "/sync/full", TFS_TEST_KEY_OPERATE,
                                            "{\"pair\": \"" FAULT_PAIR "\"}");
        cr_assert_eq(r.status, 409, "POST /sync/full while a run waits: %ld", r.status);
        cr_assert_eq(json_integer_value(json_object_get(r.json, "run_id")), run_id);
        tfs_test_response_free(&r);
        tfs_test_response s = get(&e, "/sync/status");
        cr_assert_str_eq(json_string_value(json_object_get(
                             json_object_get(json_object_get(json_object_get(s.json, "pairs"),
                                                             FAULT_PAIR),
                                             "last_run"),
                             "state")),
                         "waiting", "/sync/status shows the run waiting: %s", s.body);
        tfs_test_response_free(&s);
    }
    fprintf(stderr, "heal: %s: run %lld seen waiting %lld ms after the stop\n", o->name,
            (long long)run_id, fault_now_ms() - stopped);
    if (o->other_pair) {
        tfs_test_response r = tfs_test_http(e.d, "POST", "/sync/full", TFS_TEST_KEY_OPERATE,
                                            "{\"pair\": \"tpl-self\"}");
        cr_assert_eq(r.status, 202, "POST /sync/full of tpl-self: %ld %s", r.status, r.body);
        json_int_t other = json_integer_value(json_object_get(r.json, "run_id"));
        tfs_test_response_free(&r);
        /* 50 items on a plugin without a server: seconds, unless no worker is free. */
        json_t *done = wait_state_within(&e, other, "succeeded", 30000);
        json_decref(done);
        char st[32];
        run_state(&e, run_id, st, NULL);
        cr_assert_str_eq(st, "waiting", "the held run still waits while tpl-self ran");
    }
    long long until = stopped + o->down_ms;
    while (fault_now_ms() < until) {
        json_decref(health(&e)); /* answers fast all along */
        fault_pause_ms(200);
    }
    fault_server_start(o->role);
    long long back = fault_now_ms();
    if (o->crash) {
        fault_exec(o->role, "postgres", "ALTER SYSTEM RESET wal_writer_delay");
        fault_exec(o->role, "postgres", "SELECT pg_reload_conf()");
        if (o->role == FAULT_STATE)
            fprintf(stderr, "heal: %s: %lld sync map rows before the crash, %lld after its"
                            " recovery\n", o->name, (long long)mapped_before,
                    (long long)fault_int(FAULT_STATE, e.state,
                                         "SELECT count(*) FROM tfsync.sync_map"));
    }
    json_t *run = fault_wait_ok(&e, run_id);
    long long healed = fault_now_ms() - back;
    fprintf(stderr, "heal: %s: down %lld ms, run %lld ended %lld ms after the server was back\n",
            o->name, back - stopped, (long long)run_id, healed);
    json_int_t mapped = fault_int(FAULT_STATE, e.state, "SELECT count(*) FROM tfsync.sync_map"
                                                        " WHERE entity = 'property'");
    fault_assert_exact(&e, run, run_id, mapped);
    json_decref(run);
    cr_assert_eq(fault_int(FAULT_STATE, e.state, "SELECT count(*) FROM tfsync.runs WHERE"
                                                 " pair = '" FAULT_PAIR "' AND mode = 'full'"),
                 1, "the run healed is the same run");
    wait_health(&e, system, "ok", "closed");
    if (o->schedule) {
        char sql[256];
        snprintf(sql, sizeof sql,
                 "SELECT count(*) FROM tfsync.runs WHERE actor = 'scheduler' AND state ="
                 " 'succeeded' AND run_id > %lld",
                 (long long)run_id);
        long long deadline = fault_now_ms() + 60000;
        while (fault_int(FAULT_STATE, e.state, sql) < 2) {
            cr_assert_lt(fault_now_ms(), deadline, "the schedule did not go on after the outage");
            fault_pause_ms(100);
        }
    }
    fault_env_down(&e);
    if (dir)
        remove_dir(dir);
}

Test(outage, target_down_5s_while_another_pair_runs)
{
    outage(&(outage_opts){"target down 5s", FAULT_TARGET, 5000, 1, 0, 0});
}

Test(outage, target_down_60s_then_the_schedule_goes_on)
{
    outage(&(outage_opts){"target down 60s", FAULT_TARGET, 60000, 0, 1, 0});
}

Test(outage, source_down_5s)
{
    outage(&(outage_opts){"source down 5s", FAULT_SOURCE, 5000, 0, 0, 0});
}

Test(outage, state_store_down_5s)
{
    outage(&(outage_opts){"state store down 5s", FAULT_STATE, 5000, 0, 0, 0});
}

/* A run's batches commit without waiting for the WAL flush (async_commit): a crash of the
 * state store's server may take the last of them back, and the run must still end exactly
 * right, each record written once in effect and audited once. The crash also closes the
 * connections without a FATAL message, which libpq answers with an error that has no
 * SQLSTATE on a connection it still calls good: a lost connection all the same, or the
 * run would fail instead of waiting. */
Test(outage, state_store_crash)
{
    outage(&(outage_opts){"state store crash", FAULT_STATE, 2000, 0, 0, 1});
}

/* ---- transient SQLSTATEs on target writes: retried, never dead letters ---- */

Test(outage, deadlock_serialization_and_lock_timeout_are_retried)
{
    fault_env e;
    env_up(&e);
    /* A sequence, not a table: its value survives the failed transaction it is read in. */
    fault_exec(FAULT_TARGET, e.cama,
               "CREATE SEQUENCE test_inject;"
               "CREATE FUNCTION test_inject() RETURNS trigger LANGUAGE plpgsql AS $$"
               " DECLARE n bigint := nextval('test_inject'); BEGIN"
               " IF n IN (500, 1700, 2900) THEN RAISE EXCEPTION 'injected failure %', n"
               "  USING ERRCODE = CASE n WHEN 500 THEN '40P01' WHEN 1700 THEN '40001'"
               "  ELSE '55P03' END; END IF; RETURN NEW; END $$;"
               "CREATE TRIGGER test_inject BEFORE INSERT OR UPDATE ON pardat FOR EACH ROW"
               " EXECUTE FUNCTION test_inject();");
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t run_id = fault_start_run(&e, "full");
    json_t *run = fault_wait_ok(&e, run_id);
    cr_assert_geq(fault_int(FAULT_TARGET, e.cama, "SELECT last_value FROM test_inject"), 2900,
                  "the injected failures were not reached");
    cr_assert_eq(fault_int(FAULT_STATE, e.state, "SELECT count(*) FROM tfsync.failed_records"),
                 0, "a transient failure was dead-lettered");
    json_int_t mapped = fault_int(FAULT_STATE, e.state, "SELECT count(*) FROM tfsync.sync_map"
                                                        " WHERE entity = 'property'");
    fault_assert_exact(&e, run, run_id, mapped);
    json_decref(run);
    char *log = tfs_test_daemon_log(e.d);
    cr_assert(strstr(log, "40P01") || strstr(log, "deadlock") || strstr(log, "retrying"),
              "the log shows no retry");
    free(log);
    fault_env_down(&e);
}

/* ---- a system that accepts connections and never answers ---- */

typedef struct mute_listener {
    int fd, port;
    atomic_int stop;
    int conns[64];
    int n;
    pthread_t thread;
} mute_listener;

static void *mute_main(void *arg)
{
    mute_listener *m = arg;
    while (!atomic_load(&m->stop)) {
        int c = accept(m->fd, NULL, NULL);
        if (c < 0)
            continue;
        if (m->n < 64)
            m->conns[m->n++] = c; /* kept open, never written to */
        else
            close(c);
    }
    return NULL;
}

static void mute_start(mute_listener *m)
{
    memset(m, 0, sizeof *m);
    m->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(m->fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    cr_assert_eq(bind(m->fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(m->fd, 16), 0);
    socklen_t len = sizeof a;
    cr_assert_eq(getsockname(m->fd, (struct sockaddr *)&a, &len), 0);
    m->port = ntohs(a.sin_port);
    cr_assert_eq(pthread_create(&m->thread, NULL, mute_main, m), 0);
}

static void mute_stop(mute_listener *m)
{
    atomic_store(&m->stop, 1);
    shutdown(m->fd, SHUT_RDWR); /* wakes accept */
    close(m->fd);
    pthread_join(m->thread, NULL);
    for (int i = 0; i < m->n; i++)
        close(m->conns[i]);
}

Test(outage, health_answers_fast_while_systems_do_not)
{
    fault_env e;
    env_up(&e);
    mute_listener m;
    mute_start(&m);
    char conninfo[256];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%d dbname=mute user=mute", m.port);
    json_object_set_new(json_object_get(e.cfg, "systems"), "mute",
                        json_pack("{sss{ss}}", "plugin", "cama", "settings", "conninfo",
                                  conninfo));
    e.d = tfs_test_daemon_start(e.cfg);
    wait_health(&e, "mute", "down", NULL);
    /* A stopped server too: the source. */
    fault_server_stop(FAULT_SOURCE);
    wait_health(&e, "pacs", "down", "open");
    for (int i = 0; i < 10; i++) {
        json_t *h = health(&e);
        cr_assert_str_eq(json_string_value(json_object_get(health_of(h, "mute"), "status")),
                         "down");
        json_decref(h);
    }
    tfs_test_response s = get(&e, "/sync/status");
    cr_assert_eq(s.status, 200);
    tfs_test_response_free(&s);
    fault_server_start(FAULT_SOURCE);
    wait_health(&e, "pacs", "ok", "closed");
    json_int_t run_id = fault_start_run(&e, "full");
    json_t *run = fault_wait_ok(&e, run_id);
    json_int_t mapped = fault_int(FAULT_STATE, e.state, "SELECT count(*) FROM tfsync.sync_map"
                                                        " WHERE entity = 'property'");
    fault_assert_exact(&e, run, run_id, mapped);
    json_decref(run);
    fault_env_down(&e);
    mute_stop(&m);
}

/* ---- cancel of a waiting run ---- */

Test(outage, cancel_of_a_waiting_run)
{
    fault_env e;
    env_up(&e);
    json_int_t total = fault_active_props(&e);
    fault_hold h;
    char parid[64];
    fault_nth_parid(&e, total / 2, TFS_TEST_ACTIVE_PROPS, parid);
    fault_hold_set(&e, &h, parid);
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t run_id = fault_start_run(&e, "full");
    fault_hold_wait(&e, &h, run_id, total / 2 / FAULT_BATCH * FAULT_BATCH);
    fault_server_stop(FAULT_TARGET);
    fault_hold_drop(&h);
    json_decref(wait_state(&e, run_id, "waiting"));

    char path[96];
    /* The cancel takes effect while the target is still down: within seconds. */
    snprintf(path, sizeof path, "/sync/runs/%lld/cancel", (long long)run_id);
    tfs_test_response r = tfs_test_http(e.d, "POST", path, TFS_TEST_KEY_READ, "");
    cr_assert_eq(r.status, 403, "cancel needs the operate role: %ld", r.status);
    tfs_test_response_free(&r);
    r = tfs_test_http(e.d, "POST", path, TFS_TEST_KEY_OPERATE, "");
    cr_assert_eq(r.status, 202, "cancel: %ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    json_t *run = wait_state_within(&e, run_id, "cancelled", 10000);
    json_decref(run);
    r = tfs_test_http(e.d, "POST", path, TFS_TEST_KEY_OPERATE, "");
    cr_assert_eq(r.status, 409, "cancel of a cancelled run: %ld %s", r.status, r.body);
    tfs_test_response_free(&r);
    r = tfs_test_http(e.d, "POST", "/sync/runs/999999/cancel", TFS_TEST_KEY_OPERATE, "");
    cr_assert_eq(r.status, 404, "cancel of an unknown run: %ld", r.status);
    tfs_test_response_free(&r);
    /* What was committed stays. */
    json_int_t kept = fault_int(FAULT_STATE, e.state, "SELECT count(*) FROM tfsync.sync_map");
    cr_assert_geq(kept, total / 2 / FAULT_BATCH * FAULT_BATCH,
                  "the cancelled run's committed batches are gone");

    fault_server_start(FAULT_TARGET);
    wait_health(&e, "cama", "ok", "closed");
    json_int_t again = fault_start_run(&e, "full");
    run = fault_wait_ok(&e, again);
    fault_assert_exact(&e, run, again, -1);
    json_decref(run);
    fault_env_down(&e);
}

/* ---- a pair's max_wait: the one way an outage fails a run ---- */

Test(outage, waiting_past_max_wait_fails_and_the_pair_runs_again)
{
    fault_env e;
    env_up(&e);
    json_object_set_new(json_array_get(json_object_get(e.cfg, "pairs"), 0), "max_wait",
                        json_string("2s"));
    json_int_t total = fault_active_props(&e);
    fault_hold h;
    char parid[64];
    fault_nth_parid(&e, total / 2, TFS_TEST_ACTIVE_PROPS, parid);
    fault_hold_set(&e, &h, parid);
    e.d = tfs_test_daemon_start(e.cfg);
    json_int_t run_id = fault_start_run(&e, "full");
    fault_hold_wait(&e, &h, run_id, total / 2 / FAULT_BATCH * FAULT_BATCH);
    fault_server_stop(FAULT_TARGET);
    fault_hold_drop(&h);
    json_decref(wait_state_within(&e, run_id, "waiting", 30000));
    long long deadline = fault_now_ms() + 30000;
    char st[32];
    json_t *run = NULL;
    for (;;) {
        run_state(&e, run_id, st, &run);
        if (strcmp(st, "failed") == 0)
            break;
        json_decref(run);
        cr_assert_lt(fault_now_ms(), deadline, "run %lld never failed past max_wait (%s)",
                     (long long)run_id, st);
        fault_pause_ms(50);
    }
    const char *why = json_string_value(json_object_get(run, "error"));
    cr_assert(why && strstr(why, "max_wait"), "the failed run says why: %s", why ? why : "-");
    json_decref(run);
    fault_server_start(FAULT_TARGET);
    wait_health(&e, "cama", "ok", "closed");
    json_int_t again = fault_start_run(&e, "full");
    run = fault_wait_ok(&e, again);
    fault_assert_exact(&e, run, again, -1);
    json_decref(run);
    fault_env_down(&e);
}
