#pragma once
/// @file
/// The library's version (semantic versioning). The one place it is written; CMake
/// reads it from here.

#define INGEST_VERSION_MAJOR 0
#define INGEST_VERSION_MINOR 1
#define INGEST_VERSION_PATCH 0

namespace ingest {

struct version_info {
  int major, minor, patch;
};

/// The version these headers belong to.
inline constexpr version_info version{INGEST_VERSION_MAJOR, INGEST_VERSION_MINOR, INGEST_VERSION_PATCH};

}  // namespace ingest
