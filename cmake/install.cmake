# cmake/install.cmake — what `cmake --install` puts where, in the places Debian's packages
# use (GNUInstallDirs; the .deb of cmake/package.cmake installs the same with prefix /usr):
#
#   sbin/tfsyncd                           the daemon (a system daemon, as sshd)
#   bin/tfsync                             the command-line client
#   lib/tfsync/plugins/<system>.so         the shipped adapters (never the SDK's template)
#   include/tfsync/tfsync_plugin.h         the SDK header
#   share/pkgconfig/tfsync-sdk.pc          its pkg-config file (header only: share, not lib)
#   share/tfsync/sdk/                      the SDK's guide, changelog and template/ source
#   share/tfsync/transforms/               the shipped mappings, lookups and rules
#   share/doc/tfsync/                      README, docs/, examples/tfsyncd.json
#   share/man/man1, man8                   the man pages (cmake/man.cmake)
#   (nothing for the web console: its files are embedded in tfsyncd, cmake/ui.cmake)
#   share/bash-completion/completions/tfsync
#   lib/systemd/system/tfsyncd.service     the unit; lib/sysusers.d/tfsync.conf its user
#
# The unit and the example config name absolute paths (the daemon, the plugins, the
# transforms, the config under /etc): they are written at install time from the prefix the
# install is run with (cmake --install --prefix, or the package's /usr), by
# cmake/install_configure.cmake, not at configure time.
set(TFS_INSTALL_PLUGINDIR lib/tfsync/plugins CACHE STRING
    "where the adapters are installed, relative to the prefix")
set(TFS_INSTALL_DATADIR ${CMAKE_INSTALL_DATADIR}/tfsync)
set(TFS_INSTALL_DOCDIR ${CMAKE_INSTALL_DATADIR}/doc/tfsync)
# The daemon refuses a plugin_dir (or a folder above it) that its group or others can write
# (core/plugin_file.c): folders the install makes are 0755 whatever the umask.
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

if(TARGET tfsyncd)
  install(TARGETS tfsyncd RUNTIME DESTINATION ${CMAKE_INSTALL_SBINDIR})
endif()
if(TARGET tfsync)
  install(TARGETS tfsync RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
get_property(tfs_shipped GLOBAL PROPERTY TFS_SHIPPED_PLUGINS)
foreach(p ${tfs_shipped})
  install(TARGETS ${p} LIBRARY DESTINATION ${TFS_INSTALL_PLUGINDIR})
endforeach()

# The SDK: the header and a pkg-config file whose Version is the header's.
file(STRINGS ${CMAKE_SOURCE_DIR}/sdk/tfsync_plugin.h tfs_sdk_lines
     REGEX "^#define TFS_SDK_VERSION_M(AJ|IN)OR [0-9]+")
string(REGEX REPLACE ".*MAJOR ([0-9]+).*" "\\1" TFS_SDK_MAJOR "${tfs_sdk_lines}")
string(REGEX REPLACE ".*MINOR ([0-9]+).*" "\\1" TFS_SDK_MINOR "${tfs_sdk_lines}")
if(NOT TFS_SDK_MAJOR MATCHES "^[0-9]+$" OR NOT TFS_SDK_MINOR MATCHES "^[0-9]+$")
  message(FATAL_ERROR "could not read TFS_SDK_VERSION_MAJOR and _MINOR from sdk/tfsync_plugin.h")
endif()
set(TFS_SDK_VERSION ${TFS_SDK_MAJOR}.${TFS_SDK_MINOR})
configure_file(${CMAKE_SOURCE_DIR}/packaging/tfsync-sdk.pc.in
               ${CMAKE_BINARY_DIR}/packaging/tfsync-sdk.pc @ONLY)
install(FILES ${CMAKE_SOURCE_DIR}/sdk/tfsync_plugin.h
        DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tfsync)
install(FILES ${CMAKE_BINARY_DIR}/packaging/tfsync-sdk.pc
        DESTINATION ${CMAKE_INSTALL_DATADIR}/pkgconfig)
install(FILES ${CMAKE_SOURCE_DIR}/sdk/README.md ${CMAKE_SOURCE_DIR}/sdk/CHANGELOG.md
        DESTINATION ${TFS_INSTALL_DATADIR}/sdk)
install(FILES ${CMAKE_SOURCE_DIR}/sdk/template/template.c
              ${CMAKE_SOURCE_DIR}/sdk/template/CMakeLists.txt
              ${CMAKE_SOURCE_DIR}/sdk/template/README.md
        DESTINATION ${TFS_INSTALL_DATADIR}/sdk/template)

install(DIRECTORY ${CMAKE_SOURCE_DIR}/transforms/ DESTINATION ${TFS_INSTALL_DATADIR}/transforms)

install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${TFS_INSTALL_DOCDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${TFS_INSTALL_DOCDIR}/docs
        PATTERN man EXCLUDE)

# Written by the CLI's own change; installed once it is there.
if(EXISTS ${CMAKE_SOURCE_DIR}/cli/completion/tfsync.bash)
  install(FILES ${CMAKE_SOURCE_DIR}/cli/completion/tfsync.bash
          DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME tfsync)
endif()

install(FILES ${CMAKE_SOURCE_DIR}/packaging/sysusers.conf
        DESTINATION lib/sysusers.d RENAME tfsync.conf)

# At install time: the unit and the example config from the install's own prefix.
install(CODE "
  set(TFS_INSTALL_SRC \"${CMAKE_SOURCE_DIR}/packaging\")
  # One folder per destination: installs to two staging folders may run at once.
  string(MD5 tfs_dest \"\$ENV{DESTDIR}\${CMAKE_INSTALL_PREFIX}\")
  set(TFS_INSTALL_GEN \"${CMAKE_BINARY_DIR}/packaging/installed/\${tfs_dest}\")
  set(TFS_INSTALL_SBINDIR \"${CMAKE_INSTALL_SBINDIR}\")
  set(TFS_INSTALL_PLUGINDIR \"${TFS_INSTALL_PLUGINDIR}\")
  set(TFS_INSTALL_DATADIR \"${TFS_INSTALL_DATADIR}\")
  set(TFS_INSTALL_DOCDIR \"${TFS_INSTALL_DOCDIR}\")
  include(\"${CMAKE_SOURCE_DIR}/cmake/install_configure.cmake\")
")
