/* core/pipeline_replay.c — the dead-letter replay job of a pair; see pipeline_private.h. */
#include "pipeline_private.h"

int tfs_pipeline_replay(tfs_pipeline *p, const tfs_stage_ctx *proto, tfs_store_run *run,
                        tfs_error *err)
{
    (void)p;
    (void)proto;
    (void)run;
    return tfs_error_set(err, TFS_EPERMANENT, "the dead-letter replay job is not built yet");
}
