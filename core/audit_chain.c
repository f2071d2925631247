/* core/audit_chain.c — the audit entries' canonical text and its SHA-256; see
 * audit_chain.h. GnuTLS computes the hash, as it does the API keys' (auth.c). */
#include "audit_chain.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <gnutls/crypto.h>

#include "alloc.h"
#include "buf.h"
#include "error.h"
#include "hex.h"

struct tfs_audit_hasher {
    gnutls_hash_hd_t sha;
    tfs_buf text;
};

int tfs_audit_hasher_new(tfs_audit_hasher **out)
{
    *out = NULL;
    tfs_audit_hasher *h = tfs_calloc(1, sizeof *h);
    if (!h)
        return TFS_ENOMEM;
    if (gnutls_hash_init(&h->sha, GNUTLS_DIG_SHA256) < 0) {
        tfs_free(h);
        return TFS_EIO;
    }
    *out = h;
    return 0;
}

void tfs_audit_hasher_free(tfs_audit_hasher *h)
{
    if (!h)
        return;
    gnutls_hash_deinit(h->sha, NULL);
    tfs_buf_free(&h->text);
    tfs_free(h);
}

static void field(tfs_buf *b, const char *s, size_t len)
{
    if (!s) {
        tfs_buf_puts(b, "-\n");
        return;
    }
    tfs_buf_printf(b, "%zu:", len);
    tfs_buf_append(b, s, len);
    tfs_buf_putc(b, '\n');
}

static void field_str(tfs_buf *b, const char *s)
{
    field(b, s, s ? strlen(s) : 0);
}

static void field_int(tfs_buf *b, int64_t v)
{
    char n[24];
    int len = snprintf(n, sizeof n, "%" PRId64, v);
    field(b, n, (size_t)len);
}

int tfs_audit_hash(tfs_audit_hasher *h, const tfs_audit_entry *e,
                   const unsigned char prev[TFS_AUDIT_HASH_LEN],
                   unsigned char out[TFS_AUDIT_HASH_LEN])
{
    tfs_buf *b = &h->text;
    tfs_buf_reset(b);
    tfs_buf_puts(b, "tfsync audit v1\n");
    tfs_buf_append(b, prev, TFS_AUDIT_HASH_LEN);
    field_int(b, e->seq);
    field_str(b, e->pair);
    field_int(b, e->run_id);
    field_str(b, e->entity);
    field_str(b, e->source_key);
    field_str(b, e->op);
    field_str(b, e->actor);
    field_int(b, e->at_us);
    field_str(b, e->changes);
    field_str(b, e->detail);
    if (b->oom)
        return TFS_ENOMEM;
    /* gnutls_hash_output resets the context for the next entry. */
    if (gnutls_hash(h->sha, b->data, b->len) < 0)
        return TFS_EIO;
    gnutls_hash_output(h->sha, out);
    return 0;
}

void tfs_audit_hex(const unsigned char hash[TFS_AUDIT_HASH_LEN], char hex[65])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < TFS_AUDIT_HASH_LEN; i++) {
        hex[2 * i] = digits[hash[i] >> 4];
        hex[2 * i + 1] = digits[hash[i] & 15];
    }
    hex[64] = '\0';
}

int tfs_audit_unhex(const char *text, unsigned char hash[TFS_AUDIT_HASH_LEN])
{
    if (!text)
        return -1;
    if (text[0] == '\\' && text[1] == 'x')
        text += 2;
    if (strlen(text) != 2 * TFS_AUDIT_HASH_LEN)
        return -1;
    for (int i = 0; i < TFS_AUDIT_HASH_LEN; i++) {
        int hi = tfs_hex_digit(text[2 * i]), lo = tfs_hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        hash[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}
