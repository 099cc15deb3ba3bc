// Test main for the PostgreSQL tests: without PostgreSQL's server binaries on this
// machine they are skipped (exit code 77, which ctest reports as skipped and CI counts
// as a failure).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "support/postgres_server.hpp"

int main(int argc, char** argv) {
  if (!ingest::test::postgres_server::available()) {
    std::fprintf(stderr, "PostgreSQL (initdb, postgres) is not installed: skipping the PostgreSQL tests\n");
    return 77;
  }
  return doctest::Context(argc, argv).run();
}
