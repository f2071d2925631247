/* tests/unit/ui_files_test.c — the web console's embedded table (core/ui_files.c, generated
 * by cmake/ui_embed.cmake): every file the build lists is in it, bare-named, unique, with
 * its bytes, a content type by its kind and a quoted SHA-256 ETag; the lookup takes exact
 * names only. */
#include <criterion/criterion.h>
#include <string.h>

#include "ui_files.h"

Test(ui_files, the_table_holds_the_console_with_types_and_etags)
{
    static const char *const want[] = {"index.html", "app.css", "app.js", "api.js", "view.js",
                                       "runs.js", "conflicts.js", "dead_letters.js", "audit.js"};
    cr_assert_eq(tfs_ui_files_count, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const tfs_ui_file *f = tfs_ui_files_find(want[i]);
        cr_assert_not_null(f, "%s is not embedded", want[i]);
        cr_expect_gt(f->len, 100u, "%s: %zu bytes", want[i], f->len);
        cr_expect_eq(f->bytes[f->len], 0, "%s: the bytes end with a NUL past len", want[i]);
        cr_expect_eq(strlen(f->etag), 34u, "%s: ETag %s", want[i], f->etag);
        cr_expect(f->etag[0] == '"' && f->etag[33] == '"');
        const char *dot = strrchr(want[i], '.');
        const char *type = strcmp(dot, ".html") == 0  ? "text/html; charset=utf-8"
                           : strcmp(dot, ".css") == 0 ? "text/css; charset=utf-8"
                                                      : "text/javascript; charset=utf-8";
        cr_expect_str_eq(f->content_type, type, "%s", want[i]);
        cr_expect_null(strchr(f->name, '/'));
        for (size_t k = 0; k < tfs_ui_files_count; k++)
            if (&tfs_ui_files_table[k] != f)
                cr_expect_str_neq(tfs_ui_files_table[k].name, f->name, "%s twice", f->name);
    }
}

Test(ui_files, only_exact_names_are_found)
{
    static const char *const miss[] = {"", "INDEX.HTML", "index.html ", " index.html",
                                       "./index.html", "../index.html", "/index.html",
                                       "index.htm", "index.html/", "app", "ui/app.js"};
    cr_expect_null(tfs_ui_files_find(NULL));
    for (size_t i = 0; i < sizeof miss / sizeof miss[0]; i++)
        cr_expect_null(tfs_ui_files_find(miss[i]), "\"%s\" found", miss[i]);
}
