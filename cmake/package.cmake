# cmake/package.cmake — `cpack -G DEB` in the build folder builds tfsync_<version>_<arch>.deb
# from the install rules (cmake/install.cmake) with the prefix /usr.
#
# Depends: computed by dpkg-shlibdeps (Debian's own tool, part of dpkg-dev, which
# build-essential brings) from every ELF file in the package, the plugins included: the
# daemon's libmicrohttpd, jansson, libpq, Lua and GnuTLS, the CLI's and CRM adapter's
# libcurl, the ERP adapter's libcsv, each with the version the build saw. A hand-written list
# would drift from what is linked. The maintainer scripts (packaging/debian) create the
# tfsync system user; nothing is enabled or started by the package.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME tfsync)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "TerraFusion Sync")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
    "keeps a county assessment office's PACS, CAMA, GIS, ERP and CRM in agreement")
set(CPACK_PACKAGE_DESCRIPTION
    "tfsyncd reads records from a source system, maps each one with a Lua script, validates\n\
it against the target's schema, writes it, and records every step in a PostgreSQL state\n\
store. It is driven through an HTTP API (tfsync is its command-line client), and reaches\n\
each system through an adapter plugin built against the SDK header tfsync_plugin.h.")
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "TerraFusion Sync maintainers <maintainers@tfsync.invalid>")
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
# useradd (passwd) and getent (libc-bin) are essential or required in Debian: no Depends.
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "postgresql")
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
    ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/prerm
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
# The install runs with DESTDIR and the prefix /usr, so that what the install writes with
# absolute paths (the unit's ExecStart, the example config) names /usr, not a staging dir.
set(CPACK_SET_DESTDIR ON)
set(CPACK_INSTALL_PREFIX /usr)
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_STRIP_FILES ON)
include(CPack)
