/* cli/cli.h — what the files of tfsync share: the client's settings, one request to the
 * API and its answer, printing, errors that never show the API key, and the parsing of
 * ids and filters. Each group of commands has a file (tfsync.c the dispatcher and the
 * runs, status and health; cli_audit.c, cli_pairs.c, cli_dead_letters.c, ...; the help
 * texts in cli_help.c, the --wait progress in cli_progress.c), and tfsync.c's table names
 * them. */
#ifndef TFS_CLI_H
#define TFS_CLI_H

#include <jansson.h>
#include <stdio.h>

#define EXIT_RUN_FAILED 1
#define EXIT_API 2
#define EXIT_UNREACHABLE 3
#define EXIT_RUN_PARTIAL 4 /* done, with dead letters or parked conflicts */
#define EXIT_RUN_HELD 5    /* a guard holds it until an operator confirms */
#define EXIT_WAIT_TIMEOUT 6 /* --wait --timeout ran out; the run goes on */
#define EXIT_USAGE 64

#define DEFAULT_URL "http://127.0.0.1:8080"
#define POLL_MS 200

typedef struct cli {
    const char *url;  /* without a trailing slash */
    const char *key;  /* NULL: no Authorization header */
    int json;         /* print the raw JSON */
} cli;

typedef struct answer {
    long status;
    char *body;     /* owned, NUL-terminated */
    json_t *json;   /* owned; NULL when the body is not JSON */
    int problem;    /* Content-Type application/problem+json */
} answer;

/* The top-level usage text: every command on a line (cli_help.c). */
void cli_usage(FILE *to);
/* The help of one command (usage, options, examples) on to; -1 for an unknown command. */
int cli_help(const char *command, FILE *to);
/* The command's names for completion and usage errors; NULL-terminated (cli_help.c). */
extern const char *const cli_command_names[];
/* tfsync --version: the client's, the SDK's and the libraries' versions on stdout. */
void cli_version(void);

/* Adds a value no message may carry (an API key: $TFSYNC_KEY's, --key's; up to four);
 * NULL or "": nothing. Borrowed: it must outlive every message. */
void cli_set_secret(const char *secret);
/* The command a usage error is about (its help is suggested); NULL: the top level. */
void cli_set_command(const char *name);
/* fprintf(stderr, "tfsync: " fmt "\n", ...) with every occurrence of a secret replaced
 * by "***": every error and progress message goes through it or cli_redact. */
void cli_errf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* text with every secret replaced by "***", into out (truncated to size). */
void cli_redact(const char *text, char *out, size_t size);
/* Prints "tfsync: " fmt (with arg, redacted), a pointer to --help, and exits 64. */
_Noreturn void cli_usage_error(const char *fmt, const char *arg);
/* One request; exits 3 when no HTTP answer came, and 2 on a problem+json answer (or any
 * other error status unless allow_error), printing its title and detail. allow_error
 * CLI_ANY_ANSWER: every answer is returned, nothing printed. path is appended to the base
 * URL; body NULL: none. */
#define CLI_ANY_ANSWER 2
answer cli_request(const cli *c, const char *method, const char *path, const char *body,
                   int allow_error);
void cli_answer_free(answer *a);
void cli_print_json(const json_t *j);
json_int_t cli_int_of(const json_t *o, const char *k);
const char *cli_str_of(const json_t *o, const char *k, const char *dflt);
/* A positive integer, else a usage error with what (a format taking the text). */
long cli_parse_id(const char *s, const char *what);
void cli_sleep_ms(long ms);
/* Appends ?name=value (or &name=value), URL-escaped, to path. */
void cli_add_query(char *path, size_t size, const char *name, const char *value);
/* Options NAME VALUE into query parameters of path; names lists the accepted ones as
 * pairs of option and query parameter ("--pair", "pair", ..., NULL). */
/* A usage error naming the first argument that looks like an option (a command that
 * takes none). */
void cli_no_options(int argc, char **argv);
void cli_parse_filters(int argc, char **argv, const char *const *names, char *path,
                       size_t size);

/* "read 10 written 8 ... deleted 0" and the extras of one entity's counts. */
void cli_format_counts(const json_t *n, char *out, size_t size);

/* Follows run id to its end (sync --wait): a progress bar on a terminal, plain lines
 * otherwise; the end line; the exit code of its final state, or EXIT_WAIT_TIMEOUT once
 * timeout_s (> 0) seconds passed (0: no limit) (cli_progress.c). */
int cli_wait_run(const cli *c, json_int_t id, double timeout_s);
/* A job's answer (validate, replay): the answer itself, or when the API answered 202 the
 * run's result once it ended, with run_id, state and error set. New reference. */
json_t *cli_job_result(const cli *c, const answer *a);

/* The commands, each (argc, argv) after the command's name; they return the exit code. */
int cli_cmd_audit(const cli *c, int argc, char **argv);
int cli_cmd_pairs(const cli *c, int argc, char **argv);
int cli_cmd_plugins(const cli *c, int argc, char **argv);
int cli_cmd_validate(const cli *c, int argc, char **argv);
int cli_cmd_dead_letters(const cli *c, int argc, char **argv);
int cli_cmd_transform(const cli *c, int argc, char **argv);
int cli_cmd_conflicts(const cli *c, int argc, char **argv);

#endif
