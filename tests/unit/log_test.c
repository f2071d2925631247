/* tests/unit/log_test.c — the JSON log lines: whatever a message holds (quotes, control
 * bytes, bytes that are not UTF-8, more than a line can carry), each call is one line that
 * parses, with the thread's context and a caller's fields; the text format is as before.
 * stderr is pointed at a real file for each test and read back.
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static char path[64];
static int saved_stderr = -1;

static void capture(void)
{
    snprintf(path, sizeof path, "/tmp/tfs_log_test_XXXXXX");
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    cr_assert(dup2(fd, STDERR_FILENO) >= 0);
    close(fd);
}

/* Every line written since capture(), as an array of strings. */
static json_t *captured_lines(void)
{
    fflush(stderr);
    dup2(saved_stderr, STDERR_FILENO);
    close(saved_stderr);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    json_t *lines = json_array();
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        cr_assert_eq(line[n - 1], '\n', "a line ends with its newline");
        line[n - 1] = '\0';
        json_array_append_new(lines, json_string_nocheck(line));
    }
    free(line);
    fclose(f);
    unlink(path);
    return lines;
}

static json_t *parse(json_t *lines, size_t i)
{
    const char *text = json_string_value(json_array_get(lines, i));
    json_error_t e;
    json_t *o = json_loads(text, 0, &e);
    cr_assert(json_is_object(o), "line %zu does not parse (%s): %s", i, e.text, text);
    return o;
}

Test(log, json_lines_parse_whatever_the_message_holds)
{
    tfs_log_set_json(true);
    capture();
    tfs_log_info("core", "quote \" backslash \\ newline \n tab \t bell \a del \x7f end");
    tfs_log_warn("plugin:crm", "not UTF-8: \xff\xfe and a cut sequence \xc3 and \xe2\x82");
    tfs_log_error("core", "UTF-8 stays: \xc3\xa9 \xe2\x82\xac \xf0\x9f\x8f\xa0");
    char big[7000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    big[100] = '"'; /* escaped near where nothing is cut */
    memcpy(big + 5997, "\xc3\xa9\xc3\xa9", 4); /* near the cut: never half a character */
    tfs_log_info("core", "%s", big);
    tfs_log_context_set(42, "pacs-to-cama", "property");
    tfs_log_context_key("1255|2026 \"odd\"");
    tfs_log_field f[] = {{"path", "/x\x01y", 0}, {"status", NULL, 404}, {"ms", NULL, 1.25}};
    tfs_log_fields(TFS_LOG_INFO, "access", f, 3, "a request");
    tfs_log_context_clear();
    tfs_log_info("core", "after the run");
    tfs_log_set_json(false);
    json_t *lines = captured_lines();
    cr_assert_eq(json_array_size(lines), 6, "one line per call");
    for (size_t i = 0; i < json_array_size(lines); i++) {
        json_t *o = parse(lines, i);
        cr_assert(json_is_string(json_object_get(o, "time")));
        cr_assert(json_is_string(json_object_get(o, "level")));
        cr_assert(json_is_string(json_object_get(o, "module")));
        cr_assert(json_is_string(json_object_get(o, "message")));
        json_decref(o);
    }
    json_t *o = parse(lines, 0);
    cr_assert_str_eq(json_string_value(json_object_get(o, "message")),
                     "quote \" backslash \\ newline \n tab \t bell \a del \x7f end");
    json_decref(o);
    o = parse(lines, 1);
    cr_assert_str_eq(json_string_value(json_object_get(o, "level")), "warn");
    cr_assert_str_eq(json_string_value(json_object_get(o, "module")), "plugin:crm");
    cr_assert(strstr(json_string_value(json_object_get(o, "message")), "\xef\xbf\xbd"),
              "bytes that are not UTF-8 become U+FFFD");
    json_decref(o);
    o = parse(lines, 2);
    cr_assert_str_eq(json_string_value(json_object_get(o, "message")),
                     "UTF-8 stays: \xc3\xa9 \xe2\x82\xac \xf0\x9f\x8f\xa0");
    json_decref(o);
    o = parse(lines, 3);
    const char *m = json_string_value(json_object_get(o, "message"));
    cr_assert(strlen(m) > 4000 && strlen(m) < sizeof big, "cut, not dropped: %zu", strlen(m));
    cr_assert_eq(strcmp(m + strlen(m) - 3, "..."), 0, "a cut message says so");
    json_decref(o);
    o = parse(lines, 4);
    cr_assert_eq(json_integer_value(json_object_get(o, "run")), 42);
    cr_assert_str_eq(json_string_value(json_object_get(o, "pair")), "pacs-to-cama");
    cr_assert_str_eq(json_string_value(json_object_get(o, "entity")), "property");
    cr_assert_str_eq(json_string_value(json_object_get(o, "key")), "1255|2026 \"odd\"");
    cr_assert_str_eq(json_string_value(json_object_get(o, "path")), "/x\x01y");
    cr_assert_eq(json_integer_value(json_object_get(o, "status")), 404);
    cr_assert_float_eq(json_number_value(json_object_get(o, "ms")), 1.25, 1e-9);
    json_decref(o);
    o = parse(lines, 5);
    cr_assert_null(json_object_get(o, "run"), "the context was cleared");
    cr_assert_null(json_object_get(o, "key"));
    json_decref(o);
    json_decref(lines);
}

Test(log, text_lines_are_as_before)
{
    tfs_log_set_json(false);
    capture();
    tfs_log_context_set(7, "p", "e");
    tfs_log_field f[] = {{"status", NULL, 200}};
    tfs_log_fields(TFS_LOG_WARN, "access", f, 1, "127.0.0.1 GET /health 200");
    tfs_log_context_clear();
    json_t *lines = captured_lines();
    cr_assert_eq(json_array_size(lines), 1);
    const char *l = json_string_value(json_array_get(lines, 0));
    /* "2026-12-01T22:07:46.658Z warn  [access] 127.0.0.1 GET /health 200" */
    cr_assert_eq(strlen(l), 24 + 1 + 5 + 1 + strlen("[access] 127.0.0.1 GET /health 200"), "%s",
                 l);
    cr_assert_eq(l[23], 'Z', "%s", l);
    cr_assert_str_eq(l + 25, "warn  [access] 127.0.0.1 GET /health 200");
    json_decref(lines);
}
