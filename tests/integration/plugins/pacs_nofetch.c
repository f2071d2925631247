/* tests/integration/plugins/pacs_nofetch.c — the PACS adapter under the name
 * "pacs_nofetch" and without cb_fetch: a source that cannot read records by key, as a
 * file source cannot, so that a replay of its dead letters must use the stored records.
 * The dead-letter test copies it beside the shipped plugins; it is never installed.
 */
#define tfs_sdk_entry pacs_entry
#include "../../../plugins/pacs/pacs.c"
#undef tfs_sdk_entry

static tfs_sdk_plugin nofetch_descriptor;

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h);

TFS_SDK_EXPORT const tfs_sdk_plugin *tfs_sdk_entry(const tfs_sdk_host *h)
{
    const tfs_sdk_plugin *p = pacs_entry(h);
    if (!p)
        return NULL;
    nofetch_descriptor = *p;
    nofetch_descriptor.name = "pacs_nofetch";
    nofetch_descriptor.description = "the pacs adapter without fetch by key (a test plugin)";
    nofetch_descriptor.cb_fetch = NULL;
    /* A source only: a target must fetch (or say TFS_SDK_CAP_NO_FETCH). */
    nofetch_descriptor.capabilities &= ~(unsigned)TFS_SDK_CAP_TARGET;
    nofetch_descriptor.cb_write = NULL;
    return &nofetch_descriptor;
}
