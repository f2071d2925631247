/* plugins/erp/sha256.h — SHA-256 (FIPS 180-4) of a buffer, for the outbox manifests: the
 * plugin may link only libc and libcsv, and this is the one digest it needs. */
#ifndef ERP_SHA256_H
#define ERP_SHA256_H

#include <stddef.h>

/* Writes the digest of buf as 64 lowercase hex digits and a NUL into hex. */
void tfs_sha256_hex(const void *buf, size_t len, char hex[65]);

#endif
