/* tests/fuzz/config_fuzz.c — the config loader (core/config*.c), from JSON text in a file
 * to a checked config, as tfs_config_load reads it at start-up and at a reload.
 *
 * The folder beside the file holds map.lua and lookups/codes.csv, so pairs, rules and
 * lookups can load. Invariants: a refusal says where and what (a non-empty message naming
 * the file) and hands back no config; a taken config is consistent: every pair's source
 * and target are configured systems, names are unique, every entity mapping has targets
 * and a script that exists, every key a known role, every rule a field; loading the same
 * text again gives the same answer; nothing leaks (per input).
 */
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "fuzz_common.h"

static char file[PATH_MAX];
static const char *dir;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    dir = fuzz_scratch_dir("config");
    static const char map[] = "function map(r) return {} end\n";
    static const char codes[] = "code,description\nR,residential\nC,commercial\n";
    if (fuzz_write_file(dir, "map.lua", map, strlen(map)) ||
        fuzz_write_file(dir, "lookups/codes.csv", codes, strlen(codes)))
        abort();
    snprintf(file, sizeof file, "%s/tfsyncd.json", dir);
    return 0;
}

static void check_config(const tfs_config *c)
{
    FUZZ_CHECK(c->state_conninfo && c->plugin_dir && c->transform_dir, "a required setting");
    for (size_t i = 0; i < c->n_keys; i++)
        FUZZ_CHECK(c->keys[i].name && c->keys[i].role >= TFS_ROLE_READ &&
                       c->keys[i].role <= TFS_ROLE_ADMIN,
                   "key %zu", i);
    for (size_t i = 0; i < c->n_systems; i++) {
        FUZZ_CHECK(c->systems[i].name && c->systems[i].plugin, "system %zu", i);
        FUZZ_CHECK(tfs_config_system_get(c, c->systems[i].name) == &c->systems[i],
                   "system \"%s\" twice", c->systems[i].name);
    }
    for (size_t i = 0; i < c->n_pairs; i++) {
        const tfs_config_pair *p = &c->pairs[i];
        FUZZ_CHECK(tfs_config_pair_get(c, p->name) == p, "pair \"%s\" twice", p->name);
        FUZZ_CHECK(tfs_config_system_get(c, p->source) && tfs_config_system_get(c, p->target),
                   "pair \"%s\" between systems that are not configured", p->name);
        FUZZ_CHECK(p->batch_size > 0 && p->n_entities > 0, "pair \"%s\"", p->name);
        FUZZ_CHECK(p->max_failed_ratio >= 0 && p->max_failed_ratio <= 1 &&
                       p->max_delete_ratio >= 0 && p->max_delete_ratio <= 1,
                   "pair \"%s\": ratios %g %g", p->name, p->max_failed_ratio,
                   p->max_delete_ratio);
        for (size_t k = 0; k < p->n_entities; k++) {
            const tfs_config_entity *e = &p->entities[k];
            FUZZ_CHECK(e->source && e->script && e->n_targets > 0, "pair \"%s\" entity %zu",
                       p->name, k);
            char path[PATH_MAX * 2];
            struct stat st;
            snprintf(path, sizeof path, "%s/%s", c->transform_dir, e->script);
            FUZZ_CHECK(stat(path, &st) == 0, "script \"%s\" of pair \"%s\" is missing",
                       e->script, p->name);
        }
        for (size_t r = 0; r < p->validation.n; r++)
            FUZZ_CHECK(p->validation.items[r].field && p->validation.items[r].entity,
                       "pair \"%s\" rule %zu", p->name, r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16384)
        return 0;
    FUZZ_CHECK(fuzz_write_file(dir, "tfsyncd.json", data, size) == 0, "write");
    tfs_config *cfg = NULL;
    tfs_error err = {0};
    int rc = tfs_config_load(file, &cfg, &err);
    if (rc != 0) {
        FUZZ_CHECK(rc == TFS_EINVAL || rc == TFS_ENOMEM, "rc %d", rc);
        FUZZ_CHECK(!cfg, "a refused config handed back");
        FUZZ_CHECK(strstr(err.message, "tfsyncd.json"), "a refusal without the file: %s",
                   err.message);
    } else {
        FUZZ_CHECK(cfg, "no config");
        check_config(cfg);
    }
    /* The same text, the same answer. */
    tfs_config *again = NULL;
    tfs_error err2 = {0};
    int rc2 = tfs_config_load(file, &again, &err2);
    FUZZ_CHECK(rc2 == rc && strcmp(err.message, err2.message) == 0,
               "a second load says %d \"%s\", the first %d \"%s\"", rc2, err2.message, rc,
               err.message);
    tfs_config_free(again);
    tfs_config_free(cfg);
    return 0;
}
