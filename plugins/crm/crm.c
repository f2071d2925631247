/* plugins/crm/crm.c — adapter for the constituent CRM's REST API (JSON over HTTP, libcurl).
 *
 * Two entities. contact: a property owner as the CRM keeps it, by external id = the PACS
 * account id, which is also the resource id (GET/PUT/DELETE {base_url}/contacts/{id}).
 * contact_property: one parcel a contact owns in a tax year, keyed (contact_id, prop_id,
 * tax_year), whose resource id is "<contact_id>-<prop_id>-<tax_year>"
 * ({base_url}/contact_properties/{id}); written by the sync only, so never read as a source.
 * The API has no upsert: a write GETs the contact and PUTs it when it exists (keeping the
 * updated_at the CRM holds, so a write of the sync is never a change coming back) or POSTs
 * it. updated_at is set by the CRM's users (a clerk's edit) and is the change cursor:
 * change reads list the contacts at the cursor's updated_at after its id, then those
 * after it, sorted by (updated_at, id).
 *
 * Errors: connection errors, timeouts and 5xx are transient (the host retries with
 * backoff); a 429 is waited out inside the call for its Retry-After when that is at most
 * retry_after_max_s, then retried (the host's backoff knows nothing of the server's
 * answer, and a short wait here keeps the run's order), else transient; other 4xx are
 * permanent with the server's message, per operation in writes. A 401/403 fails the call
 * as a whole: a wrong token is the config's fault, not a record's.
 *
 * JSON is parsed and built with jansson, the JSON library the daemon already uses: the
 * CRM's wire format is JSON, so it is this system's library as libpq is PACS's.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "tfsync_plugin.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))
#define CRM_CURSOR_FULL "f1:"    /* full reads: "f1:<last id>" */
#define CRM_CURSOR_CHANGES "c1|" /* change reads: "c1|<updated_at>|<last id at it>" */
#define CRM_FETCH_CHUNK 50
#define CRM_429_WAITS 3 /* most Retry-After waits inside one call */

static const tfs_sdk_host *host;

enum {
    F_ID,
    F_DISPLAY_NAME,
    F_FIRST_NAME,
    F_LAST_NAME,
    F_EMAIL,
    F_PHONE,
    F_DO_NOT_PUBLISH,
    F_MAIL_LINE1,
    F_MAIL_LINE2,
    F_MAIL_CITY,
    F_MAIL_STATE,
    F_MAIL_ZIP5,
    F_MAIL_ZIP4,
    F_UPDATED_AT,
};

#define TXT(n) TFS_SDK_TEXT, 0, n, 0, 0
static const tfs_sdk_field contact_fields[] = {
    [F_ID] = {"id", TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0},
    [F_DISPLAY_NAME] = {"display_name", TXT(100)},
    [F_FIRST_NAME] = {"first_name", TXT(50)},
    [F_LAST_NAME] = {"last_name", TXT(50)},
    [F_EMAIL] = {"email", TXT(100)},
    [F_PHONE] = {"phone", TXT(30)},
    [F_DO_NOT_PUBLISH] = {"do_not_publish", TFS_SDK_BOOL, 0, 0, 0, 0},
    [F_MAIL_LINE1] = {"mail_line1", TXT(60)},
    [F_MAIL_LINE2] = {"mail_line2", TXT(60)},
    [F_MAIL_CITY] = {"mail_city", TXT(50)},
    [F_MAIL_STATE] = {"mail_state", TXT(2)},
    [F_MAIL_ZIP5] = {"mail_zip5", TXT(5)},
    [F_MAIL_ZIP4] = {"mail_zip4", TXT(4)},
    /* Set by the CRM's users, never by this adapter. */
    [F_UPDATED_AT] = {"updated_at", TFS_SDK_TIMESTAMP, TFS_SDK_FIELD_BOOKKEEPING, 0, 0, 0},
};
#undef TXT

enum { P_CONTACT_ID, P_PROP_ID, P_TAX_YEAR, P_GEO_ID, P_PRIMARY_OWNER };
#define KEY TFS_SDK_INT64, TFS_SDK_FIELD_KEY | TFS_SDK_FIELD_REQUIRED, 0, 0, 0
static const tfs_sdk_field contact_property_fields[] = {
    [P_CONTACT_ID] = {"contact_id", KEY},
    [P_PROP_ID] = {"prop_id", KEY},
    [P_TAX_YEAR] = {"tax_year", KEY},
    [P_GEO_ID] = {"geo_id", TFS_SDK_TEXT, 0, 50, 0, 0},
    [P_PRIMARY_OWNER] = {"primary_owner", TFS_SDK_BOOL, 0, 0, 0, 0},
};
#undef KEY

enum { E_CONTACT, E_CONTACT_PROPERTY };
static const tfs_sdk_entity crm_entities[] = {
    [E_CONTACT] = {"contact", contact_fields, N_OF(contact_fields)},
    [E_CONTACT_PROPERTY] = {"contact_property", contact_property_fields,
                            N_OF(contact_property_fields)},
};
/* Each entity's collection: {base_url}/<collection>. */
static const char *const crm_collections[] = {
    [E_CONTACT] = "contacts",
    [E_CONTACT_PROPERTY] = "contact_properties",
};

enum { K_BASE_URL, K_TOKEN, K_TOKEN_FILE, K_CONNECT_MS, K_TIMEOUT_MS, K_RETRY_MAX_S,
       K_PAGE, K_MAX_OPS };
static const tfs_sdk_config_key crm_config[] = {
    [K_BASE_URL] = {"base_url", TFS_SDK_CONFIG_STRING, NULL,
                    "the API's root, e.g. https://crm.example.org/api (contacts are "
                    "{base_url}/contacts)"},
    [K_TOKEN] = {"token", TFS_SDK_CONFIG_STRING, "", "the bearer token (or token_file)"},
    [K_TOKEN_FILE] = {"token_file", TFS_SDK_CONFIG_STRING, "",
                      "a file holding the bearer token, relative to the config's folder"},
    [K_CONNECT_MS] = {"connect_timeout_ms", TFS_SDK_CONFIG_INT, "5000",
                      "most milliseconds to connect"},
    [K_TIMEOUT_MS] = {"timeout_ms", TFS_SDK_CONFIG_INT, "30000",
                      "most milliseconds one request takes in all"},
    [K_RETRY_MAX_S] = {"retry_after_max_s", TFS_SDK_CONFIG_INT, "30",
                       "the longest Retry-After of a 429 waited out inside a call (longer: "
                       "a transient error, retried by the host)"},
    [K_PAGE] = {"page_size", TFS_SDK_CONFIG_INT, "500", "most contacts per listing request"},
    [K_MAX_OPS] = {"max_batch_ops", TFS_SDK_CONFIG_INT, "100",
                   "most operations per write call (cb_write_limits)"},
};

typedef struct crm {
    char *base;  /* without a trailing slash */
    char *auth;  /* "Authorization: Bearer ..." */
    long connect_ms, timeout_ms, retry_max_s, page, max_ops;
    CURL *curl;
    /* The last response. */
    char *body;
    size_t len, cap;
    long status;
    long retry_after; /* seconds, -1 when absent */
    long long total;  /* X-Total-Count, -1 when absent */
} crm;

/* ---- settings ----------------------------------------------------------------------- */

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* The token: the setting, or the first line of token_file (against the config's folder). */
static char *read_token(const char *const *config, tfs_sdk_error *err)
{
    const char *sys = host->config_system(config);
    if (config[K_TOKEN][0])
        return strdup(config[K_TOKEN]);
    if (!config[K_TOKEN_FILE][0]) {
        host->error_set(err, "systems.%s.settings: set token or token_file (the CRM's bearer "
                             "token)", sys ? sys : "?");
        return NULL;
    }
    char path[4096];
    const char *dir = host->config_dir(config);
    if (config[K_TOKEN_FILE][0] == '/' || !dir)
        snprintf(path, sizeof path, "%s", config[K_TOKEN_FILE]);
    else
        snprintf(path, sizeof path, "%s/%s", dir, config[K_TOKEN_FILE]);
    FILE *f = fopen(path, "r");
    if (!f) {
        host->error_set(err, "systems.%s.settings.token_file: could not open %s: %s",
                        sys ? sys : "?", path, strerror(errno));
        return NULL;
    }
    char line[4096] = "";
    if (!fgets(line, sizeof line, f))
        line[0] = 0;
    fclose(f);
    line[strcspn(line, "\r\n")] = 0;
    if (!line[0]) {
        host->error_set(err, "systems.%s.settings.token_file: %s is empty", sys ? sys : "?",
                        path);
        return NULL;
    }
    return strdup(line);
}

static int crm_check(const char *const *config, tfs_sdk_error *err)
{
    const char *sys = host->config_system(config);
    long v;
    if (strncmp(config[K_BASE_URL], "http://", 7) != 0 &&
        strncmp(config[K_BASE_URL], "https://", 8) != 0) {
        host->error_set(err, "systems.%s.settings.base_url: \"%s\" is not an http:// or "
                             "https:// URL", sys ? sys : "?", config[K_BASE_URL]);
        return TFS_SDK_EPERMANENT;
    }
    static const struct { int k; long lo, hi; } ranges[] = {
        {K_CONNECT_MS, 1, 600000}, {K_TIMEOUT_MS, 1, 3600000}, {K_RETRY_MAX_S, 0, 3600},
        {K_PAGE, 1, 10000},       {K_MAX_OPS, 1, 100000},
    };
    for (size_t i = 0; i < N_OF(ranges); i++)
        if (parse_long(config[ranges[i].k], ranges[i].lo, ranges[i].hi, &v) != 0) {
            host->error_set(err, "systems.%s.settings.%s: %s is out of range (%ld to %ld)",
                            sys ? sys : "?", crm_config[ranges[i].k].name,
                            config[ranges[i].k], ranges[i].lo, ranges[i].hi);
            return TFS_SDK_EPERMANENT;
        }
    if (config[K_TOKEN][0] && config[K_TOKEN_FILE][0]) {
        host->error_set(err, "systems.%s.settings: token and token_file exclude each other",
                        sys ? sys : "?");
        return TFS_SDK_EPERMANENT;
    }
    char *tok = read_token(config, err);
    if (!tok)
        return TFS_SDK_EPERMANENT;
    free(tok);
    return 0;
}

static void crm_close(void *instance)
{
    crm *c = instance;
    if (!c)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    free(c->base);
    free(c->auth);
    free(c->body);
    free(c);
}

/* Lazy: nothing is connected here. */
static int crm_open(const char *const *config, void **instance, tfs_sdk_error *err)
{
    int rc = crm_check(config, err);
    if (rc != 0)
        return rc;
    crm *c = calloc(1, sizeof *c);
    char *tok = read_token(config, err);
    if (!c || !tok) {
        free(c);
        free(tok);
        return TFS_SDK_EPERMANENT;
    }
    c->base = strdup(config[K_BASE_URL]);
    size_t alen = strlen(tok) + 32;
    c->auth = malloc(alen);
    if (!c->base || !c->auth) {
        free(tok);
        crm_close(c);
        host->error_set(err, "could not open the crm: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    snprintf(c->auth, alen, "Authorization: Bearer %s", tok);
    free(tok);
    size_t bl = strlen(c->base);
    while (bl > 0 && c->base[bl - 1] == '/')
        c->base[--bl] = 0;
    parse_long(config[K_CONNECT_MS], 1, 600000, &c->connect_ms);
    parse_long(config[K_TIMEOUT_MS], 1, 3600000, &c->timeout_ms);
    parse_long(config[K_RETRY_MAX_S], 0, 3600, &c->retry_max_s);
    parse_long(config[K_PAGE], 1, 10000, &c->page);
    parse_long(config[K_MAX_OPS], 1, 100000, &c->max_ops);
    *instance = c;
    return 0;
}

static int crm_describe(void *instance, const tfs_sdk_entity **entities, size_t *n,
                        tfs_sdk_error *err)
{
    (void)instance;
    (void)err;
    *entities = crm_entities;
    *n = N_OF(crm_entities);
    return 0;
}

/* ---- HTTP ----------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    crm *c = userdata;
    size_t n = size * nmemb;
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *b = realloc(c->body, cap);
        if (!b)
            return 0;
        c->body = b;
        c->cap = cap;
    }
    memcpy(c->body + c->len, data, n);
    c->len += n;
    c->body[c->len] = 0;
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    crm *c = userdata;
    size_t n = size * nmemb;
    if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
        /* Delay-seconds or an HTTP-date (RFC 9110 10.2.3); a date in the past is now. */
        char v[128];
        size_t vl = n - 12 < sizeof v - 1 ? n - 12 : sizeof v - 1;
        memcpy(v, data + 12, vl);
        v[vl] = 0;
        char *s = v + strspn(v, " \t");
        s[strcspn(s, "\r\n")] = 0;
        char *end;
        errno = 0;
        long secs = strtol(s, &end, 10);
        if (*s >= '0' && *s <= '9' && !errno && (*end == 0 || *end == ' ') && secs >= 0) {
            c->retry_after = secs;
        } else {
            time_t at = curl_getdate(s, NULL);
            time_t now = time(NULL);
            c->retry_after = at == -1 ? -1 : at > now ? (long)(at - now) : 0;
        }
    }
    else if (n > 14 && strncasecmp(data, "X-Total-Count:", 14) == 0)
        c->total = strtoll(data + 14, NULL, 10);
    return n;
}

/* The server's message of an error answer: its "error"/"message" member, else the body. */
static void server_message(const crm *c, char *out, size_t cap)
{
    json_t *j = c->body ? json_loads(c->body, 0, NULL) : NULL;
    const char *m = NULL;
    if (json_is_object(j)) {
        m = json_string_value(json_object_get(j, "error"));
        if (!m)
            m = json_string_value(json_object_get(j, "message"));
    }
    snprintf(out, cap, "%.300s", m ? m : c->body && c->len ? c->body : "(no message)");
    json_decref(j);
}

/* One request; body may be NULL. Returns 0 with c->status and c->body set, or a status
 * with err set for a connection error or an answer the caller cannot act on (429 beyond
 * the bound, 5xx, 401/403). Other statuses are the caller's to judge. */
static int http(crm *c, const char *method, const char *url, const char *body,
                tfs_sdk_error *err)
{
    if (!c->curl && !(c->curl = curl_easy_init())) {
        host->error_set(err, "could not reach the crm: curl_easy_init failed");
        return TFS_SDK_ETRANSIENT;
    }
    for (int waits = 0;; waits++) {
        CURL *h = c->curl;
        curl_easy_reset(h);
        struct curl_slist *hdr = curl_slist_append(NULL, c->auth);
        hdr = curl_slist_append(hdr, "Accept: application/json");
        if (body)
            hdr = curl_slist_append(hdr, "Content-Type: application/json");
        c->len = 0;
        if (c->body)
            c->body[0] = 0;
        c->retry_after = -1;
        c->total = -1;
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, c);
        curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
        curl_easy_setopt(h, CURLOPT_HEADERDATA, c);
        if (body)
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
        CURLcode cc = curl_easy_perform(h);
        curl_slist_free_all(hdr);
        if (cc != CURLE_OK) {
            host->error_set(err, "could not %s %s: %s", method, url, curl_easy_strerror(cc));
            return TFS_SDK_ETRANSIENT;
        }
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
        char msg[320];
        if (c->status == 429) {
            if (c->retry_after >= 0 && c->retry_after <= c->retry_max_s &&
                waits < CRM_429_WAITS) {
                host->log(host, TFS_SDK_LOG_INFO, "%s %s: 429, retrying after %ld s", method,
                          url, c->retry_after);
                struct timespec ts = {c->retry_after, 0};
                while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
                }
                continue;
            }
            server_message(c, msg, sizeof msg);
            host->error_set(err, "could not %s %s: 429 too many requests (Retry-After %ld s; "
                                 "waited %d times, at most %ld s each): %s",
                            method, url, c->retry_after, waits, c->retry_max_s, msg);
            return TFS_SDK_ETRANSIENT;
        }
        if (c->status >= 500) {
            server_message(c, msg, sizeof msg);
            host->error_set(err, "could not %s %s: server error %ld: %s", method, url,
                            c->status, msg);
            return TFS_SDK_ETRANSIENT;
        }
        if (c->status == 401 || c->status == 403) {
            server_message(c, msg, sizeof msg);
            host->error_set(err, "could not %s %s: %ld, the crm refused the bearer token "
                                 "(check systems.<crm>.settings.token or token_file): %s",
                            method, url, c->status, msg);
            return TFS_SDK_EPERMANENT;
        }
        return 0;
    }
}

/* ---- records ------------------------------------------------------------------------- */

/* A record of entity from the CRM's JSON object o: 1 when o is not one of ours (a key
 * missing or not an integer), -1 when out of memory. */
static int add_record(size_t entity, const json_t *o, tfs_sdk_batch *out)
{
    const tfs_sdk_entity *e = &crm_entities[entity];
    for (size_t f = 0; f < e->n_fields; f++)
        if ((e->fields[f].flags & TFS_SDK_FIELD_KEY) &&
            !json_is_integer(json_object_get(o, e->fields[f].name)))
            return 1;
    tfs_sdk_record *r = host->batch_add(out);
    if (!r)
        return -1;
    for (size_t f = 0; f < e->n_fields; f++) {
        json_t *v = json_object_get(o, e->fields[f].name);
        if (e->fields[f].type == TFS_SDK_INT64) {
            if (json_is_integer(v))
                host->rec_set_int(r, f, json_integer_value(v));
        } else if (e->fields[f].type == TFS_SDK_BOOL) {
            if (json_is_boolean(v))
                host->rec_set_bool(r, f, json_is_true(v));
        } else if (json_is_string(v)) {
            host->rec_set_text(r, f, e->fields[f].type, json_string_value(v),
                               json_string_length(v));
        }
    }
    return 0;
}

/* The resource id of rec: the contact's id, or "<contact_id>-<prop_id>-<tax_year>"; -1
 * when a key part is not an integer. */
static int resource_id(size_t entity, const tfs_sdk_record *rec, char *out, size_t cap)
{
    const tfs_sdk_entity *e = &crm_entities[entity];
    size_t n = 0;
    out[0] = 0;
    for (size_t f = 0; f < e->n_fields; f++) {
        if (!(e->fields[f].flags & TFS_SDK_FIELD_KEY))
            continue;
        if (host->rec_type(rec, f) != TFS_SDK_INT64)
            return -1;
        int w = snprintf(out + n, cap - n, "%s%" PRId64, n ? "-" : "", host->rec_get_int(rec, f));
        if (w < 0 || (size_t)w >= cap - n)
            return -1;
        n += (size_t)w;
    }
    return 0;
}

/* rec as the CRM's JSON object: a contact keeps the updated_at given (null when none); a
 * contact_property carries its resource id, as json-server's string id. */
static json_t *record_json(size_t entity, const tfs_sdk_record *rec, const char *id,
                           json_t *updated_at)
{
    const tfs_sdk_entity *e = &crm_entities[entity];
    json_t *o = json_object();
    if (entity == E_CONTACT_PROPERTY)
        json_object_set_new(o, "id", json_string(id));
    for (size_t f = 0; f < e->n_fields; f++) {
        const char *name = e->fields[f].name;
        if (e->fields[f].flags & TFS_SDK_FIELD_BOOKKEEPING)
            continue;
        tfs_sdk_type t = host->rec_type(rec, f);
        if (t == TFS_SDK_NULL)
            json_object_set_new(o, name, json_null());
        else if (t == TFS_SDK_INT64)
            json_object_set_new(o, name, json_integer(host->rec_get_int(rec, f)));
        else if (t == TFS_SDK_BOOL)
            json_object_set_new(o, name, json_boolean(host->rec_get_bool(rec, f)));
        else
            json_object_set_new(o, name, json_string(host->rec_get_text(rec, f, NULL)));
    }
    if (entity == E_CONTACT)
        json_object_set(o, "updated_at", updated_at ? updated_at : json_null());
    return o;
}

static json_t *parse_array(crm *c, const char *what, tfs_sdk_error *err)
{
    json_error_t je;
    json_t *a = json_loads(c->body ? c->body : "", 0, &je);
    if (!json_is_array(a)) {
        host->error_set(err, "could not read %s: the crm answered %ld with no JSON array "
                             "(%s)", what, c->status, je.text);
        json_decref(a);
        return NULL;
    }
    return a;
}

/* ---- read ---------------------------------------------------------------------------- */

/* GETs a listing url and adds its contacts to out, at most room of them; *got is how many
 * the CRM answered. In change reads (ts not NULL) only edited contacts count, and ncur
 * follows the last one added. */
static int list_into(crm *c, const char *url, const char *ts, size_t room, tfs_sdk_batch *out,
                     size_t *added, size_t *got, char *ncur, size_t ncap, tfs_sdk_error *err)
{
    int rc;
    *got = 0;
    if ((rc = http(c, "GET", url, NULL, err)) != 0)
        return rc;
    if (c->status != 200) {
        char msg[320];
        server_message(c, msg, sizeof msg);
        host->error_set(err, "could not list contacts: %ld: %s", c->status, msg);
        return TFS_SDK_EPERMANENT;
    }
    json_t *a = parse_array(c, "contacts", err);
    if (!a)
        return TFS_SDK_EPERMANENT;
    size_t i, n = 0;
    json_t *o;
    json_array_foreach(a, i, o) {
        json_t *jid = json_object_get(o, "id");
        if (n == room || !json_is_integer(jid))
            continue;
        long long id = json_integer_value(jid);
        if (ts) {
            const char *u = json_string_value(json_object_get(o, "updated_at"));
            if (!u || !u[0])
                continue; /* never edited in the CRM: written by the sync */
            snprintf(ncur, ncap, CRM_CURSOR_CHANGES "%.200s|%lld", u, id);
        } else {
            snprintf(ncur, ncap, CRM_CURSOR_FULL "%lld", id);
        }
        if (add_record(E_CONTACT, o, out) < 0) {
            json_decref(a);
            host->error_set(err, "could not read contacts: out of memory");
            return TFS_SDK_ETRANSIENT;
        }
        n++;
    }
    *got = json_array_size(a);
    *added += n;
    json_decref(a);
    return 0;
}

/* Change reads, in (updated_at, id) order after the cursor's (ts, last). The API filters
 * by one field's range at a time, so the contacts at ts after last (any number of them:
 * a bulk edit gives many the same updated_at) come first by id, then those after ts. */
static int read_changes(crm *c, char *cur, size_t limit, tfs_sdk_batch *out, size_t *added,
                        char *ncur, size_t ncap, int *done, tfs_sdk_error *err)
{
    char url[2048];
    size_t got = 0;
    int rc;
    char *bar = strlen(cur) > 3 ? strchr(cur + 3, '|') : NULL;
    if (strncmp(cur, CRM_CURSOR_CHANGES, 3) != 0 || !bar) {
        host->error_set(err, "could not read contact changes: bad cursor \"%s\"", cur);
        return TFS_SDK_EPERMANENT;
    }
    *bar = 0;
    const char *ts = cur + 3;
    long long last = strtoll(bar + 1, NULL, 10);
    char *esc = curl_easy_escape(NULL, ts, 0);
    if (!esc) {
        host->error_set(err, "could not read contact changes: out of memory");
        return TFS_SDK_ETRANSIENT;
    }
    if (ts[0]) {
        snprintf(url, sizeof url, "%s/contacts?updated_at=%s&id_gte=%lld&_sort=id&_order=asc"
                                  "&_limit=%zu", c->base, esc, last + 1, limit);
        rc = list_into(c, url, ts, limit, out, added, &got, ncur, ncap, err);
        if (rc != 0 || got >= limit) {
            curl_free(esc);
            return rc;
        }
    }
    size_t room = limit - *added;
    snprintf(url, sizeof url,
             "%s/contacts?updated_at_gte=%s&updated_at_ne=%s&_sort=updated_at,id"
             "&_order=asc,asc&_limit=%zu", c->base, esc, esc, room);
    curl_free(esc);
    rc = list_into(c, url, ts, room, out, added, &got, ncur, ncap, err);
    if (rc == 0 && got < room)
        *done = 1;
    return rc;
}

static int crm_read(void *instance, size_t entity, tfs_sdk_read_mode mode, const void *cursor,
                    size_t cursor_len, size_t max_records, tfs_sdk_batch *out,
                    tfs_sdk_error *err)
{
    crm *c = instance;
    char cur[256] = "", url[2048], ncur[256] = "";
    long long last = 0;
    size_t limit = max_records < (size_t)c->page ? max_records : (size_t)c->page;
    size_t added = 0, got = 0;
    int rc, done = 0;
    if (entity != E_CONTACT) {
        host->error_set(err, "could not read %s: the crm adapter reads contacts only (a "
                             "contact's parcels are written by the sync, not read back)",
                        entity < N_OF(crm_entities) ? crm_entities[entity].name : "?");
        return TFS_SDK_EPERMANENT;
    }
    if (cursor_len >= sizeof cur || (cursor_len && memchr(cursor, 0, cursor_len))) {
        host->error_set(err, "could not read contacts: a cursor of %zu bytes is not this "
                             "adapter's", cursor_len);
        return TFS_SDK_EPERMANENT;
    }
    if (cursor_len)
        memcpy(cur, cursor, cursor_len);
    if (limit == 0)
        limit = 1;
    if (mode == TFS_SDK_READ_FULL) {
        if (cursor_len && sscanf(cur, CRM_CURSOR_FULL "%lld", &last) != 1) {
            host->error_set(err, "could not read contacts: bad full-read cursor \"%s\"", cur);
            return TFS_SDK_EPERMANENT;
        }
        int n = snprintf(url, sizeof url, "%s/contacts?_sort=id&_order=asc&_limit=%zu", c->base,
                         limit);
        if (cursor_len)
            snprintf(url + n, sizeof url - (size_t)n, "&id_gte=%lld", last + 1);
        rc = list_into(c, url, NULL, limit, out, &added, &got, ncur, sizeof ncur, err);
        done = got < limit;
    } else {
        rc = read_changes(c, cur, limit, out, &added, ncur, sizeof ncur, &done, err);
    }
    if (rc != 0)
        return rc;
    if (ncur[0])
        host->batch_set_cursor(out, ncur, strlen(ncur));
    else if (cursor_len)
        host->batch_set_cursor(out, cursor, cursor_len);
    if (done)
        host->batch_set_done(out);
    return 0;
}

/* The cursor of now: the latest updated_at the CRM holds. */
static int crm_changes_start(void *instance, size_t entity, tfs_sdk_batch *out,
                             tfs_sdk_error *err)
{
    crm *c = instance;
    char url[2048], cur[256];
    int rc;
    if (entity != E_CONTACT) {
        host->error_set(err, "could not take the change cursor of %s: the crm adapter reads "
                             "contacts only",
                        entity < N_OF(crm_entities) ? crm_entities[entity].name : "?");
        return TFS_SDK_EPERMANENT;
    }
    snprintf(url, sizeof url, "%s/contacts?_sort=updated_at,id&_order=desc,desc&_limit=1"
                              "&updated_at_gte=0", c->base);
    if ((rc = http(c, "GET", url, NULL, err)) != 0)
        return rc;
    json_t *a = c->status == 200 ? parse_array(c, "contacts", err) : NULL;
    if (!a) {
        if (c->status != 200)
            host->error_set(err, "could not take the change cursor: %ld", c->status);
        return TFS_SDK_EPERMANENT;
    }
    json_t *o = json_array_get(a, 0);
    const char *u = o ? json_string_value(json_object_get(o, "updated_at")) : NULL;
    json_t *jid = o ? json_object_get(o, "id") : NULL;
    snprintf(cur, sizeof cur, CRM_CURSOR_CHANGES "%.200s|%lld", u ? u : "",
             json_is_integer(jid) ? (long long)json_integer_value(jid) : 0LL);
    json_decref(a);
    host->batch_set_cursor(out, cur, strlen(cur));
    return 0;
}

/* ---- fetch and write ------------------------------------------------------------------ */

static int crm_fetch(void *instance, size_t entity, const tfs_sdk_record *const *keys,
                     size_t n_keys, tfs_sdk_batch *out, tfs_sdk_error *err)
{
    crm *c = instance;
    if (entity >= N_OF(crm_entities)) {
        host->error_set(err, "could not fetch entity %zu: the crm has contact and "
                             "contact_property", entity);
        return TFS_SDK_EPERMANENT;
    }
    const char *coll = crm_collections[entity];
    for (size_t i = 0; i < n_keys; i += CRM_FETCH_CHUNK) {
        char url[8192], id[96];
        int n = snprintf(url, sizeof url, "%s/%s?_limit=%d", c->base, coll, CRM_FETCH_CHUNK);
        for (size_t k = i; k < n_keys && k < i + CRM_FETCH_CHUNK; k++)
            if (keys[k] && resource_id(entity, keys[k], id, sizeof id) == 0)
                n += snprintf(url + n, sizeof url - (size_t)n, "&id=%s", id);
        int rc = http(c, "GET", url, NULL, err);
        if (rc != 0)
            return rc;
        json_t *a = c->status == 200 ? parse_array(c, coll, err) : NULL;
        if (!a) {
            if (c->status != 200)
                host->error_set(err, "could not fetch %s: %ld", coll, c->status);
            return TFS_SDK_EPERMANENT;
        }
        size_t j;
        json_t *o;
        json_array_foreach(a, j, o) {
            if (add_record(entity, o, out) < 0) {
                json_decref(a);
                host->error_set(err, "could not fetch %s: out of memory", coll);
                return TFS_SDK_ETRANSIENT;
            }
        }
        json_decref(a);
    }
    return 0;
}

/* One operation: 0 done (or its permanent failure reported), else the call's failure. */
static int write_one(crm *c, const tfs_sdk_write_op *op, size_t i, tfs_sdk_results *results,
                     tfs_sdk_error *err)
{
    char url[2048], msg[320], id[96];
    int rc;
    if (op->entity >= N_OF(crm_entities)) {
        host->result_set(results, i, TFS_SDK_EPERMANENT,
                         "could not write entity %zu: the crm has contact and "
                         "contact_property", op->entity);
        return 0;
    }
    const char *what = crm_entities[op->entity].name, *coll = crm_collections[op->entity];
    if (!op->record || resource_id(op->entity, op->record, id, sizeof id) != 0) {
        host->result_set(results, i, TFS_SDK_EPERMANENT,
                         "could not write %s: a key field is not an integer", what);
        return 0;
    }
    snprintf(url, sizeof url, "%s/%s/%s", c->base, coll, id);
    if (op->kind == TFS_SDK_OP_DELETE) {
        if ((rc = http(c, "DELETE", url, NULL, err)) != 0)
            return rc;
        if (c->status / 100 == 2 || c->status == 404)
            return 0;
        server_message(c, msg, sizeof msg);
        host->result_set(results, i, TFS_SDK_EPERMANENT, "could not delete %s %s: %ld: %s",
                         what, id, c->status, msg);
        return 0;
    }
    if ((rc = http(c, "GET", url, NULL, err)) != 0)
        return rc;
    int exists = c->status == 200;
    if (!exists && c->status != 404) {
        server_message(c, msg, sizeof msg);
        host->result_set(results, i, TFS_SDK_EPERMANENT, "could not read %s %s: %ld: %s",
                         what, id, c->status, msg);
        return 0;
    }
    /* Keep the CRM's updated_at: the sync's write is not a clerk's change. */
    json_t *old = exists ? json_loads(c->body ? c->body : "", 0, NULL) : NULL;
    json_t *o = record_json(op->entity, op->record, id,
                            old ? json_object_get(old, "updated_at") : NULL);
    json_decref(old);
    char *body = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!body) {
        host->error_set(err, "could not write %s %s: out of memory", what, id);
        return TFS_SDK_ETRANSIENT;
    }
    if (!exists)
        snprintf(url, sizeof url, "%s/%s", c->base, coll);
    rc = http(c, exists ? "PUT" : "POST", url, body, err);
    free(body);
    if (rc != 0)
        return rc;
    if (c->status / 100 != 2) {
        server_message(c, msg, sizeof msg);
        host->result_set(results, i, TFS_SDK_EPERMANENT,
                         "could not %s %s %s: the crm answered %ld: %s",
                         exists ? "update" : "create", what, id, c->status, msg);
    }
    return 0;
}

/* No transactions over HTTP: each operation stands alone and is idempotent by id, so a
 * batch retried after a transient failure repeats what was done harmlessly. */
static int crm_write(void *instance, const tfs_sdk_write_op *ops, size_t n_ops,
                     tfs_sdk_results *results, tfs_sdk_error *err)
{
    crm *c = instance;
    for (size_t i = 0; i < n_ops; i++) {
        int rc = write_one(c, &ops[i], i, results, err);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int crm_health(void *instance, tfs_sdk_error *err)
{
    crm *c = instance;
    char url[2048];
    snprintf(url, sizeof url, "%s/contacts?_limit=1", c->base);
    int rc = http(c, "GET", url, NULL, err);
    if (rc == 0 && c->status != 200) {
        host->error_set(err, "could not reach the crm: GET %s answered %ld", url, c->status);
        rc = TFS_SDK_EPERMANENT;
    }
    return rc;
}

/* json-server, like most listing APIs, counts the whole listing in X-Total-Count. */
static int crm_estimate(void *instance, size_t entity, int64_t *count, tfs_sdk_error *err)
{
    crm *c = instance;
    char url[2048];
    if (entity >= N_OF(crm_entities)) {
        *count = -1;
        return 0;
    }
    snprintf(url, sizeof url, "%s/%s?_limit=1", c->base, crm_collections[entity]);
    int rc = http(c, "GET", url, NULL, err);
    if (rc != 0)
        return rc;
    *count = c->status == 200 ? c->total : -1;
    return 0;
}

static int crm_write_limits(void *instance, size_t *max_ops, size_t *max_bytes,
                            tfs_sdk_error *err)
{
    crm *c = instance;
    (void)max_bytes;
    (void)err;
    *max_ops = (size_t)c->max_ops;
    return 0;
}

/* SDK 1.4: contacts are read and written, a contact's parcels only written. */
static unsigned crm_entity_roles(void *instance, size_t entity)
{
    (void)instance;
    return entity == E_CONTACT ? TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET : TFS_SDK_CAP_TARGET;
}

static const tfs_sdk_plugin crm_plugin = {
    .struct_size = sizeof(tfs_sdk_plugin),
    .sdk_major = TFS_SDK_VERSION_MAJOR,
    .sdk_minor = TFS_SDK_VERSION_MINOR,
    .name = "crm",
    .version = "0.1.0",
    .description = "constituent CRM (REST API, JSON over HTTP): contacts of property owners "
                   "by PACS account id, with mailing addresses and the parcels they own; "
                   "changes by updated_at",
    .capabilities = TFS_SDK_CAP_SOURCE | TFS_SDK_CAP_TARGET | TFS_SDK_CAP_CHANGES |
                    TFS_SDK_CAP_LAZY_OPEN,
    .config_keys = crm_config,
    .n_config_keys = N_OF(crm_config),
    .cb_open = crm_open,
    .cb_close = crm_close,
    .cb_describe = crm_describe,
    .cb_read = crm_read,
    .cb_fetch = crm_fetch,
    .cb_write = crm_write,
    .cb_health = crm_health,
    .cb_changes_start = crm_changes_start,
    .cb_check = crm_check,
    .cb_entity_roles = crm_entity_roles,
    .cb_write_limits = crm_write_limits,
    .cb_estimate = crm_estimate,
};

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    if (!h || h->sdk_major != TFS_SDK_VERSION_MAJOR || !TFS_SDK_HOST_HAS(h, op_source))
        return NULL;
    host = h;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return &crm_plugin;
}
