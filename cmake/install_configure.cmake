# cmake/install_configure.cmake — run by `cmake --install` (install(CODE) of
# cmake/install.cmake): writes the systemd unit and the example config with the absolute
# paths of this install's prefix, and installs them. The config's folder follows
# GNUInstallDirs: /etc for the prefix /usr (the package), <prefix>/etc otherwise.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(TFS_SYSCONFDIR /etc)
else()
  set(TFS_SYSCONFDIR ${CMAKE_INSTALL_PREFIX}/etc)
endif()
set(TFS_FULL_SBINDIR ${CMAKE_INSTALL_PREFIX}/${TFS_INSTALL_SBINDIR})
set(TFS_FULL_PLUGINDIR ${CMAKE_INSTALL_PREFIX}/${TFS_INSTALL_PLUGINDIR})
set(TFS_FULL_DATADIR ${CMAKE_INSTALL_PREFIX}/${TFS_INSTALL_DATADIR})
set(TFS_FULL_DOCDIR ${CMAKE_INSTALL_PREFIX}/${TFS_INSTALL_DOCDIR})
set(TFS_CONFIG ${TFS_SYSCONFDIR}/tfsync/tfsyncd.json)
set(CMAKE_INSTALL_DEFAULT_DIRECTORY_PERMISSIONS
    OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)

configure_file(${TFS_INSTALL_SRC}/tfsyncd.service.in ${TFS_INSTALL_GEN}/tfsyncd.service @ONLY)
configure_file(${TFS_INSTALL_SRC}/tfsyncd.json.in ${TFS_INSTALL_GEN}/tfsyncd.json @ONLY)
file(INSTALL DESTINATION ${CMAKE_INSTALL_PREFIX}/lib/systemd/system TYPE FILE
     FILES ${TFS_INSTALL_GEN}/tfsyncd.service)
file(INSTALL DESTINATION ${TFS_FULL_DOCDIR}/examples TYPE FILE
     FILES ${TFS_INSTALL_GEN}/tfsyncd.json)
