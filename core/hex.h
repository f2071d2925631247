/* core/hex.h — hexadecimal digits: the one decoder of the URL's %XX escapes, the API
 * keys' configured SHA-256 hashes and the audit chain's stored hashes (pure code). */
#ifndef TFS_HEX_H
#define TFS_HEX_H

/* The value of one hex digit (0-9, a-f, A-F), or -1 for any other character. */
int tfs_hex_digit(char c);

#endif
