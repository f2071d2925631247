/* core/buf.h — a growable byte buffer, always NUL-terminated, for building SQL, COPY
 * text, canonical encodings and messages.
 *
 * Appends can be chained without checking each: the first failed allocation sets oom, and
 * every append after it fails too, until a reset. A user checks oom (or the last return)
 * once, when the text is complete, and never uses an incomplete one. Memory comes from
 * tfs_malloc (alloc.h), so tests can make it fail. */
#ifndef TFS_BUF_H
#define TFS_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "error.h"

typedef struct tfs_buf {
    char *data; /* owned; "" before the first append */
    size_t len, cap;
    bool oom;   /* an append failed: the contents are incomplete */
} tfs_buf;

#define TFS_BUF_INIT {NULL, 0, 0, false}

void tfs_buf_free(tfs_buf *b);
/* Empties the buffer, keeping its memory, and clears oom. */
void tfs_buf_reset(tfs_buf *b);
/* Appends; on allocation failure sets b->oom and leaves b as it was. Return 0, or -1 when
 * this or an earlier append since the last reset failed. */
int tfs_buf_append(tfs_buf *b, const void *data, size_t len);
/* tfs_buf_append and tfs_buf_putc without the call when the room is there, for the loops
 * that append a few bytes at a time for every field of every record (canonical hashes, the
 * sync map's last-written record). The same bytes and return; a full or failed buffer
 * takes the called path. */
static inline int tfs_buf_append_fast(tfs_buf *b, const void *data, size_t len)
{
    if (!b->oom && b->data && len < b->cap - b->len) {
        memcpy(b->data + b->len, data, len);
        b->len += len;
        b->data[b->len] = '\0';
        return 0;
    }
    return tfs_buf_append(b, data, len);
}
static inline int tfs_buf_putc_fast(tfs_buf *b, char c)
{
    if (!b->oom && b->data && b->len + 1 < b->cap) {
        b->data[b->len++] = c;
        b->data[b->len] = '\0';
        return 0;
    }
    return tfs_buf_append(b, &c, 1);
}
int tfs_buf_puts(tfs_buf *b, const char *s);
int tfs_buf_putc(tfs_buf *b, char c);
int tfs_buf_printf(tfs_buf *b, const char *fmt, ...) TFS_PRINTF(2, 3);
/* The contents as a C string (never NULL). */
const char *tfs_buf_str(const tfs_buf *b);

#endif
