/* core/config.h — the daemon's one JSON config file, loaded and checked at start-up.
 *
 * Every problem is refused with the JSON path where it is
 * (`pairs[1].entities[0].script: no such file "x.lua" in the transform directory`);
 * unknown keys are refused too, so a typo never silently falls back to a default. Relative
 * paths are relative to the config file's folder. Plugin settings are checked later, by
 * the plugin host, against the keys each plugin declares.
 */
#ifndef TFS_CONFIG_H
#define TFS_CONFIG_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <regex.h>

#include "auth.h"
#include "error.h"
#include "tfs_limits.h"

typedef struct tfs_config_entity {
    char *source;   /* source entity name */
    char **targets; /* target entity names */
    size_t n_targets;
    char *script;   /* file name in the transform directory */
} tfs_config_entity;

/* A bound of a validation rule: a number, or a field of the same record or the roll year
 * plus an offset ("valapr3", "taxyr + 1", "roll_year - 1"). */
typedef struct tfs_config_bound {
    int set;
    char *field;  /* NULL: value alone; "roll_year" is the config's roll year */
    double value; /* the number, or the offset added to the field */
    char *text;   /* as written, for reasons */
} tfs_config_bound;

/* One validation rule of a pair's "rules" (core/config_rules.c parses them, core/rules.c
 * checks records against them). Null values pass every check but required. */
typedef struct tfs_config_rule {
    char *entity; /* the target entity it checks */
    char *field;
    char *name;   /* the rule's name as written, or its place ("asmt[2]") */
    int required; /* the value may not be null */
    tfs_config_bound min, max;
    char *pattern; /* POSIX extended regular expression the value's text must match */
    regex_t re;    /* pattern compiled (when pattern is set) */
    char *lookup;  /* the value must be a code of lookups/<lookup>.csv */
    char **sum_of; /* the value equals the sum of these fields, within tolerance */
    size_t n_sum_of;
    double tolerance;
} tfs_config_rule;

typedef struct tfs_config_rules {
    tfs_config_rule *items;
    size_t n;
} tfs_config_rules;

typedef enum tfs_delete_action {
    TFS_DELETE_ROWS = 0,   /* "delete": the target rows go */
    TFS_DELETE_DEACTIVATE, /* "deactivate": they stay, their deactivate field set */
} tfs_delete_action;

/* What a pair does when a target record changed since it was last written (a conflict):
 * the "conflicts" object of a pair, checked at load (config_pair.c). */
typedef enum tfs_conflict_policy {
    TFS_POLICY_SOURCE_WINS = 0, /* the default: the source overwrites the target's edit */
    TFS_POLICY_TARGET_WINS,     /* the target's record is kept */
    TFS_POLICY_NEWEST_WINS,     /* the side whose named timestamp field is later wins */
    TFS_POLICY_MERGE,           /* field by field against the last written record */
    TFS_POLICY_MANUAL,          /* parked, not written, until an operator resolves it */
} tfs_conflict_policy;

typedef enum tfs_drift_action {
    TFS_DRIFT_REPORT = 0, /* count and keep the keys, leave the target alone */
    TFS_DRIFT_REPAIR,     /* write the mapped record again over the target's edit */
    TFS_DRIFT_IGNORE,     /* do not look: records the source did not change are not fetched */
} tfs_drift_action;

/* A policy of one target entity, or of one field of it. Names are borrowed from the pair's
 * conflicts object. */
typedef struct tfs_config_conflict_rule {
    const char *entity;
    const char *field; /* NULL: the entity's policy */
    tfs_conflict_policy policy;
    tfs_conflict_policy fallback; /* merge of an entity: a field both sides changed */
} tfs_config_conflict_rule;

typedef struct tfs_config_conflicts {
    int detect;                   /* 0: "detect": false, the target is never fetched */
    tfs_conflict_policy policy;   /* the pair's */
    tfs_conflict_policy fallback; /* merge: a field changed on both sides; never merge */
    tfs_config_conflict_rule *rules; /* per target entity and per field (malloc'd) */
    size_t n_rules;
    const char *newest_source; /* newest_wins: a timestamp or date field of the source */
    const char *newest_target; /* ... and of the target records (CAMA: "wen") */
    tfs_drift_action drift;
} tfs_config_conflicts;

const char *tfs_conflict_policy_name(tfs_conflict_policy p);
/* The policy of a name, or -1. */
int tfs_conflict_policy_from_name(const char *name);

typedef struct tfs_config_pair {
    char *name;
    char *source; /* system names */
    char *target;
    size_t batch_size;
    tfs_delete_action delete_action;
    char *deactivate_field;        /* the target field a deactivation sets ("deactivat") */
    long long incremental_every_ms; /* schedule; 0: none */
    char *incremental_every;        /* the schedule as written ("30s"), or NULL */
    long long max_wait_ms; /* a run waiting for a system longer fails; 0: waits for good */
    /* Guards: past max_failed_ratio of the records read failing, a run fails and deletes
     * nothing; deletions past max_delete_ratio of an entity's synced keys hold the run
     * until an operator confirms them. */
    double max_failed_ratio;
    double max_delete_ratio;
    json_t *conflicts; /* owned: the pair's "conflicts" object as written, or NULL */
    tfs_config_conflicts conflict; /* the same, checked and typed (names borrowed from it) */
    json_t *rules;     /* owned: the pair's "rules" object as written, or NULL */
    tfs_config_rules validation; /* rules, parsed (config_rules.c) */
    tfs_config_entity *entities;
    size_t n_entities;
} tfs_config_pair;

typedef struct tfs_config_system {
    char *name;
    char *plugin;     /* the name a loaded plugin's descriptor declares */
    json_t *settings; /* owned; an object */
} tfs_config_system;

typedef struct tfs_config {
    atomic_int refs; /* tfs_config_retain / tfs_config_free */
    char *dir; /* folder of the config file */
    char *listen_address;
    uint16_t port;
    char *ready_file; /* NULL: none */
    unsigned http_threads;
    size_t max_body;
    unsigned max_connections;        /* listen.max_connections */
    unsigned max_per_ip;             /* listen.max_per_ip; 0 = no limit */
    unsigned header_timeout_ms;      /* listen.header_timeout */
    unsigned idle_timeout_s;         /* listen.idle_timeout */
    int access_log_all;              /* log.access = "all": 2xx lines at info too */
    int log_json;                    /* log.format = "json": one JSON object a line */
    long long status_refresh_ms;     /* api.status_refresh: the status cache's full read */
    int metrics_public;              /* metrics.public: GET /metrics without a key */
    char *tls_cert_file, *tls_key_file;
    char *state_conninfo;
    char *plugin_dir;
    char *transform_dir;
    int roll_year;
    unsigned workers;
    unsigned breaker_failures;              /* breaker.failures */
    long long breaker_max_probe_interval_ms; /* breaker.max_probe_interval */
    long long retry_max_backoff_ms;          /* retry.max_backoff */
    long long state_connect_timeout_s;       /* state.connect_timeout, whole seconds */
    tfs_lua_limits lua;
    char *node_id;            /* NULL: hostname:pid */
    long long lease_ttl_ms;   /* lease.ttl */
    long long lease_heartbeat_ms; /* lease.heartbeat */
    long long lease_poll_ms;  /* lease.poll */
    unsigned resume_max_deaths; /* resume.max_deaths */
    tfs_api_key *keys;
    size_t n_keys;
    tfs_config_system *systems;
    size_t n_systems;
    tfs_config_pair *pairs;
    size_t n_pairs;
    long long shutdown_grace_ms; /* shutdown.grace: how long SIGTERM waits for batches */
    long long job_wait_ms; /* jobs.wait: how long a request waits for its job's answer */
} tfs_config;

/* Loads and checks a config file; *out is owned by the caller (tfs_config_free). */
int tfs_config_load(const char *path, tfs_config **out, tfs_error *err);
/* Same from parsed JSON; dir is where relative paths start. root is borrowed. */
int tfs_config_parse(const json_t *root, const char *dir, tfs_config **out, tfs_error *err);
/* A config is reference-counted and never changes once loaded: tfs_config_retain gives
 * a new reference (returns cfg; NULL stays NULL), tfs_config_free drops one and frees
 * the config with the last. Safe from any thread. */
tfs_config *tfs_config_retain(const tfs_config *cfg);
void tfs_config_free(tfs_config *cfg);

/* The daemon's current config, replaced as a whole by a reload. Whoever uses a config for
 * a while (a request, a run, a scheduler tick) takes a snapshot with tfs_config_slot_get
 * and frees it when done, so a reload never frees a config in use. */
typedef struct tfs_config_slot tfs_config_slot;

/* Takes cfg over (freed on failure too). *out is owned (tfs_config_slot_free). */
int tfs_config_slot_new(tfs_config *cfg, tfs_config_slot **out, tfs_error *err);
/* A new reference to the current config; tfs_config_free it. */
tfs_config *tfs_config_slot_get(tfs_config_slot *slot);
/* Makes cfg (taken over) the current config; snapshots of the old one stay valid. */
void tfs_config_slot_set(tfs_config_slot *slot, tfs_config *cfg);
/* Frees the slot and its reference; accepts NULL. */
void tfs_config_slot_free(tfs_config_slot *slot);

/* Lookups; borrowed, or NULL. */
const tfs_config_pair *tfs_config_pair_get(const tfs_config *cfg, const char *name);
const tfs_config_system *tfs_config_system_get(const tfs_config *cfg, const char *name);

#endif
