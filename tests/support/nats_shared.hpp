#pragma once
// What the NATS queue test files of one binary share: one nats-server for all of them,
// and stream names no other test (or earlier run) uses.

#include <unistd.h>

#include <atomic>
#include <string>

#include "support/nats_server.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

// One nats-server for the whole binary; every backend instance gets its own streams.
inline nats_server& shared_server() {
  static temp_dir dir;
  static nats_server server(dir.path() / "shared");
  return server;
}

inline std::string unique_name(const char* prefix) {
  static std::atomic<int> n{0};
  return std::string(prefix) + std::to_string(::getpid()) + "_" + std::to_string(n++);
}

}  // namespace ingest::test
