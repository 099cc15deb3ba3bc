# Overlay port: vcpkg install ingest --overlay-ports=<repo>/ports
# Builds from the repository this port sits in (a release would use vcpkg_from_github).
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../.." ABSOLUTE)

vcpkg_check_features(OUT_FEATURE_OPTIONS feature_options
  FEATURES
    sqlite INGEST_WITH_SQLITE
    nats   INGEST_WITH_NATS
    http   INGEST_WITH_HTTP
    aws    INGEST_WITH_AWS
    sqs    INGEST_WITH_SQS
    postgres INGEST_WITH_POSTGRES
    testing INGEST_WITH_TESTING
)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    ${feature_options}
    -DINGEST_CNATS_CONFIG=ON
    -DINGEST_BUILD_TESTS=OFF
    -DINGEST_BUILD_EXAMPLES=OFF
    -DINGEST_BUILD_BENCHMARKS=OFF
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH lib/cmake/ingest)

file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug/include" "${CURRENT_PACKAGES_DIR}/debug/share")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
