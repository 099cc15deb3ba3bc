#pragma once
// Shared pieces of the benchmark programs.

#include <unistd.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <random>
#include <string>
#include <thread>

namespace ingest::bench {

/// An io_context run by one background thread.
struct io_runner {
  boost::asio::io_context io;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work{io.get_executor()};
  std::thread thread{[this] { io.run(); }};
  ~io_runner() {
    work.reset();
    thread.join();
  }
};

/// A random UUIDv4 text, as browsers generate idempotency keys.
inline std::string uuid_v4(std::mt19937_64& rng) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string s(36, '-');
  for (std::size_t i = 0; i < 36; ++i)
    if (i != 8 && i != 13 && i != 18 && i != 23) s[i] = hex[rng() & 15];
  s[14] = '4';
  return s;
}

/// A fresh scratch directory (on the same disk as /tmp), removed on destruction.
struct scratch_dir {
  std::filesystem::path path = std::filesystem::temp_directory_path() /
                               ("ingest-bench-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++));
  scratch_dir() { std::filesystem::create_directories(path); }
  ~scratch_dir() { std::filesystem::remove_all(path); }
  std::string file(const char* name) const { return (path / name).string(); }
  static int& counter() {
    static int n = 0;
    return n;
  }
};

}  // namespace ingest::bench
