/* tests/integration/harness_test.c — proves the test harness itself (tests/support) on the
 * real test server, without tfsyncd: databases cloned from a template and dropped, queries
 * and psql files, the config builder, and the HTTP client against a small libmicrohttpd
 * server and against a port nobody listens on. If these fail, every integration test would
 * fail for reasons that have nothing to do with the daemon.
 */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <microhttpd.h>

#include "tfs_test.h"

static int db_exists(const char *name)
{
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM pg_database WHERE datname = '%s'", name);
    char *n = tfs_test_pg_scalar("postgres", sql);
    int found = n && strcmp(n, "1") == 0;
    free(n);
    return found;
}

Test(harness, clone_and_drop)
{
    char *a = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "Harness-Clone");
    char *b = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "Harness-Clone");
    cr_assert_str_neq(a, b, "two clones got the same name %s", a);
    cr_assert(strncmp(a, "harness_clone_", 14) == 0, "label not folded: %s", a);
    cr_assert(strlen(a) <= 63, "name longer than PostgreSQL allows: %s", a);
    cr_assert(db_exists(a) && db_exists(b));

    /* Writes land in the clone only. */
    tfs_test_pg_exec(a, "CREATE TABLE t (x int); INSERT INTO t VALUES (1), (2), (3)");
    char *n = tfs_test_pg_scalar(a, "SELECT sum(x) FROM t");
    cr_assert_str_eq(n, "6");
    free(n);
    n = tfs_test_pg_scalar(b, "SELECT count(*) FROM pg_class WHERE relname = 't'");
    cr_assert_str_eq(n, "0");
    free(n);

    /* An open session does not stop the drop. */
    PGconn *held = tfs_test_pg_connect(a);
    tfs_test_db_drop(a);
    PQfinish(held);
    tfs_test_db_drop(b);
    cr_assert(!db_exists(a) && !db_exists(b));
    tfs_test_db_drop(a); /* already gone: fine */
    tfs_test_db_drop(NULL);
    free(a);
    free(b);
}

Test(harness, scalar_values)
{
    char *v = tfs_test_pg_scalar(NULL, "SELECT 1 + 1");
    cr_assert_str_eq(v, "2");
    free(v);
    cr_assert_null(tfs_test_pg_scalar(NULL, "SELECT NULL"));
    cr_assert_null(tfs_test_pg_scalar(NULL, "SELECT 1 WHERE false"));
    cr_assert_null(tfs_test_pg_scalar(NULL, "SET application_name = 'harness'"));
    v = tfs_test_pg_scalar(NULL, "SELECT 'it''s'");
    cr_assert_str_eq(v, "it's");
    free(v);
}

Test(harness, exec_file_with_roll_year)
{
    char *db = tfs_test_db_clone(TFS_TEST_TMPL_STATE, "harness_file");
    char path[] = "/tmp/tfs-harness-XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    static const char sql[] = "CREATE TABLE y (yr int);\n"
                              "INSERT INTO y VALUES (:roll_year), (:roll_year - 1);\n";
    cr_assert(write(fd, sql, sizeof sql - 1) == (ssize_t)(sizeof sql - 1));
    close(fd);
    tfs_test_pg_exec_file(db, path, "2026");
    unlink(path);
    char *v = tfs_test_pg_scalar(db, "SELECT string_agg(yr::text, ',' ORDER BY yr) FROM y");
    cr_assert_str_eq(v, "2025,2026");
    free(v);
    tfs_test_db_drop(db);
    free(db);
}

Test(harness, config_has_real_conninfos_and_key_hashes)
{
    json_t *cfg = tfs_test_config_new("p db", "c'db", "s");
    const char *ci = json_string_value(
        json_object_get(json_object_get(json_object_get(json_object_get(cfg, "systems"),
                                                        "cama"),
                                        "settings"),
                        "conninfo"));
    cr_assert_not_null(ci);
    cr_assert(strstr(ci, "dbname='c\\'db'") != NULL, "conninfo not quoted: %s", ci);

    /* The key's hash as sha256sum prints it: printf %s read-key | sha256sum */
    json_t *keys = json_object_get(cfg, "api_keys");
    cr_assert_eq(json_array_size(keys), 3);
    json_t *reader = json_array_get(keys, 0);
    cr_assert_str_eq(json_string_value(json_object_get(reader, "role")), "read");
    cr_assert_str_eq(json_string_value(json_object_get(reader, "sha256")),
                     "8578df6c579d44d3bf7caeada69ed9cbca30b318a50a0e60216b46760edf5477");
    json_decref(cfg);
}

Test(harness, http_to_a_dead_port_fails_cleanly)
{
    /* A port bound, then closed: nothing listens there any more. */
    int port = tfs_test_free_port();

    tfs_test_response r = tfs_test_http_port(port, "GET", "/health", NULL, NULL);
    cr_assert_eq(r.status, 0);
    cr_assert_null(r.body);
    cr_assert_null(r.json);
    cr_assert(r.error[0] != '\0');
    tfs_test_response_free(&r);
    tfs_test_response_free(NULL);
}

/* A stand-in server with the headers the client must capture. */
static enum MHD_Result answer(void *cls, struct MHD_Connection *conn, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    (void)cls, (void)version, (void)upload;
    if (*con_cls == NULL) { /* first call: headers only */
        *con_cls = conn;
        return MHD_YES;
    }
    if (*upload_size) { /* swallow the body */
        *upload_size = 0;
        return MHD_YES;
    }
    char body[512];
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    unsigned status = MHD_HTTP_OK;
    const char *type = "application/json";
    if (strcmp(url, "/text") == 0) {
        snprintf(body, sizeof body, "plain words");
        type = "text/plain";
    } else if (!auth) {
        status = MHD_HTTP_UNAUTHORIZED;
        snprintf(body, sizeof body, "{\"title\": \"no key\"}");
        type = "application/problem+json";
    } else {
        snprintf(body, sizeof body, "{\"method\": \"%s\", \"auth\": \"%s\"}", method, auth);
    }
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Allow", "GET, POST");
    if (status == MHD_HTTP_UNAUTHORIZED)
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

Test(harness, http_client_reads_status_headers_and_json)
{
    struct MHD_Daemon *mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, answer, NULL,
        MHD_OPTION_SOCK_ADDR,
        (const struct sockaddr *)&(struct sockaddr_in){.sin_family = AF_INET,
                                                       .sin_addr.s_addr =
                                                           htonl(INADDR_LOOPBACK)},
        MHD_OPTION_END);
    cr_assert_not_null(mhd);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(mhd, MHD_DAEMON_INFO_BIND_PORT);
    cr_assert_not_null(info);
    tfs_test_daemon d = {.pid = -1, .port = info->port};

    tfs_test_response r = tfs_test_http(&d, "POST", "/x", "k1", "{\"pair\": \"p\"}");
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.error);
    cr_assert_str_eq(r.content_type, "application/json");
    cr_assert_str_eq(r.allow, "GET, POST");
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "method")), "POST");
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "auth")), "Bearer k1");
    tfs_test_response_free(&r);

    r = tfs_test_http(&d, "DELETE", "/x", NULL, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(r.www_authenticate, "Bearer");
    cr_assert_str_eq(r.content_type, "application/problem+json");
    tfs_test_response_free(&r);

    r = tfs_test_http(&d, "GET", "/text", NULL, NULL);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "plain words");
    cr_assert_null(r.json);
    tfs_test_response_free(&r);

    MHD_stop_daemon(mhd);
}
