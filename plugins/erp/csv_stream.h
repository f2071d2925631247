/* plugins/erp/csv_stream.h — an RFC 4180 file read record by record in bounded memory, with
 * libcsv (a push parser) fed from blocks, one segment (up to a CR or LF) at a time, so that after every record the
 * reader knows the byte offset and physical line where the next one starts: a cursor that
 * resumes mid-file without reading what came before. Memory is one block, one record and
 * libcsv's field buffer; a record longer than CSV_STREAM_MAX_RECORD is refused (it is
 * almost always an unterminated quote swallowing the rest of the file). */
#ifndef ERP_CSV_STREAM_H
#define ERP_CSV_STREAM_H

#include <csv.h>
#include <stdbool.h>
#include <stdio.h>

#define CSV_STREAM_MAX_RECORD (1 << 20)
#define CSV_STREAM_BLOCK (64 * 1024)

typedef struct csv_rec {
    char **f; /* fields, NUL-terminated */
    size_t n, cap;
} csv_rec;

typedef struct csv_stream {
    FILE *f;
    struct csv_parser p;
    csv_rec cur, done; /* the record being parsed; the one the last step completed */
    bool have, oom, at_eof;
    char *line;        /* the block read last */
    size_t seg, len;   /* the unfed part of the block: line[seg..len) */
    long long off;     /* bytes of the file fed to the parser */
    long line_no;      /* physical line of the next byte fed, from 1 */
    long start_line;   /* line the record being parsed began on */
    long long rec_off; /* offset where the record being parsed began */
} csv_stream;

/* Opens path at its start (a UTF-8 BOM skipped). 0, or -1 with errno. */
int csv_stream_open(csv_stream *s, const char *path);
/* Moves to a record boundary found by an earlier read: byte offset off, physical line
 * line_no. 0, or -1 with errno. */
int csv_stream_seek(csv_stream *s, long long off, long line_no);
void csv_stream_close(csv_stream *s);

/* The next record: 1 with *rec (valid until the next call) and *line (where it began);
 * 0 at the end of the file; -1 out of memory or a read error (errno); -2 a record that
 * cannot be parsed, with *why and *line: nothing after it can be read. */
int csv_stream_next(csv_stream *s, const csv_rec **rec, long *line, const char **why);

#endif
