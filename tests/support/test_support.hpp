#pragma once
// Shared helpers for the tests: the public testing helpers (an io_context on its own
// threads, blocking waits on a queue's operations), temporary directories and
// certificates.

#include <doctest/doctest.h>

#include <boost/asio/use_future.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <system_error>

#include "ingest/testing/queue_helpers.hpp"

// Readable failure messages for error codes: "ingest:3 (idempotency key reused ...)".
template <>
struct doctest::StringMaker<std::error_code> {
  static doctest::String convert(const std::error_code& ec) {
    return (std::string(ec.category().name()) + ":" + std::to_string(ec.value()) + " (" + ec.message() + ")").c_str();
  }
};

namespace ingest::test {

using namespace std::chrono_literals;
using namespace ingest::testing;

/// A fresh directory under the system temp dir, removed on destruction.
class temp_dir {
 public:
  temp_dir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() / ("ingest-test-" + std::to_string(rd()) + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~temp_dir() {
    error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

/// A self-signed certificate for 127.0.0.1 (PEM files), made with the openssl command.
inline void make_certificate(const std::string& cert, const std::string& key) {
  const auto cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=127.0.0.1"
      " -addext subjectAltName=IP:127.0.0.1 -keyout " +
      key + " -out " + cert + " >/dev/null 2>&1";
  REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, "openssl could not make a certificate");
}

/// A certificate for 127.0.0.1 with its key (`cert` is also the CA to trust), and a
/// second one from another, unrelated CA, in a temporary directory.
struct test_certificates {
  temp_dir dir;
  std::string cert = dir.file("server.pem"), key = dir.file("server.key");
  std::string other = dir.file("other.pem"), other_key = dir.file("other.key");
  test_certificates() {
    make_certificate(cert, key);
    make_certificate(other, other_key);
  }
};

}  // namespace ingest::test
