/* core/ui_files.h — the web console's files (ui/), embedded in the daemon when it is
 * built (cmake/ui_embed.cmake writes their bytes into a generated table), so the set the
 * daemon serves is fixed by construction: a request names an entry of the table or gets
 * nothing, and no path is ever built from a URL or opened on disk.
 */
#ifndef TFS_UI_FILES_H
#define TFS_UI_FILES_H

#include <stddef.h>

typedef struct tfs_ui_file {
    const char *name;         /* "app.js": a bare file name, no folder */
    const char *content_type; /* "text/javascript; charset=utf-8" */
    const unsigned char *bytes;
    size_t len;
    const char *etag; /* a quoted strong ETag: the SHA-256 of the bytes, taken at build time */
} tfs_ui_file;

/* The generated table (ui_files_data.c in the build folder). */
extern const tfs_ui_file tfs_ui_files_table[];
extern const size_t tfs_ui_files_count;

/* The file whose name is exactly name (bytes compared, case counted), lent for the life
 * of the process; NULL for any other name, NULL included. */
const tfs_ui_file *tfs_ui_files_find(const char *name);

#endif
