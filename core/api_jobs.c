/* core/api_jobs.c — starting a job of a pair from a request and answering it, and the
 * body parser the job endpoints share; see api_internal.h.
 *
 * A job (a replay, a resolve, a validation) is a run of its pair: it is recorded, leased
 * and executed by a worker like a sync, so it never runs on a request thread, never beside
 * another run of its pair, and survives a crash. The request waits a bounded time for its
 * answer, polling the run's state in the store (the job may run on another node sharing
 * the store), then answers 202 with where to look.
 */
#include "api_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "store.h"

json_t *tfs_api_body(const tfs_http_request *req, tfs_http_response *resp,
                     const char *const *allowed, const char *example, int empty_ok)
{
    if (req->body_len == 0 && empty_ok)
        return json_object();
    json_t *body = tfs_http_body_json(req, resp, example);
    if (!body)
        return NULL;
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, key) == 0;
        if (!ok) {
            char list[256] = "";
            for (const char *const *a = allowed; *a; a++) {
                strncat(list, *a, sizeof list - strlen(list) - 1);
                if (a[1])
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                             "unknown field \"%s\"; the body takes %s (e.g. %s)", key, list,
                             example);
            json_decref(body);
            return NULL;
        }
    }
    return body;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The answer of a job that ended: its result, or the problem it holds. */
static void answer_ended(tfs_http_response *resp, const tfs_store_run *run, const char *mode)
{
    json_t *problem = json_object_get(run->result, "problem");
    if (json_is_object(problem)) {
        json_int_t status = json_integer_value(json_object_get(problem, "status"));
        const char *type = json_string_value(json_object_get(problem, "type"));
        const char *title = json_string_value(json_object_get(problem, "title"));
        const char *detail = json_string_value(json_object_get(problem, "detail"));
        tfs_http_problem(resp, status >= 400 && status < 600 ? (int)status : 422,
                         type ? type : "job-refused", title ? title : "Job refused", "%s",
                         detail ? detail : "the job refused the request");
        const char *k;
        json_t *v;
        json_object_foreach(problem, k, v) {
            if (strcmp(k, "status") && strcmp(k, "type") && strcmp(k, "title") &&
                strcmp(k, "detail"))
                json_object_set(resp->json, k, v);
        }
        json_object_set_new(resp->json, "run_id", json_integer(run->run_id));
        return;
    }
    if (!run->result) {
        tfs_http_problem(resp, strcmp(run->state, "failed") == 0 ? 500 : 200, "job-failed",
                         "Job ended without an answer",
                         "the %s job (run %" PRId64 ") ended %s without an answer; see GET "
                         "/sync/status/%" PRId64 " for its error",
                         mode, run->run_id, run->state, run->run_id);
        json_object_set_new(resp->json, "run_id", json_integer(run->run_id));
        return;
    }
    json_t *body = json_deep_copy(run->result);
    if (!json_is_object(body)) {
        json_decref(body);
        body = json_pack("{sO}", "result", run->result);
    }
    json_object_set_new(body, "run_id", json_integer(run->run_id));
    json_object_set_new(body, "state", json_string(run->state));
    tfs_http_json(resp, 200, body);
}

void tfs_api_run_job(tfs_api *api, const tfs_http_request *req, tfs_http_response *resp,
                     const char *pair, const char *mode, const json_t *params)
{
    tfs_store *s = tfs_api_store_get(api, resp);
    if (!s)
        return;
    tfs_error err = {0};
    int64_t run_id = 0;
    int rc = tfs_runner_submit_job(api->runner, s, pair, mode, req->actor ? req->actor : "?",
                                   params, &run_id, &err);
    if (rc == TFS_ENOTFOUND) {
        tfs_http_problem(resp, 404, "unknown-pair", "Unknown pair", "%s; %s", err.message,
                         err.hint);
        goto out;
    }
    if (rc == TFS_ECONFLICT) {
        tfs_http_problem(resp, 409, "pair-busy", "Pair busy",
                         "pair \"%s\" has run %" PRId64 " under way (or held); a %s job runs "
                         "only between its runs: wait for it (GET /sync/status/%" PRId64
                         ") and try again",
                         pair, run_id, mode, run_id);
        json_object_set_new(resp->json, "run_id", json_integer(run_id));
        goto out;
    }
    if (rc) {
        tfs_api_store_problem(resp, &err);
        goto out;
    }
    int64_t deadline = mono_ms() + api->cfg->job_wait_ms;
    char state[16] = "queued";
    for (long pause_ms = 5;; pause_ms = pause_ms < 100 ? pause_ms * 2 : 100) {
        int ended = tfs_store_run_ended(s, run_id, state, &err);
        if (ended == 1) {
            tfs_store_run run = {0};
            if (tfs_store_run_get(s, run_id, &run, &err) == 0)
                answer_ended(resp, &run, mode);
            else
                tfs_api_store_problem(resp, &err);
            tfs_store_run_clear(&run);
            goto out;
        }
        if (ended != 0 && tfs_store_ensure(s, NULL) != 0) {
            tfs_api_store_problem(resp, &err);
            goto out;
        }
        if (mono_ms() >= deadline)
            break;
        struct timespec ts = {0, pause_ms * 1000000L};
        nanosleep(&ts, NULL);
    }
    snprintf(resp->location, sizeof resp->location, "/sync/status/%" PRId64, run_id);
    tfs_http_json(resp, 202, json_pack("{sIsssssss}", "run_id", (json_int_t)run_id, "mode",
                                       mode, "state", state, "status_url", resp->location));
out:
    tfs_api_store_put(api, s);
}
