/* tests/unit/config_test.c — a bad config is refused with the JSON path of the problem. */
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/tfs-config-XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/map.lua", dir);
    FILE *f = fopen(path, "w");
    fputs("function map(r) return {} end\n", f);
    fclose(f);
}

static void teardown(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/map.lua", dir);
    unlink(path);
    rmdir(dir);
}

TestSuite(config, .init = setup, .fini = teardown);

static json_t *good(void)
{
    json_error_t je;
    json_t *c = json_loads(
        "{\"state\": {\"conninfo\": \"dbname=tfsync\"}, \"plugin_dir\": \".\","
        " \"transform_dir\": \".\", \"roll_year\": 2026,"
        " \"api_keys\": [{\"name\": \"ops\", \"role\": \"operate\", \"sha256\":"
        " \"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\"}],"
        " \"systems\": {\"pacs\": {\"plugin\": \"pacs\"}, \"cama\": {\"plugin\": \"cama\"}},"
        " \"pairs\": [{\"name\": \"pacs-to-cama\", \"source\": \"pacs\", \"target\": \"cama\","
        " \"entities\": [{\"source\": \"property\", \"targets\": [\"pardat\"],"
        " \"script\": \"map.lua\"}]}]}",
        0, &je);
    cr_assert_not_null(c, "%s", je.text);
    return c;
}

static void expect(json_t *c, const char *want)
{
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    int rc = tfs_config_parse(c, dir, &cfg, &err);
    cr_assert_eq(rc, TFS_EINVAL, "expected refusal with \"%s\"", want);
    cr_assert_null(cfg);
    cr_assert(strstr(err.message, want), "message \"%s\" should contain \"%s\"", err.message,
              want);
    json_decref(c);
}

Test(config, good_config_loads)
{
    json_t *c = good();
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s", err.message);
    cr_assert_eq(cfg->roll_year, 2026);
    cr_assert_eq(cfg->n_pairs, 1);
    cr_assert_eq(cfg->pairs[0].batch_size, 1000);
    cr_assert_eq(cfg->keys[0].role, TFS_ROLE_OPERATE);
    cr_assert_eq(cfg->keys[0].sha256[0], 0x9f);
    cr_assert_not_null(tfs_config_pair_get(cfg, "pacs-to-cama"));
    tfs_config_free(cfg);
    json_decref(c);
}

Test(config, missing_script_named_with_path)
{
    json_t *c = good();
    json_t *e = json_array_get(json_object_get(json_array_get(json_object_get(c, "pairs"), 0),
                                               "entities"), 0);
    json_object_set_new(e, "script", json_string("nope.lua"));
    expect(c, "pairs[0].entities[0].script: no such file \"nope.lua\"");
}

Test(config, unknown_key_refused)
{
    json_t *c = good();
    json_object_set_new(json_object_get(json_object_get(c, "systems"), "pacs"), "plugn",
                        json_string("x"));
    expect(c, "systems.pacs.plugn: unknown key");
}

Test(config, wrong_type_refused)
{
    json_t *c = good();
    json_object_set_new(c, "roll_year", json_string("2026"));
    expect(c, "roll_year: must be an integer, not a string");
}

Test(config, unknown_system_in_pair)
{
    json_t *c = good();
    json_object_set_new(json_array_get(json_object_get(c, "pairs"), 0), "target",
                        json_string("gis"));
    expect(c, "pairs[0].target: unknown system \"gis\"");
}

Test(config, bad_role_and_hash)
{
    json_t *c = good();
    json_object_set_new(json_array_get(json_object_get(c, "api_keys"), 0), "role",
                        json_string("root"));
    expect(c, "api_keys[0].role: unknown role \"root\"");
    c = good();
    json_object_set_new(json_array_get(json_object_get(c, "api_keys"), 0), "sha256",
                        json_string("abc"));
    expect(c, "api_keys[0].sha256: must be 64 hexadecimal digits");
}

/* Two entries with one key: whichever came first would decide the role; two entries with
 * one name would be one actor in the audit trail. Both refused, naming both entries. */
Test(config, duplicate_key_hash_or_name_refused_naming_both_entries)
{
    json_t *c = good();
    json_t *keys = json_object_get(c, "api_keys");
    json_t *twin = json_deep_copy(json_array_get(keys, 0));
    json_object_set_new(twin, "name", json_string("boss"));
    json_object_set_new(twin, "role", json_string("admin"));
    json_array_append_new(keys, twin);
    expect(c, "api_keys[1].sha256: the same key as api_keys[0].sha256 (\"ops\", role "
              "\"operate\"); this entry is \"boss\", role \"admin\"");

    c = good();
    keys = json_object_get(c, "api_keys");
    twin = json_deep_copy(json_array_get(keys, 0));
    json_object_set_new(twin, "sha256", json_string("2c26b46b68ffc68ff99b453c1d30413413422d70"
                                                    "6483bfa0f98a5e886266e7ae"));
    json_array_append_new(keys, twin);
    expect(c, "api_keys[1].name: \"ops\" is already the name of api_keys[0].name");
}

Test(config, missing_roll_year_and_batch_range)
{
    json_t *c = good();
    json_object_del(c, "roll_year");
    expect(c, "roll_year: missing");
    c = good();
    json_object_set_new(json_array_get(json_object_get(c, "pairs"), 0), "batch_size",
                        json_integer(0));
    expect(c, "pairs[0].batch_size: 0 is out of range");
}

Test(config, malformed_file_reports_line)
{
    char path[128];
    snprintf(path, sizeof path, "%s/bad.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\n  \"state\": {,\n}\n", f);
    fclose(f);
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_config_load(path, &cfg, &err), TFS_EINVAL);
    cr_assert(strstr(err.message, "line 2"), "%s", err.message);
    unlink(path);
}

Test(config, delete_action_and_schedule)
{
    json_t *c = good();
    json_t *p0 = json_array_get(json_object_get(c, "pairs"), 0);
    json_object_set_new(p0, "delete_action", json_string("deactivate"));
    json_object_set_new(p0, "schedule", json_pack("{ss}", "incremental_every", "30s"));
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s", err.message);
    cr_assert_eq(cfg->pairs[0].delete_action, TFS_DELETE_DEACTIVATE);
    cr_assert_str_eq(cfg->pairs[0].deactivate_field, "deactivat");
    cr_assert_eq(cfg->pairs[0].incremental_every_ms, 30000);
    tfs_config_free(cfg);
    json_decref(c);

    c = good();
    p0 = json_array_get(json_object_get(c, "pairs"), 0);
    json_object_set_new(p0, "delete_action", json_string("purge"));
    expect(c, "pairs[0].delete_action: unknown action \"purge\"");

    c = good();
    p0 = json_array_get(json_object_get(c, "pairs"), 0);
    json_object_set_new(p0, "schedule", json_pack("{ss}", "incremental_every", "soon"));
    expect(c, "pairs[0].schedule.incremental_every: \"soon\" is not a duration");

    c = good();
    p0 = json_array_get(json_object_get(c, "pairs"), 0);
    json_object_set_new(p0, "schedule", json_pack("{ss}", "full_every", "1h"));
    expect(c, "pairs[0].schedule.full_every: unknown key");
}

/* Defaults and bounds come from tfs_limits.h, the one place they are written. */
Test(config, limits_default_and_bounds_from_one_header)
{
    json_t *c = good();
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s", err.message);
    json_decref(c);
    cr_assert_eq(cfg->port, TFS_HTTP_PORT_DEFAULT);
    cr_assert_eq(cfg->http_threads, TFS_HTTP_THREADS_DEFAULT);
    cr_assert_eq(cfg->max_body, TFS_HTTP_MAX_BODY_DEFAULT);
    cr_assert_eq(cfg->lua.memory_bytes, TFS_LUA_MEMORY_DEFAULT);
    cr_assert_eq(cfg->lua.instructions, TFS_LUA_INSTRUCTIONS_DEFAULT);
    cr_assert_eq(cfg->lua.max_string, TFS_LUA_MAX_STRING_DEFAULT);
    cr_assert_eq(cfg->lua.record_ms, TFS_LUA_RECORD_MS_DEFAULT);
    tfs_config_free(cfg);

    static const struct {
        const char *section, *key;
        long long value;
    } edges[] = {
        {"listen", "max_body_bytes", TFS_HTTP_MAX_BODY_MIN},
        {"listen", "max_body_bytes", TFS_HTTP_MAX_BODY_MAX},
        {"listen", "threads", TFS_HTTP_THREADS_MAX},
        {"lua", "memory_bytes", TFS_LUA_MEMORY_MIN},
        {"lua", "memory_bytes", TFS_LUA_MEMORY_MAX},
        {"lua", "instructions", TFS_LUA_INSTRUCTIONS_MIN},
        {"lua", "instructions", TFS_LUA_INSTRUCTIONS_MAX},
        {"lua", "max_string", TFS_LUA_MAX_STRING_MIN},
        {"lua", "max_string", TFS_LUA_MAX_STRING_MAX},
        {"lua", "record_ms", TFS_LUA_RECORD_MS_MIN},
        {"lua", "record_ms", TFS_LUA_RECORD_MS_MAX},
    };
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        for (int past = 0; past < 2; past++) {
            /* The bound itself loads; one past it (below a min, above a max) does not. */
            int is_min = i == 0 || i == 3 || i == 5 || i == 7 || i == 9;
            long long v = edges[i].value + (past ? (is_min ? -1 : 1) : 0);
            c = good();
            json_object_set_new(c, edges[i].section,
                                json_pack("{sI}", edges[i].key, (json_int_t)v));
            cfg = NULL;
            int rc = tfs_config_parse(c, dir, &cfg, &err);
            json_decref(c);
            tfs_config_free(cfg);
            cr_expect_eq(rc, past ? TFS_EINVAL : 0, "%s.%s = %lld: %s", edges[i].section,
                         edges[i].key, v, rc ? err.message : "loaded");
        }
    }
}

/* The healing settings: defaults from tfs_limits.h, durations as the schedule's, bounds. */
Test(config, breaker_retry_and_max_wait)
{
    json_t *c = good();
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s", err.message);
    json_decref(c);
    cr_assert_eq(cfg->breaker_failures, TFS_BREAKER_FAILURES_DEFAULT);
    cr_assert_eq(cfg->breaker_max_probe_interval_ms, TFS_BREAKER_MAX_PROBE_INTERVAL_MS_DEFAULT);
    cr_assert_eq(cfg->retry_max_backoff_ms, TFS_RETRY_MAX_BACKOFF_MS_DEFAULT);
    cr_assert_eq(cfg->state_connect_timeout_s, TFS_STATE_CONNECT_TIMEOUT_S_DEFAULT);
    cr_assert_eq(cfg->pairs[0].max_wait_ms, 0, "no max_wait: a run waits for good");
    tfs_config_free(cfg);

    c = good();
    json_object_set_new(c, "breaker", json_pack("{siss}", "failures", 5, "max_probe_interval",
                                                "2m"));
    json_object_set_new(c, "retry", json_pack("{ss}", "max_backoff", "750ms"));
    json_object_set_new(json_object_get(c, "state"), "connect_timeout", json_string("3s"));
    json_object_set_new(json_array_get(json_object_get(c, "pairs"), 0), "max_wait",
                        json_string("10m"));
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s", err.message);
    json_decref(c);
    cr_assert_eq(cfg->breaker_failures, 5);
    cr_assert_eq(cfg->breaker_max_probe_interval_ms, 120000);
    cr_assert_eq(cfg->retry_max_backoff_ms, 750);
    cr_assert_eq(cfg->state_connect_timeout_s, 3);
    cr_assert_eq(cfg->pairs[0].max_wait_ms, 600000);
    tfs_config_free(cfg);

    c = good();
    json_object_set_new(c, "breaker", json_pack("{si}", "failures", 0));
    expect(c, "breaker.failures: 0 is out of range");
    c = good();
    json_object_set_new(c, "breaker", json_pack("{ss}", "max_probe_interval", "10ms"));
    expect(c, "breaker.max_probe_interval: \"10ms\" is not a duration from 250ms");
    c = good();
    json_object_set_new(c, "retry", json_pack("{si}", "max_backoff", 5));
    expect(c, "retry.max_backoff: must be a string");
    c = good();
    json_object_set_new(c, "breaker", json_pack("{si}", "threshold", 5));
    expect(c, "breaker.threshold: unknown key");
    c = good();
    json_object_set_new(json_array_get(json_object_get(c, "pairs"), 0), "max_wait",
                        json_string("forever"));
    expect(c, "pairs[0].max_wait: \"forever\" is not a duration");
}

/* A pair's conflicts object: typed at load, every mistake refused with its path. */
static json_t *with_conflicts(const char *text)
{
    json_t *c = good();
    json_error_t je;
    json_t *o = json_loads(text, 0, &je);
    cr_assert_not_null(o, "%s", je.text);
    json_object_set_new(json_array_get(json_object_get(c, "pairs"), 0), "conflicts", o);
    return c;
}

Test(config, conflicts_policies_typed)
{
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    json_t *c = good();
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s", err.message);
    const tfs_config_conflicts *k = &cfg->pairs[0].conflict;
    cr_assert(k->detect && k->policy == TFS_POLICY_SOURCE_WINS && k->drift == TFS_DRIFT_REPORT,
              "no conflicts object: today's behaviour");
    tfs_config_free(cfg);
    json_decref(c);

    c = with_conflicts("{\"policy\": \"merge\", \"fallback\": \"target_wins\","
                       " \"fields\": {\"pardat\": {\"zoning\": \"target_wins\"}},"
                       " \"entities\": {\"pardat\": {\"fallback\": \"manual\"}},"
                       " \"newest_fields\": {\"source\": \"a\", \"target\": \"wen\"},"
                       " \"drift\": \"repair\"}");
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s", err.message);
    k = &cfg->pairs[0].conflict;
    cr_assert_eq(k->policy, TFS_POLICY_MERGE);
    cr_assert_eq(k->fallback, TFS_POLICY_TARGET_WINS);
    cr_assert_eq(k->drift, TFS_DRIFT_REPAIR);
    cr_assert_eq(k->n_rules, 2);
    cr_assert_str_eq(k->newest_target, "wen");
    int found_entity = 0, found_field = 0;
    for (size_t i = 0; i < k->n_rules; i++) {
        if (!k->rules[i].field)
            found_entity = k->rules[i].policy == TFS_POLICY_MERGE &&
                           k->rules[i].fallback == TFS_POLICY_MANUAL;
        else
            found_field = !strcmp(k->rules[i].field, "zoning") &&
                          k->rules[i].policy == TFS_POLICY_TARGET_WINS;
    }
    cr_assert(found_entity && found_field);
    tfs_config_free(cfg);
    json_decref(c);
}

Test(config, conflicts_mistakes_refused_with_path)
{
    expect(with_conflicts("{\"policy\": \"sourcewins\"}"),
           "pairs[0].conflicts.policy: unknown policy \"sourcewins\"");
    expect(with_conflicts("{\"fallback\": \"merge\"}"),
           "pairs[0].conflicts.fallback: unknown policy \"merge\"");
    expect(with_conflicts("{\"polcy\": \"merge\"}"), "pairs[0].conflicts.polcy: unknown key");
    expect(with_conflicts("{\"fields\": {\"parcels\": {\"zoning\": \"target_wins\"}}}"),
           "pairs[0].conflicts.fields.parcels: \"parcels\" is not a target entity");
    expect(with_conflicts("{\"fields\": {\"pardat\": {\"zoning\": 1}}}"),
           "pairs[0].conflicts.fields.pardat.zoning: must be a policy name");
    expect(with_conflicts("{\"drift\": \"fix\"}"),
           "pairs[0].conflicts.drift: unknown drift action \"fix\"");
    expect(with_conflicts("{\"policy\": \"newest_wins\"}"),
           "pairs[0].conflicts: newest_wins needs newest_fields");
    expect(with_conflicts("{\"newest_fields\": {\"source\": \"a\"}}"),
           "pairs[0].conflicts.newest_fields.target: must be a field name");
    expect(with_conflicts("{\"detect\": \"no\"}"),
           "pairs[0].conflicts.detect: must be true or false");
}

/* The connection limits of the API (listen.*) and the access log (log.access): defaults
 * from tfs_limits.h, durations, and mistakes refused naming the key and the fix. */
Test(config, listen_limits_and_access_log)
{
    json_t *c = good();
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s", err.message);
    json_decref(c);
    cr_assert_eq(cfg->max_connections, TFS_HTTP_MAX_CONNECTIONS_DEFAULT);
    cr_assert_eq(cfg->max_per_ip, TFS_HTTP_MAX_CONNECTIONS_PER_IP_DEFAULT);
    cr_assert_eq(cfg->header_timeout_ms, 5000);
    cr_assert_eq(cfg->idle_timeout_s, TFS_HTTP_CONNECTION_TIMEOUT_S_DEFAULT);
    cr_assert_eq(cfg->access_log_all, 0);
    tfs_config_free(cfg);

    c = good();
    json_object_set_new(c, "listen",
                        json_pack("{sisiss ss}", "max_connections", 2000, "max_per_ip", 0,
                                  "header_timeout", "500ms", "idle_timeout", "2m"));
    json_object_set_new(c, "log", json_pack("{ss}", "access", "all"));
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s", err.message);
    json_decref(c);
    cr_assert_eq(cfg->max_connections, 2000);
    cr_assert_eq(cfg->max_per_ip, 0, "0 is no per-address limit");
    cr_assert_eq(cfg->header_timeout_ms, 500);
    cr_assert_eq(cfg->idle_timeout_s, 120);
    cr_assert_eq(cfg->access_log_all, 1);
    tfs_config_free(cfg);

    c = good();
    json_object_set_new(c, "listen", json_pack("{sisi}", "max_connections", 100, "max_per_ip",
                                               200));
    expect(c, "max_per_ip (200) is larger than max_connections (100)");
    c = good();
    json_object_set_new(c, "listen", json_pack("{si}", "max_connections", 8));
    expect(c, "max_connections");
    c = good();
    json_object_set_new(c, "listen", json_pack("{ss}", "header_timeout", "10ms"));
    expect(c, "header_timeout");
    c = good();
    json_object_set_new(c, "listen", json_pack("{ss}", "idle_timeout", "soon"));
    expect(c, "idle_timeout");
    c = good();
    json_object_set_new(c, "log", json_pack("{ss}", "access", "verbose"));
    expect(c, "\"verbose\" is not an access log setting; use \"errors\"");
    c = good();
    json_object_set_new(c, "log", json_pack("{ss}", "level", "debug"));
    expect(c, "level");
}

/* log.format and metrics.public: text and not public by default; other values refused
 * with their path and the values there are. */
Test(config, log_format_and_metrics_public)
{
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    json_t *c = good();
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s", err.message);
    cr_expect_eq(cfg->log_json, 0);
    cr_expect_eq(cfg->metrics_public, 0);
    tfs_config_free(cfg);
    json_object_set_new(c, "log", json_pack("{ss}", "format", "json"));
    json_object_set_new(c, "metrics", json_pack("{sb}", "public", 1));
    cr_assert_eq(tfs_config_parse(c, dir, &cfg, &err), 0, "%s", err.message);
    cr_expect_eq(cfg->log_json, 1);
    cr_expect_eq(cfg->metrics_public, 1);
    tfs_config_free(cfg);
    json_decref(c);
    c = good();
    json_object_set_new(c, "log", json_pack("{ss}", "format", "xml"));
    expect(c, "log.format: \"xml\" is not a log format; use \"text\"");
    c = good();
    json_object_set_new(c, "metrics", json_pack("{ss}", "public", "yes"));
    expect(c, "metrics.public: must be true");
    c = good();
    json_object_set_new(c, "metrics", json_pack("{sb}", "open", 1));
    expect(c, "open");
}
