#pragma once
/// @file
/// The library's version (semantic versioning). The one place it is written; CMake
/// reads it from here.

/// Major version: incompatible API changes.
#define INGEST_VERSION_MAJOR 0
/// Minor version: additions that keep the API compatible.
#define INGEST_VERSION_MINOR 1
/// Patch version: fixes only.
#define INGEST_VERSION_PATCH 0

namespace ingest {

/// A semantic version.
struct version_info {
  int major;  ///< incompatible API changes
  int minor;  ///< compatible additions
  int patch;  ///< fixes
};

/// The version these headers belong to.
///
/// @code
/// static_assert(ingest::version.major == 0, "built against ingest 0.x");
/// @endcode
inline constexpr version_info version{INGEST_VERSION_MAJOR, INGEST_VERSION_MINOR, INGEST_VERSION_PATCH};

}  // namespace ingest
