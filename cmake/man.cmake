# cmake/man.cmake — the man pages, built from their scdoc sources (docs/man/<name>.<section>.scd)
# into build/man/<name>.<section>, and gzipped beside them for the install (Debian keeps man
# pages compressed). Every docs/man/*.scd is built, so a page added there needs no edit here.
#
# scdoc is a build dependency (scripts/deps.sh installs it): without it the configure stops
# and says how to go on, rather than installing and packaging without man pages.
option(TFS_MAN "Build the man pages from docs/man/*.scd (needs scdoc)" ON)
set(TFS_MAN_DIR ${CMAKE_BINARY_DIR}/man)
set(TFS_MAN_PAGES "")
if(TFS_MAN)
  find_program(TFS_SCDOC scdoc)
  if(NOT TFS_SCDOC)
    message(FATAL_ERROR "scdoc not found: it builds the man pages from docs/man/*.scd. "
                        "Install it (apt-get install scdoc, or scripts/deps.sh as root), "
                        "or configure with -DTFS_MAN=OFF to build without man pages")
  endif()
  find_program(TFS_GZIP gzip REQUIRED)
  file(GLOB TFS_MAN_SOURCES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/man/*.scd)
  foreach(src ${TFS_MAN_SOURCES})
    get_filename_component(page ${src} NAME)
    string(REGEX REPLACE "\\.scd$" "" page ${page})       # tfsyncd.8
    string(REGEX MATCH "[0-9]$" section ${page})
    if(NOT section)
      message(FATAL_ERROR "${src}: a man page source is named <name>.<section>.scd")
    endif()
    # scdoc reads stdin and writes stdout; -n: no name or time stamp in the gzip header, so
    # the package is reproducible.
    add_custom_command(
      OUTPUT ${TFS_MAN_DIR}/${page} ${TFS_MAN_DIR}/${page}.gz
      COMMAND ${CMAKE_COMMAND} -E make_directory ${TFS_MAN_DIR}
      COMMAND sh -c "\"$0\" < \"$1\" > \"$2.tmp\" && mv \"$2.tmp\" \"$2\" && \"$3\" -9nc \"$2\" > \"$2.gz\""
              ${TFS_SCDOC} ${src} ${TFS_MAN_DIR}/${page} ${TFS_GZIP}
      DEPENDS ${src}
      COMMENT "Building man page ${page}"
      VERBATIM)
    list(APPEND TFS_MAN_PAGES ${page})
    list(APPEND TFS_MAN_OUTPUTS ${TFS_MAN_DIR}/${page}.gz)
    install(FILES ${TFS_MAN_DIR}/${page}.gz DESTINATION ${CMAKE_INSTALL_MANDIR}/man${section})
  endforeach()
  add_custom_target(man ALL DEPENDS ${TFS_MAN_OUTPUTS})
endif()
