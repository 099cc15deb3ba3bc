#pragma once
// The PostgreSQL 15 the PostgreSQL benchmarks start for themselves: initdb in a scratch
// directory, default settings (fsync and synchronous_commit on), a free loopback port,
// the same cores as the benchmark. One per program, started on first use.

#include <string>

#include "bench_support.hpp"
#include "support/postgres_server.hpp"

namespace ingest::bench {

struct postgres_bench_server {
  scratch_dir dir;
  test::postgres_server server{dir.path / "pg"};
  int names = 0;

  /// A name not used before in this program: `prefix` and a number.
  std::string fresh_name(const std::string& prefix) { return prefix + std::to_string(++names); }

  static postgres_bench_server& get() {
    static postgres_bench_server instance;
    return instance;
  }
};

}  // namespace ingest::bench
