/* core/version.c — tfsyncd --version. The daemon's version comes from the build
 * (TFS_VERSION, CMake's project version) and the SDK's from the header the core is built
 * with; the libraries' from the libraries themselves at run time, since Debian upgrades a
 * shared library under a built binary (Lua says only its major and minor at run time, so
 * its release is the header's). */
#include "version.h"

#include <gnutls/gnutls.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <lua.h>
#include <microhttpd.h>

#include "error.h"
#include "tfsync_plugin.h"

#ifndef TFS_VERSION
#error "TFS_VERSION is defined by the build (CMakeLists.txt)"
#endif

const char *tfs_version_string(void)
{
    return TFS_VERSION;
}

int tfs_version_print(FILE *f)
{
    /* PQlibVersion: major * 10000 + minor since PostgreSQL 10. */
    int pq = PQlibVersion();
    /* The release ("5.4.4") is the header's; the library answers 504 for any 5.4.x. */
    lua_Number lua_core = lua_version(NULL);
    int n = fprintf(f,
                    "tfsyncd %s\n"
                    "sdk %d.%d\n"
                    "libmicrohttpd %s\n"
                    "jansson %s\n"
                    "libpq %d.%d\n"
                    "lua %s (core %d.%d)\n"
                    "gnutls %s\n",
                    TFS_VERSION, TFS_SDK_VERSION_MAJOR, TFS_SDK_VERSION_MINOR,
                    MHD_get_version(), jansson_version_str(), pq / 10000, pq % 10000,
                    LUA_VERSION_MAJOR "." LUA_VERSION_MINOR "." LUA_VERSION_RELEASE,
                    (int)lua_core / 100, (int)lua_core % 100, gnutls_check_version(NULL));
    if (n < 0 || fflush(f) != 0)
        return TFS_EIO;
    return 0;
}
