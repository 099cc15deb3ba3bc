// Test main for the SQS tests: without Node and the fauxqs emulator (scripts/setup.sh
// installs both) they are skipped (exit code 77; CI counts a skip as a failure).
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>

#include "support/fauxqs.hpp"

int main(int argc, char** argv) {
  if (!ingest::test::fauxqs::available()) {
    std::fprintf(stderr, "node or the fauxqs emulator (tests/sqs) is not installed: skipping the SQS tests\n");
    return 77;
  }
  return doctest::Context(argc, argv).run();
}
