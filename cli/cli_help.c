/* cli/cli_help.c — what tfsync says about itself: the top-level usage, each command's
 * --help (usage, options, examples) and --version. The texts are here, in one table, so
 * the top-level list, the per-command help and the completion's list cannot drift apart
 * silently (tests/integration/cli_test.c checks each help names its options). */
#include <curl/curl.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "tfsync_plugin.h"

#ifndef TFS_VERSION
#define TFS_VERSION "unknown"
#endif

#define GLOBAL_OPTIONS                                                                    \
    "global options (before or after the command):\n"                                    \
    "  --url URL     the daemon's API (default $TFSYNC_URL, else " DEFAULT_URL ")\n"       \
    "  --key KEY     the API key (default $TFSYNC_KEY); sent as a Bearer token, never\n"   \
    "                printed\n"                                                            \
    "  --json        print the API's JSON as it is\n"                                      \
    "  -h, --help    this help\n"

static const struct {
    const char *name;
    const char *summary; /* the top-level list's line */
    const char *text;    /* usage, what it does, options, examples */
} helps[] = {
    {"sync", "start a run of a pair; --wait follows it with a progress bar",
     "usage: tfsync sync full|incremental PAIR [--wait] [--timeout SECONDS]\n"
     "       tfsync run full|incremental PAIR [--wait] [--timeout SECONDS]\n"
     "\n"
     "Starts a full or incremental run of PAIR and prints its run id. With --wait it\n"
     "follows the run to its end: on a terminal a progress bar (records done of the\n"
     "run's estimated total, rate, ETA) redrawn in place, otherwise a plain line per\n"
     "state change and every few seconds; then the end line. A held run ends the wait.\n"
     "\n"
     "options:\n"
     "  --wait              follow the run to its end; exit with its outcome\n"
     "  --timeout SECONDS   wait at most this long (implies --wait); exit 6 when it runs\n"
     "                      out, the run goes on\n"
     "\n"
     "exit codes: 0 succeeded (or started, without --wait), 1 failed or cancelled,\n"
     "2 API error, 3 unreachable, 4 partial, 5 held, 6 --timeout ran out, 64 usage\n"
     "\n"
     "examples:\n"
     "  tfsync sync full pacs-to-cama --wait\n"
     "  tfsync sync incremental pacs-to-cama --wait --timeout 600\n"},
    {"status", "every pair's last run, or one run",
     "usage: tfsync status [RUN_ID]\n"
     "\n"
     "Without RUN_ID: each pair, its last run with counts per entity, checkpoints and lag.\n"
     "With RUN_ID: that run, its state, counts, error, wait or hold.\n"
     "\n"
     "options: none but the global ones\n"
     "\n"
     "examples:\n"
     "  tfsync status\n"
     "  tfsync status 42\n"},
    {"pairs", "the pairs: systems, entities, schedule and last run",
     "usage: tfsync pairs\n"
     "\n"
     "Each configured pair: its source and target systems, batch size, conflict policy,\n"
     "the entity mappings (source entity, target entities, script), the schedule and\n"
     "next scheduled run, and the last run.\n"
     "\n"
     "options: none but the global ones\n"
     "\n"
     "examples:\n"
     "  tfsync pairs\n"
     "  tfsync --json pairs\n"},
    {"plugins", "loaded plugins, versions, capabilities; refused files with reasons",
     "usage: tfsync plugins [NAME]\n"
     "\n"
     "The plugins the daemon loaded: name, version, SDK version, capabilities and\n"
     "description; then the files it refused, each with the reason. With NAME: that\n"
     "plugin and its settings (name, type, default, description).\n"
     "\n"
     "options: none but the global ones\n"
     "\n"
     "examples:\n"
     "  tfsync plugins\n"
     "  tfsync plugins pacs\n"},
    {"validate", "dry run of a pair's mappings on a sample, nothing written",
     "usage: tfsync validate PAIR [--sample N]\n"
     "\n"
     "Runs the first N records of each entity of PAIR's source through the script, the\n"
     "validator, the pair's rules and the script's validate(); nothing is written. Prints\n"
     "per entity the counts by outcome, schema findings, the script error and the\n"
     "records that would fail. Needs the operate role.\n"
     "\n"
     "options:\n"
     "  --sample N   records per entity, 1 to 1000 (default 20)\n"
     "\n"
     "exit codes: 0 valid, 1 a finding or a record that would fail, 2 API error,\n"
     "3 unreachable, 64 usage\n"
     "\n"
     "examples:\n"
     "  tfsync validate pacs-to-cama\n"
     "  tfsync validate pacs-to-cama --sample 200\n"},
    {"audit", "applied changes, oldest first, in pages; audit verify: the hash chain",
     "usage: tfsync audit [--pair P] [--entity E] [--record KEY] [--run N] [--since TIME]\n"
     "                    [--until TIME] [--after-id N] [--limit N] [--all]\n"
     "       tfsync audit verify [--pair P]\n"
     "\n"
     "One line per change a run applied: id, run, entity, record key, op, time and the\n"
     "fields changed. Filters combine with AND. One page (--limit entries) is printed;\n"
     "when more follow, stderr says which --after-id reads on; --all reads every page.\n"
     "audit verify walks the audit trail's hash chain and names the first entry that\n"
     "does not match (exit 1).\n"
     "\n"
     "options:\n"
     "  --pair P         only this pair\n"
     "  --entity E       only this source entity\n"
     "  --record KEY     only this source record: its key fields joined by | (the\n"
     "                   entries' key); --key is the API key\n"
     "  --run N          only this run\n"
     "  --since TIME     at or after TIME (ISO 8601, e.g. 2026-03-02T08:00:00Z)\n"
     "  --until TIME     before TIME (exclusive)\n"
     "  --after-id N     entries whose id is greater (a page's next id)\n"
     "  --limit N        entries per page, 1 to 1000 (default 100)\n"
     "  --all            follow every page\n"
     "\n"
     "examples:\n"
     "  tfsync audit --pair pacs-to-cama --since 2026-03-02T00:00:00Z --all\n"
     "  tfsync audit --record '10042|2026'\n"
     "  tfsync audit verify --pair pacs-to-cama\n"},
    {"dead-letters", "records that failed: list, replay, discard",
     "usage: tfsync dead-letters [list] [--pair P] [--entity E] [--run N] [--stage S]\n"
     "                           [--status S] [--limit N] [--after ID]\n"
     "       tfsync dead-letters replay ID | --pair P [--entity E] [--run N] [--stage S]\n"
     "       tfsync dead-letters discard ID\n"
     "\n"
     "list: the records that failed (open ones unless --status), oldest first.\n"
     "replay: run them again with the current script and rules (exit 4 when some fail\n"
     "again). discard: drop one (role admin), audited.\n"
     "\n"
     "options:\n"
     "  --pair P      only this pair\n"
     "  --entity E    only this source entity\n"
     "  --run N       only this run's\n"
     "  --stage S     only those that failed in this stage\n"
     "  --status S    open, replayed, resolved, discarded, superseded or all (list;\n"
     "                default open)\n"
     "  --limit N     the most in one page (list)\n"
     "  --after ID    those after this id (list: the page's next)\n"
     "\n"
     "examples:\n"
     "  tfsync dead-letters --pair pacs-to-cama --run 42\n"
     "  tfsync dead-letters replay --pair pacs-to-cama --stage validate\n"
     "  tfsync dead-letters discard 7\n"},
    {"conflicts", "conflicts the manual policy parked: list, show, resolve",
     "usage: tfsync conflicts list [--pair P] [--status S] [--entity E] [--limit N]\n"
     "                             [--after ID]\n"
     "       tfsync conflicts show ID\n"
     "       tfsync conflicts resolve ID source|target|--record FILE\n"
     "\n"
     "list: conflicts, oldest first. show: the fields in dispute, the source, target and\n"
     "base versions. resolve: decide an open conflict with the source's version, the\n"
     "target's, or a merged record from FILE ({\"target entity\": [records]}).\n"
     "\n"
     "options:\n"
     "  --pair P        only this pair (list)\n"
     "  --status S      open, resolved or superseded (list)\n"
     "  --entity E      only this entity (list)\n"
     "  --limit N       the most in one page (list)\n"
     "  --after ID      those after this id (list)\n"
     "  --record FILE   resolve with the record in FILE\n"
     "\n"
     "examples:\n"
     "  tfsync conflicts list --pair pacs-to-cama --status open\n"
     "  tfsync conflicts show 7\n"
     "  tfsync conflicts resolve 7 target\n"},
    {"cancel", "end a queued, waiting, running or held run as cancelled",
     "usage: tfsync cancel RUN_ID\n"
     "\n"
     "A queued, waiting or running run ends cancelled at its next batch boundary; a held\n"
     "one at once, nothing deleted. Needs the operate role.\n"
     "\n"
     "options: none but the global ones\n"
     "\n"
     "examples:\n"
     "  tfsync cancel 42\n"},
    {"confirm", "let a held run apply the deletions it is held for",
     "usage: tfsync confirm RUN_ID N\n"
     "\n"
     "A run the mass-deletion guard holds goes on and applies its N deletions; N must be\n"
     "the number it is held for. Needs the operate role.\n"
     "\n"
     "options: none but the global ones\n"
     "\n"
     "examples:\n"
     "  tfsync confirm 42 9999\n"},
    {"transform", "run a script over records from a file, nothing written",
     "usage: tfsync transform test NAME FILE [--pair P] [--entity E] [--source SCRIPT.lua]\n"
     "\n"
     "Runs the mapping script NAME (or, with --source, an unsaved edit of it) over the\n"
     "JSON records of FILE (one object or a list) and prints what each would be written\n"
     "as, its validation problems, or the Lua error with its line. Exit 1 when a record\n"
     "fails.\n"
     "\n"
     "options:\n"
     "  --pair P               the pair whose mapping runs NAME (when several do)\n"
     "  --entity E             the source entity (when the pair maps several with NAME)\n"
     "  --source SCRIPT.lua    run this file's text instead of the saved script\n"
     "\n"
     "examples:\n"
     "  tfsync transform test pacs_to_cama.lua records.json\n"
     "  tfsync transform test pacs_to_cama.lua records.json --source edited.lua\n"},
    {"health", "the daemon, its state store and systems",
     "usage: tfsync health\n"
     "\n"
     "The daemon's status and uptime, the state store's, and each system's with its\n"
     "circuit breaker. Needs no key. Exit 1 when not ok.\n"
     "\n"
     "options: none but the global ones\n"
     "\n"
     "examples:\n"
     "  tfsync health\n"},
};

#define N_HELPS (sizeof helps / sizeof helps[0])

const char *const cli_command_names[] = {"sync",     "run",       "status",  "pairs",
                                         "plugins",  "validate",  "audit",   "dead-letters",
                                         "conflicts", "cancel",   "confirm", "transform",
                                         "health",   NULL};

void cli_usage(FILE *to)
{
    fputs("usage: tfsync [--url URL] [--key KEY] [--json] COMMAND [ARGS] [OPTIONS]\n"
          "       tfsync COMMAND --help\n"
          "       tfsync --version\n"
          "\n"
          "commands:\n",
          to);
    for (size_t i = 0; i < N_HELPS; i++)
        fprintf(to, "  %-13s %s\n", helps[i].name, helps[i].summary);
    fputs("  run           the same as sync\n"
          "\n" GLOBAL_OPTIONS "  --version     the client's, the SDK's and the libraries' versions\n"
          "\n"
          "exit codes: 0 ok, 1 a run failed or was cancelled, not healthy, not valid, or an\n"
          "audit chain that does not verify, 2 API error, 3 unreachable, 4 run partial (dead\n"
          "letters or parked conflicts), 5 run held by a guard (tfsync confirm or cancel),\n"
          "6 --timeout ran out (the run goes on), 64 usage\n"
          "\n"
          "See tfsync COMMAND --help and the tfsync(1) man page.\n",
          to);
}

int cli_help(const char *command, FILE *to)
{
    if (strcmp(command, "run") == 0)
        command = "sync";
    for (size_t i = 0; i < N_HELPS; i++) {
        if (strcmp(command, helps[i].name) == 0) {
            fputs(helps[i].text, to);
            fputs("\n" GLOBAL_OPTIONS, to);
            return 0;
        }
    }
    return -1;
}

void cli_version(void)
{
    const curl_version_info_data *cv = curl_version_info(CURLVERSION_NOW);
    printf("tfsync %s\n", TFS_VERSION);
    printf("SDK %d.%d\n", TFS_SDK_VERSION_MAJOR, TFS_SDK_VERSION_MINOR);
    printf("libcurl %s\n", cv && cv->version ? cv->version : "?");
    printf("jansson %s\n", jansson_version_str());
}
