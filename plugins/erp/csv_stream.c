/* plugins/erp/csv_stream.c — see csv_stream.h. libcsv is fed a segment at a time, each
 * ending at a CR or LF (or the end of a line), so a record completes only at the end of a
 * segment: after it, the parser stands between records and s->off is where the next one
 * starts. Blocks of CSV_STREAM_BLOCK bytes are read; inside quotes a CR or LF is data and the record simply goes on. */
#include "csv_stream.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* libcsv's state between records (ROW_NOT_BEGUN in libcsv.c; stable across 3.x). */
#define CSV_BETWEEN_RECORDS 0

static void rec_free(csv_rec *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->f[i]);
    free(r->f);
    *r = (csv_rec){0};
}

static void on_field(void *data, size_t len, void *ctx)
{
    csv_stream *s = ctx;
    if (s->oom)
        return;
    if (s->cur.n == s->cur.cap) {
        size_t cap = s->cur.cap ? s->cur.cap * 2 : 16;
        char **f = realloc(s->cur.f, cap * sizeof *f);
        if (!f) {
            s->oom = true;
            return;
        }
        s->cur.f = f;
        s->cur.cap = cap;
    }
    char *v = malloc(len + 1);
    if (!v) {
        s->oom = true;
        return;
    }
    memcpy(v, data ? data : "", len);
    v[len] = '\0';
    s->cur.f[s->cur.n++] = v;
}

static void on_row(int c, void *ctx)
{
    csv_stream *s = ctx;
    (void)c;
    rec_free(&s->done);
    s->done = s->cur;
    s->cur = (csv_rec){0};
    s->have = true;
}

static int init(csv_stream *s)
{
    if (csv_init(&s->p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int csv_stream_open(csv_stream *s, const char *path)
{
    *s = (csv_stream){.line_no = 1, .start_line = 1};
    s->f = fopen(path, "rb");
    if (!s->f)
        return -1;
    if (init(s) != 0) {
        fclose(s->f);
        s->f = NULL;
        return -1;
    }
    unsigned char bom[3];
    if (fread(bom, 1, 3, s->f) == 3 && memcmp(bom, "\xEF\xBB\xBF", 3) == 0)
        s->off = 3;
    if (fseeko(s->f, s->off, SEEK_SET) != 0) {
        csv_stream_close(s);
        return -1;
    }
    s->rec_off = s->off;
    return 0;
}

int csv_stream_seek(csv_stream *s, long long off, long line_no)
{
    if (fseeko(s->f, (off_t)off, SEEK_SET) != 0)
        return -1;
    /* The parser stood between records at off; start it afresh there. */
    csv_free(&s->p);
    rec_free(&s->cur);
    if (init(s) != 0)
        return -1;
    s->seg = s->len = 0;
    s->off = s->rec_off = off;
    s->line_no = s->start_line = line_no;
    s->at_eof = false;
    return 0;
}

void csv_stream_close(csv_stream *s)
{
    if (s->f)
        fclose(s->f);
    csv_free(&s->p);
    rec_free(&s->cur);
    rec_free(&s->done);
    free(s->line);
    *s = (csv_stream){0};
}

int csv_stream_next(csv_stream *s, const csv_rec **rec, long *line, const char **why)
{
    rec_free(&s->done);
    s->have = false;
    for (;;) {
        if (s->at_eof)
            return 0;
        if (s->seg == s->len) {
            if (!s->line && !(s->line = malloc(CSV_STREAM_BLOCK)))
                return errno = ENOMEM, -1;
            size_t got = fread(s->line, 1, CSV_STREAM_BLOCK, s->f);
            if (got == 0) {
                if (ferror(s->f))
                    return errno = errno ? errno : EIO, -1;
                /* The end: a last record without a line end, or an open quote. */
                s->at_eof = true;
                if (csv_fini(&s->p, on_field, on_row, s) != 0) {
                    *line = s->start_line;
                    *why = "unterminated quote: the file cannot be read from this line on";
                    return -2;
                }
                if (s->oom)
                    return -1;
                if (s->have) {
                    *rec = &s->done;
                    *line = s->start_line;
                    return 1;
                }
                return 0;
            }
            s->seg = 0;
            s->len = got;
        }
        if (s->p.pstate == CSV_BETWEEN_RECORDS) {
            s->start_line = s->line_no;
            s->rec_off = s->off;
        }
        size_t end = s->seg;
        while (end < s->len && s->line[end] != '\r' && s->line[end] != '\n')
            end++;
        if (end < s->len)
            end++; /* the CR or LF ends the segment */
        size_t n = end - s->seg;
        size_t fed = csv_parse(&s->p, s->line + s->seg, n, on_field, on_row, s);
        if (fed != n) {
            if (csv_error(&s->p) == CSV_ENOMEM)
                return errno = ENOMEM, -1;
            s->at_eof = true;
            *line = s->start_line;
            *why = "malformed quoting (a quote inside an unquoted field, or text after a "
                   "closing quote): the file cannot be read from this line on";
            return -2;
        }
        if (s->oom)
            return errno = ENOMEM, -1;
        s->seg = end;
        s->off += (long long)n;
        if (s->line[end - 1] == '\n')
            s->line_no++;
        if (s->have) {
            *rec = &s->done;
            *line = s->start_line;
            return 1;
        }
        if (s->off - s->rec_off > CSV_STREAM_MAX_RECORD) {
            s->at_eof = true;
            *line = s->start_line;
            *why = "a record of over 1 MiB (an unterminated quote?): the file cannot be read "
                   "from this line on";
            return -2;
        }
    }
}
