/* tests/integration/version_test.c — `tfsyncd --version`, which a packager, an operator
 * filing a bug and the service's logs rely on: the project's version (CMake's), the SDK
 * version of the header it hosts, and a line per library it runs with.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "tfs_test.h"
#include "tfsync_plugin.h"

/* tfsyncd --version: the project's version, the SDK's, one line per library; exit 0. */
Test(version, names_the_daemon_sdk_and_libraries, .timeout = 30)
{
    char cmd[300];
    snprintf(cmd, sizeof cmd, "'%s/tfsyncd' --version 2>&1", TFS_BINARY_DIR);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[1024] = "";
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "--version exited %d:\n%s", st, out);
    char want[64];
    snprintf(want, sizeof want, "tfsyncd %s\nsdk %d.%d\n", TFS_TEST_VERSION,
             TFS_SDK_VERSION_MAJOR, TFS_SDK_VERSION_MINOR);
    cr_expect(strncmp(out, want, strlen(want)) == 0, "--version does not start with\n%s:\n%s",
              want, out);
    static const char *const libs[] = {"\nlibmicrohttpd 0.9.", "\njansson 2.", "\nlibpq ",
                                       "\nlua 5.4.", "\ngnutls 3."};
    for (size_t i = 0; i < sizeof libs / sizeof *libs; i++)
        cr_expect_not_null(strstr(out, libs[i]), "--version lacks %s:\n%s", libs[i] + 1, out);
}
