# cmake/ui.cmake — the web console (ui/) embedded in tfsyncd: cmake/ui_embed.cmake turns
# the files listed here into a generated C table linked into the core, so the install
# copies nothing for it and the daemon serves exactly this list (core/ui_files.h). A file
# added to ui/ is served once it is named here.
set(TFS_UI_FILES index.html app.css app.js api.js view.js runs.js conflicts.js
                 dead_letters.js audit.js)
set(TFS_UI_PATHS "")
foreach(f IN LISTS TFS_UI_FILES)
  list(APPEND TFS_UI_PATHS ${CMAKE_SOURCE_DIR}/ui/${f})
endforeach()
string(REPLACE ";" "," TFS_UI_LIST "${TFS_UI_FILES}")
set(TFS_UI_GENERATED ${CMAKE_BINARY_DIR}/generated/ui_files_data.c)
add_custom_command(
  OUTPUT ${TFS_UI_GENERATED}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/generated
  COMMAND ${CMAKE_COMMAND} -DUI_DIR=${CMAKE_SOURCE_DIR}/ui -DUI_FILES=${TFS_UI_LIST}
          -DOUT=${TFS_UI_GENERATED} -P ${CMAKE_SOURCE_DIR}/cmake/ui_embed.cmake
  DEPENDS ${TFS_UI_PATHS} ${CMAKE_SOURCE_DIR}/cmake/ui_embed.cmake
  COMMENT "Embedding the web console (ui/)"
  VERBATIM)
target_sources(tfs_core PRIVATE ${TFS_UI_GENERATED})
