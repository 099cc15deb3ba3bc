include(CMakePackageConfigHelpers)

set(ingest_targets ingest_core)
foreach(component sqlite nats http aws sqs postgres testing)
  if(TARGET ingest_${component})
    list(APPEND ingest_targets ingest_${component})
  endif()
endforeach()

install(TARGETS ${ingest_targets} EXPORT ingestTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

# Backend headers are installed only with their backend.
install(DIRECTORY include/ingest DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  PATTERN "sqlite" EXCLUDE PATTERN "nats" EXCLUDE PATTERN "http" EXCLUDE PATTERN "aws" EXCLUDE PATTERN "sqs" EXCLUDE PATTERN "postgres" EXCLUDE
  PATTERN "testing" EXCLUDE)
foreach(component sqlite nats http aws sqs postgres testing)
  if(TARGET ingest_${component})
    install(DIRECTORY include/ingest/${component} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ingest)
  endif()
endforeach()

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
  cmake/Findcnats.cmake
  DESTINATION ${ingest_cmake_dir})
