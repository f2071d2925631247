/* core/http_message.h — the HTTP server's own use of http_message.c: sending an answer
 * and logging a request. For http.c only; handlers use http.h.
 */
#ifndef TFS_HTTP_MESSAGE_H
#define TFS_HTTP_MESSAGE_H

#include <stdbool.h>
#include <stdint.h>

#include <microhttpd.h>

#include "http.h"

#define HTTP_COMPONENT "http"
#define HTTP_ACCESS_COMPONENT "access"
#define HTTP_PROBLEM_BASE "https://terrafusion.dev/problems/"
#define HTTP_CT_JSON "application/json"
#define HTTP_CT_PROBLEM "application/problem+json"

/* Queues resp (consuming its body) on conn; *status_out gets the status really sent.
 * allow is the Allow header of a 405, challenge adds WWW-Authenticate to a 401. */
enum MHD_Result tfs_http_send(struct MHD_Connection *conn, const char *method, const char *path,
                              tfs_http_response *resp, const char *allow, bool challenge,
                              int *status_out);
/* The access log line of an answered request: client address, method, path, status, time
 * since start_us and the key's name (never the key); at info for 4xx and 5xx (and for all
 * when all), else at debug. */
void tfs_http_log_request(const char *client, const char *method, const char *path, int status,
                          uint64_t start_us, const char *key_name, bool all);
/* Whether s[0..len) is well-formed UTF-8 (no overlong forms, surrogates or values past
 * U+10FFFF). */
bool tfs_http_utf8_valid(const char *s, size_t len);
/* Microseconds of the monotonic clock. */
uint64_t tfs_http_now_us(void);
/* Copies s into dst for a log line, replacing control bytes so a path cannot forge lines. */
const char *tfs_http_log_safe(char *dst, size_t cap, const char *s);

#endif
