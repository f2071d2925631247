/* core/api_transforms.c — the dry runs of the API: POST /sync/validate (a pair's mapping
 * against its target's schema, and a sample of its source through transform and
 * validation) and POST /transforms/{name}/test (given records through a script, the saved
 * one or an unsaved edit). Both are answered by a worker as a job of mode "validate" of
 * the pair (pipeline_validate.c), since the schemas they check against come from the
 * pair's adapters, which request threads never call; see api_internal.h for how a job is
 * started and answered. Nothing is written but the job's own run and answer.
 */
#include "api_internal.h"

#include <stdio.h>
#include <string.h>

#include "tfs_limits.h"

/* ---- POST /sync/validate ------------------------------------------------------------ */

void tfs_api_handle_validate(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    tfs_api *api = ctx;
    static const char *const allowed[] = {"pair", "sample", NULL};
    json_t *body = tfs_api_body(req, resp, allowed, "{\"pair\": \"pacs-to-cama\", \"sample\": 20}",
                                0);
    if (!body)
        return;
    const char *pair = json_string_value(json_object_get(body, "pair"));
    json_t *sv = json_object_get(body, "sample");
    json_int_t sample = sv ? (json_is_integer(sv) ? json_integer_value(sv) : -1)
                           : TFS_VALIDATE_SAMPLE_DEFAULT;
    if (!pair) {
        tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                         "pair is missing or not a string; send {\"pair\": NAME, \"sample\": "
                         "N} (GET /pairs lists the pairs)");
    } else if (sample < 1 || sample > TFS_VALIDATE_SAMPLE_MAX) {
        tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                         "sample must be an integer from 1 to %d (default %d): the number of "
                         "source records mapped per entity",
                         TFS_VALIDATE_SAMPLE_MAX, TFS_VALIDATE_SAMPLE_DEFAULT);
    } else {
        json_t *params = json_pack("{sI}", "sample", sample);
        tfs_api_run_job(api, req, resp, pair, "validate", params);
        json_decref(params);
    }
    json_decref(body);
}

/* ---- POST /transforms/{name}/test --------------------------------------------------- */

/* The entity mapping a test runs on: the one named (its source entity), else the first of
 * pair that runs the script; and the pair: the one named, else the first with such a
 * mapping. NULL after answering the problem. */
static const tfs_config_entity *test_mapping(const tfs_config *cfg, const char *script,
                                             const char *pair_name, const char *entity,
                                             const tfs_config_pair **pair,
                                             tfs_http_response *resp)
{
    *pair = NULL;
    for (size_t i = 0; i < cfg->n_pairs; i++) {
        const tfs_config_pair *p = &cfg->pairs[i];
        if (pair_name && strcmp(p->name, pair_name) != 0)
            continue;
        for (size_t k = 0; k < p->n_entities; k++) {
            const tfs_config_entity *em = &p->entities[k];
            if (entity ? strcmp(em->source, entity) == 0 : strcmp(em->script, script) == 0) {
                *pair = p;
                return em;
            }
        }
        if (pair_name)
            break;
    }
    if (pair_name && !tfs_config_pair_get(cfg, pair_name))
        tfs_http_problem(resp, 404, "unknown-pair", "Unknown pair",
                         "unknown pair \"%s\"; GET /pairs lists the pairs", pair_name);
    else if (entity)
        tfs_http_problem(resp, 404, "unknown-entity", "Unknown entity",
                         "pair \"%s\" maps no source entity \"%s\"; GET /pairs lists its "
                         "entity mappings",
                         pair_name ? pair_name : "(any)", entity);
    else
        tfs_http_problem(resp, 404, "unknown-script", "Unknown script",
                         "no entity mapping%s%s%s runs the script \"%s\"; name the pair and "
                         "the entity to try it on (\"pair\", \"entity\")",
                         pair_name ? " of pair \"" : "", pair_name ? pair_name : "",
                         pair_name ? "\"" : "", script);
    return NULL;
}

void tfs_api_handle_transform_test(const tfs_http_request *req, tfs_http_response *resp,
                                   void *ctx)
{
    tfs_api *api = ctx;
    const char *name = req->params[0];
    static const char *const allowed[] = {"pair", "entity", "records", "source", NULL};
    json_t *body = tfs_api_body(req, resp, allowed,
                                "{\"pair\": \"pacs-to-cama\", \"entity\": \"property\", "
                                "\"records\": [{...}], \"source\": \"-- optional Lua\"}",
                                0);
    if (!body)
        return;
    json_t *records = json_object_get(body, "records");
    json_t *source = json_object_get(body, "source");
    json_t *pv = json_object_get(body, "pair"), *ev = json_object_get(body, "entity");
    int bad_records = !json_is_array(records) || json_array_size(records) == 0 ||
                      json_array_size(records) > TFS_TRANSFORM_TEST_MAX_RECORDS;
    for (size_t i = 0; !bad_records && i < json_array_size(records); i++)
        bad_records = !json_is_object(json_array_get(records, i));
    const tfs_config_pair *pair = NULL;
    const tfs_config_entity *em = NULL;
    if (bad_records) {
        tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                         "records must be a list of 1 to %d source records, each a JSON "
                         "object of the source entity's fields",
                         TFS_TRANSFORM_TEST_MAX_RECORDS);
    } else if ((source && !json_is_string(source)) || (pv && !json_is_string(pv)) ||
               (ev && !json_is_string(ev))) {
        tfs_http_problem(resp, 400, "invalid-field", "Invalid field",
                         "pair, entity and source must be strings (source: the Lua text to "
                         "try instead of the saved script)");
    } else if ((em = test_mapping(api->cfg, name, json_string_value(pv), json_string_value(ev),
                                  &pair, resp))) {
        json_t *test = json_pack("{ss ss sO}", "script", name, "entity", em->source, "records",
                                 records);
        if (source)
            json_object_set(test, "source", source);
        json_t *params = json_pack("{so}", "test", test);
        tfs_api_run_job(api, req, resp, pair->name, "validate", params);
        json_decref(params);
    }
    json_decref(body);
}
