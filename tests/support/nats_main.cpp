// Test main for the NATS tests: without nats-server on this machine they are skipped
// (exit code 77, which ctest reports as skipped and CI counts as a failure).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "support/nats_server.hpp"

int main(int argc, char** argv) {
  if (!ingest::test::nats_server::available()) {
    std::fprintf(stderr, "nats-server is not installed: skipping the NATS tests\n");
    return 77;
  }
  return doctest::Context(argc, argv).run();
}
