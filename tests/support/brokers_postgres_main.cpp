// Test main for the tests that need nats-server, PostgreSQL and fauxqs: without one
// they are skipped (exit code 77, which ctest reports as skipped and CI counts as a
// failure).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "support/fauxqs.hpp"
#include "support/nats_server.hpp"
#include "support/postgres_server.hpp"

int main(int argc, char** argv) {
  if (!ingest::test::nats_server::available() || !ingest::test::postgres_server::available() ||
      !ingest::test::fauxqs::available()) {
    std::fprintf(stderr, "nats-server, PostgreSQL or the fauxqs emulator is not installed: skipping\n");
    return 77;
  }
  return doctest::Context(argc, argv).run();
}
