/* cli/cli.h — what the files of tfsync share: the client's settings, one request to the
 * API and its answer, printing, and the parsing of ids and filters. Each group of commands
 * has a file (tfsync.c the runs, status, audit and health; cli_dead_letters.c, ...), and
 * tfsync.c's table names them. */
#ifndef TFS_CLI_H
#define TFS_CLI_H

#include <jansson.h>
#include <stdio.h>

#define EXIT_RUN_FAILED 1
#define EXIT_API 2
#define EXIT_UNREACHABLE 3
#define EXIT_RUN_PARTIAL 4 /* done, with dead letters or parked conflicts */
#define EXIT_RUN_HELD 5    /* a guard holds it until an operator confirms */
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

/* The usage text (tfsync.c). */
void cli_usage(FILE *to);
/* Prints "tfsync: " fmt (with arg), the usage, and exits 64. */
_Noreturn void cli_usage_error(const char *fmt, const char *arg);
/* One request; exits 3 when no HTTP answer came, and 2 on a problem+json answer (or any
 * other error status unless allow_error), printing its title and detail. path is
 * appended to the base URL; body NULL: none. */
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
void cli_parse_filters(int argc, char **argv, const char *const *names, char *path,
                       size_t size);

/* The commands, each (argc, argv) after the command's name; they return the exit code. */
int cli_cmd_dead_letters(const cli *c, int argc, char **argv);
int cli_cmd_transform(const cli *c, int argc, char **argv);

#endif
