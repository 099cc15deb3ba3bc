#pragma once
// Shared helpers for the tests: an io_context on its own thread, temporary
// directories, and blocking waits on async operations.

#include <doctest/doctest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <future>
#include <ostream>
#include <random>
#include <string>
#include <system_error>
#include <thread>

#include "ingest/durable_queue.hpp"
#include "ingest/error.hpp"

// Readable failure messages for error codes: "ingest:3 (idempotency key reused ...)".
template <>
struct doctest::StringMaker<std::error_code> {
  static doctest::String convert(const std::error_code& ec) {
    return (std::string(ec.category().name()) + ":" + std::to_string(ec.value()) + " (" + ec.message() + ")").c_str();
  }
};

namespace ingest::test {

using namespace std::chrono_literals;

/// An io_context run by `threads` background threads for the lifetime of the object.
class io_thread {
 public:
  explicit io_thread(int threads = 1) : work_(io_.get_executor()) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { io_.run(); });
  }
  ~io_thread() { join(); }
  /// Stops running handlers and joins the threads; the io_context stays alive, so that
  /// objects using it can still be destroyed.
  void join() {
    work_.reset();
    io_.stop();
    for (auto& t : threads_)
      if (t.joinable()) t.join();
  }
  boost::asio::any_io_executor executor() { return io_.get_executor(); }
  boost::asio::io_context& context() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

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

/// Polls `condition` every 5 ms until it holds or `limit` passes.
inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

/// Completion handler that stores (error_code, value) in a promise.
template <class T>
struct capture {
  std::shared_ptr<std::promise<std::pair<error_code, T>>> promise =
      std::make_shared<std::promise<std::pair<error_code, T>>>();
  std::future<std::pair<error_code, T>> future = promise->get_future();
  auto handler() {
    return [p = promise](error_code ec, T value) { p->set_value({ec, std::move(value)}); };
  }
  std::pair<error_code, T> get() { return future.get(); }
};

struct capture_ec {
  std::shared_ptr<std::promise<error_code>> promise = std::make_shared<std::promise<error_code>>();
  std::future<error_code> future = promise->get_future();
  auto handler() {
    return [p = promise](error_code ec) { p->set_value(ec); };
  }
  error_code get() { return future.get(); }
};

// Blocking shorthands over a queue, for test bodies.
inline std::pair<error_code, receipt> publish(durable_queue& q, envelope e) {
  capture<receipt> c;
  q.async_publish(std::move(e), c.handler());
  return c.get();
}

inline envelope message(std::string key, std::string payload = "{}") {
  envelope e;
  e.idempotency_key = std::move(key);
  e.subject = "test";
  e.payload = std::move(payload);
  return e;
}

inline std::pair<error_code, std::vector<delivery>> fetch(durable_queue& q, std::size_t max,
                                                          std::chrono::milliseconds wait = 0ms) {
  capture<std::vector<delivery>> c;
  q.async_fetch(max, wait, c.handler());
  return c.get();
}

inline error_code settle(durable_queue& q, std::vector<settlement> s) {
  capture_ec c;
  q.async_settle(std::move(s), c.handler());
  return c.get();
}

inline error_code ack(durable_queue& q, const std::vector<delivery>& ds) {
  std::vector<settlement> s;
  for (const auto& d : ds) s.push_back({d.token, settle_action::ack, {}, {}, {}});
  return settle(q, std::move(s));
}

inline queue_stats stats(durable_queue& q) {
  capture<queue_stats> c;
  q.async_stats(c.handler());
  return c.get().second;
}

inline std::vector<dead_letter> dead_letters(durable_queue& q, std::size_t limit = 1000) {
  capture<std::vector<dead_letter>> c;
  q.async_dead_letters("", limit, c.handler());
  return c.get().second;
}

}  // namespace ingest::test
