/* core/api_internal.h — what the API's handler files share (api.c, api_jobs.c and the
 * handlers of each resource): state store connections for a request, the parsers of
 * ids, bodies and queries, and the one way a job of a pair is started and answered.
 * Not for other modules. */
#ifndef TFS_API_INTERNAL_H
#define TFS_API_INTERNAL_H

#include <stdint.h>

#include <jansson.h>

#include "api.h"

/* A state store connection for this request (from the API's pool), or NULL after
 * answering 503; give it back with tfs_api_store_put. */
tfs_store *tfs_api_store_get(tfs_api *api, tfs_http_response *resp);
void tfs_api_store_put(tfs_api *api, tfs_store *s);
/* Answers 503 state-store-unavailable with err's message. */
void tfs_api_store_problem(tfs_http_response *resp, const tfs_error *err);

/* A positive integer id; -1 when text is not one. */
int tfs_api_parse_id(const char *text, int64_t *out);
/* The {run_id} of the path (req->params[0]) into *id; -1 after answering 400. */
int tfs_api_run_id_param(const tfs_http_request *req, tfs_http_response *resp, int64_t *id);
/* The run_id and limit query arguments of a listing; -1 after answering 400. */
int tfs_api_parse_run_and_limit(const tfs_http_request *req, tfs_http_response *resp,
                                int64_t *run_id, int64_t *limit);

/* The request's body as a JSON object whose keys are all in allowed (NULL-terminated),
 * owned by the caller; NULL after answering 400 (empty, malformed JSON with line and
 * column, not an object, an unknown key). example is the body shape the errors show. An
 * empty body is {} when empty_ok. */
json_t *tfs_api_body(const tfs_http_request *req, tfs_http_response *resp,
                     const char *const *allowed, const char *example, int empty_ok);

/* Starts a job of pair (mode "replay", "resolve" or "validate") with params (borrowed)
 * on a worker, never on this thread, and waits up to jobs.wait for it to end. Answers:
 * - 200 with the job's result and {"run_id", "state"} once it ended with a result; a
 *   result holding "problem" ({"status", "type", "title", "detail", ...}) is answered as
 *   that problem instead (how a job refuses, e.g. 409 for a target that changed);
 * - 202 with {"run_id", "state", "status_url"} while it still runs;
 * - 404 unknown-pair, 409 pair-busy (with the run_id holding the pair), 503 when the
 *   state store is down. */
void tfs_api_run_job(tfs_api *api, const tfs_http_request *req, tfs_http_response *resp,
                     const char *pair, const char *mode, const json_t *params);

/* The dead letters' handlers (api_dead_letters.c): GET /dead-letters, GET and DELETE
 * /dead-letters/{id}, POST /dead-letters/{id}/replay, POST /dead-letters/replay. */
void tfs_api_dead_letters_list(const tfs_http_request *req, tfs_http_response *resp,
                               void *ctx);
void tfs_api_dead_letter_get(const tfs_http_request *req, tfs_http_response *resp, void *ctx);
void tfs_api_dead_letter_replay(const tfs_http_request *req, tfs_http_response *resp,
                                void *ctx);
void tfs_api_dead_letters_replay(const tfs_http_request *req, tfs_http_response *resp,
                                 void *ctx);
void tfs_api_dead_letter_discard(const tfs_http_request *req, tfs_http_response *resp,
                                 void *ctx);

/* The dry runs (api_transforms.c): POST /sync/validate and POST /transforms/{name}/test. */
void tfs_api_handle_validate(const tfs_http_request *req, tfs_http_response *resp, void *ctx);
void tfs_api_handle_transform_test(const tfs_http_request *req, tfs_http_response *resp,
                                   void *ctx);

/* The conflicts' handlers (api_conflicts.c), ctx the tfs_api. */
void tfs_api_conflicts_list(const tfs_http_request *req, tfs_http_response *resp, void *ctx);
void tfs_api_conflict_get(const tfs_http_request *req, tfs_http_response *resp, void *ctx);
void tfs_api_conflict_resolve(const tfs_http_request *req, tfs_http_response *resp, void *ctx);

/* GET /metrics (api_metrics.c), ctx the tfs_api: open when metrics.public, else a key of
 * role read. */
void tfs_api_metrics(const tfs_http_request *req, tfs_http_response *resp, void *ctx);
/* GET /ui, /ui/ and /ui/{file}: the web console's embedded files, without a key
 * (api_ui.c). */
void tfs_api_ui(const tfs_http_request *req, tfs_http_response *resp, void *ctx);

/* GET /audit/verify (api_audit.c), ctx the tfs_api. */
void tfs_api_audit_verify(const tfs_http_request *req, tfs_http_response *resp, void *ctx);

#endif
