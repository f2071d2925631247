/* core/ui_files.c — looking a request's file name up in the console's embedded table
 * (ui_files.h says why a table and never the file system). A handful of files: a linear
 * scan is as fast as anything else and has no edge to get wrong.
 */
#include "ui_files.h"

#include <string.h>

const tfs_ui_file *tfs_ui_files_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < tfs_ui_files_count; i++)
        if (strcmp(tfs_ui_files_table[i].name, name) == 0)
            return &tfs_ui_files_table[i];
    return NULL;
}
