/* core/version.h — what `tfsyncd --version` prints: the daemon's version, the SDK version
 * it hosts, and the versions of the libraries it runs with (asked of each library at run
 * time where the library can say, so a library upgraded under the daemon shows). */
#ifndef TFS_VERSION_H
#define TFS_VERSION_H

#include <stdio.h>

/* The project's version ("0.1.0"), as CMake's project() gives it. Static; never NULL. */
const char *tfs_version_string(void);

/* Writes the version lines to f:
 *   tfsyncd 0.1.0
 *   sdk 1.3
 *   libmicrohttpd 0.9.75
 *   jansson 2.14
 *   libpq 15.10
 *   lua 5.4.4
 *   gnutls 3.7.9
 * Returns 0, or TFS_EIO when f could not be written. */
int tfs_version_print(FILE *f);

#endif
