/* core/buf.c — growable byte buffer; see buf.h. */
#include "buf.h"

#include <stdio.h>
#include <string.h>

#include "alloc.h"

void tfs_buf_free(tfs_buf *b)
{
    tfs_free(b->data);
    *b = (tfs_buf)TFS_BUF_INIT;
}

void tfs_buf_reset(tfs_buf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->data)
        b->data[0] = '\0';
}

static int reserve(tfs_buf *b, size_t extra)
{
    /* Once an append failed the contents have a hole: nothing more goes in, so what a
     * user finds is a prefix of what it wrote, and oom says it is incomplete. */
    if (b->oom)
        return -1;
    if (extra > (size_t)-1 / 2 - b->len) {
        b->oom = true;
        return -1;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    char *p = tfs_realloc(b->data, cap);
    if (!p) {
        b->oom = true;
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int tfs_buf_append(tfs_buf *b, const void *data, size_t len)
{
    if (reserve(b, len) < 0)
        return -1;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

int tfs_buf_puts(tfs_buf *b, const char *s)
{
    return tfs_buf_append(b, s, strlen(s));
}

int tfs_buf_putc(tfs_buf *b, char c)
{
    return tfs_buf_append(b, &c, 1);
}

int tfs_buf_printf(tfs_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n < sizeof small)
        return tfs_buf_append(b, small, (size_t)n);
    if (reserve(b, (size_t)n) < 0)
        return -1;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

const char *tfs_buf_str(const tfs_buf *b)
{
    return b->data ? b->data : "";
}
