/* tests/sdk/opaque_violation.c — compiled, not run: tfs_plugin and tfs_instance must stay
 * incomplete outside the plugin host, so that the core reaches a plugin only through
 * plugin_host.h. Built with -DVIOLATE_PLUGIN or -DVIOLATE_INSTANCE it dereferences one of
 * them and must fail to compile with "incomplete type"; built with neither it uses them the
 * allowed way and must compile (the control that the command itself works). The ctests are
 * in tests/sdk/CMakeLists.txt. */
#include "plugin_host.h"

const char *allowed_name(const tfs_plugin *p);
const char *allowed_name(const tfs_plugin *p)
{
    return tfs_plugin_get_info(p).name;
}

uint32_t allowed_caps(const tfs_instance *inst);
uint32_t allowed_caps(const tfs_instance *inst)
{
    return tfs_instance_capabilities(inst);
}

#ifdef VIOLATE_PLUGIN
const char *peek_plugin_desc(const tfs_plugin *p);
const char *peek_plugin_desc(const tfs_plugin *p)
{
    return p->desc.name;
}
#endif

#ifdef VIOLATE_INSTANCE
void *peek_instance_handle(const tfs_instance *inst);
void *peek_instance_handle(const tfs_instance *inst)
{
    return inst->handle;
}
#endif
