# Finds nats.c and defines cnats::nats.
#
# Used in module mode: Debian 12's libnats-dev ships a cnats-config.cmake that
# references libnats_static.a, which the package does not contain, so config mode
# fails there.
find_path(cnats_INCLUDE_DIR nats/nats.h)
find_library(cnats_LIBRARY NAMES nats)
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(cnats REQUIRED_VARS cnats_LIBRARY cnats_INCLUDE_DIR)
if(cnats_FOUND AND NOT TARGET cnats::nats)
  add_library(cnats::nats UNKNOWN IMPORTED)
  set_target_properties(cnats::nats PROPERTIES
    IMPORTED_LOCATION "${cnats_LIBRARY}"
    INTERFACE_INCLUDE_DIRECTORIES "${cnats_INCLUDE_DIR}")
endif()
mark_as_advanced(cnats_INCLUDE_DIR cnats_LIBRARY)
