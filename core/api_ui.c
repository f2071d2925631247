/* core/api_ui.c — GET /ui and GET /ui/{file}: the web console's files, served without a
 * key (the console itself asks for one and sends it with every API call it makes, so the
 * roles hold there). The file is looked up by name in the embedded table (ui_files.h),
 * never opened by a path: "/ui/../x", "/ui/%2e%2e/", "/ui//x" and an encoded slash name
 * nothing in it, or match no route, and get 404. Every answer carries a strict
 * Content-Security-Policy (no inline script or style, nothing from another origin, no
 * framing), nosniff and no referrer; a file is revalidated by its ETag on each load, so a
 * new daemon's console is never served stale from a cache. */
#include "api_internal.h"

#include <string.h>

#include "ui_files.h"

#define UI_CSP                                                                              \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "             \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static void security_headers(tfs_http_response *resp, const tfs_ui_file *f)
{
    size_t n = 0;
    resp->headers[n++] = "Content-Security-Policy";
    resp->headers[n++] = UI_CSP;
    resp->headers[n++] = "X-Content-Type-Options";
    resp->headers[n++] = "nosniff";
    resp->headers[n++] = "Referrer-Policy";
    resp->headers[n++] = "no-referrer";
    resp->headers[n++] = "X-Frame-Options";
    resp->headers[n++] = "DENY";
    if (f) {
        resp->headers[n++] = "ETag";
        resp->headers[n++] = f->etag;
        resp->headers[n++] = "Cache-Control";
        resp->headers[n++] = "no-cache";
    }
    resp->headers[n] = NULL;
}

/* Whether an If-None-Match header names etag (a list, or "*"). */
static bool etag_matches(const char *inm, const char *etag)
{
    if (!inm)
        return false;
    size_t len = strlen(etag);
    for (const char *p = inm; *p;) {
        while (*p == ' ' || *p == ',')
            p++;
        if (p[0] == '*')
            return true;
        if (strncmp(p, "W/", 2) == 0)
            p += 2;
        if (strncmp(p, etag, len) == 0 && (p[len] == '\0' || p[len] == ',' || p[len] == ' '))
            return true;
        while (*p && *p != ',')
            p++;
    }
    return false;
}

void tfs_api_ui(const tfs_http_request *req, tfs_http_response *resp, void *ctx)
{
    (void)ctx;
    const char *path = req->path ? req->path : "";
    const char *name;
    if (req->n_params == 0) {
        /* "/ui" and "/ui/" reach here (one trailing slash is ignored by the routing): the
         * bare one is sent to the folder, so the page's relative URLs resolve under it. */
        if (strcmp(path, "/ui/") != 0) {
            security_headers(resp, NULL);
            tfs_http_problem(resp, 308, "moved", "moved", "the console is at /ui/");
            snprintf(resp->location, sizeof resp->location, "/ui/");
            return;
        }
        name = "index.html";
    } else {
        name = req->params[0];
        /* The path itself, not only its segment: "/ui/app.js/" is no file. */
        if (strncmp(path, "/ui/", 4) != 0 || strcmp(path + 4, name) != 0)
            name = NULL;
    }
    const tfs_ui_file *f = tfs_ui_files_find(name);
    if (!f) {
        security_headers(resp, NULL);
        tfs_http_problem(resp, 404, "not-found", "not found",
                         "the console has no file at this path; open /ui/");
        return;
    }
    security_headers(resp, f);
    resp->content_type = f->content_type;
    if (etag_matches(tfs_http_header(req, "If-None-Match"), f->etag)) {
        resp->status = 304;
        return;
    }
    resp->status = 200;
    resp->bytes = f->bytes;
    resp->bytes_len = f->len;
}
