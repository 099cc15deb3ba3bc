include(CMakePackageConfigHelpers)

set(ingest_targets ingest_core)
if(TARGET ingest_sqlite)
  list(APPEND ingest_targets ingest_sqlite)
endif()

install(TARGETS ${ingest_targets} EXPORT ingestTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(DIRECTORY include/ingest DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  PATTERN "sqlite" EXCLUDE)
if(TARGET ingest_sqlite)
  install(DIRECTORY include/ingest/sqlite DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ingest)
endif()

set(ingest_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/ingest)
install(EXPORT ingestTargets NAMESPACE ingest:: DESTINATION ${ingest_cmake_dir})

configure_package_config_file(cmake/ingestConfig.cmake.in
  ${PROJECT_BINARY_DIR}/ingestConfig.cmake
  INSTALL_DESTINATION ${ingest_cmake_dir})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/ingestConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/ingestConfig.cmake
  ${PROJECT_BINARY_DIR}/ingestConfigVersion.cmake
  DESTINATION ${ingest_cmake_dir})
