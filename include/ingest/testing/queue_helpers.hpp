#pragma once
/// @file
/// Blocking helpers for tests of `durable_queue` backends (doctest): an io_context on
/// its own threads, a message to publish, blocking waits on the asynchronous
/// operations, and the balance check of guarantee 4. Part of the `ingest::testing`
/// component (header-only, needs doctest); `queue_conformance.hpp` is written with
/// them, and a backend's own tests may use them.

#include <doctest/doctest.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "ingest/durable_queue.hpp"
#include "ingest/error.hpp"

namespace ingest::testing {

using namespace std::chrono_literals;

/// An io_context run by `threads` background threads for the lifetime of the object.
class io_thread {
 public:
  /// Starts `threads` threads running the io_context (kept busy by a work guard).
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
  /// The io_context's executor, for the objects under test.
  boost::asio::any_io_executor executor() { return io_.get_executor(); }
  /// The io_context itself (for objects that take one, such as `http::server`).
  boost::asio::io_context& context() { return io_; }

 private:
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_;
  std::vector<std::thread> threads_;
};

/// Polls `condition` every 5 ms until it holds or `limit` passes; returns its last value.
inline bool eventually(const std::function<bool()>& condition, std::chrono::milliseconds limit = 10s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

/// A completion handler that stores `(error_code, T)` for a blocking `get()`.
template <class T>
struct capture {
  /// Where the handler puts the result.
  std::shared_ptr<std::promise<std::pair<error_code, T>>> promise =
      std::make_shared<std::promise<std::pair<error_code, T>>>();
  /// Where `get()` reads it.
  std::future<std::pair<error_code, T>> future = promise->get_future();
  /// The handler to pass as a completion token (call one operation per `capture`).
  auto handler() {
    return [p = promise](error_code ec, T value) { p->set_value({ec, std::move(value)}); };
  }
  /// Waits for the operation and returns what it completed with.
  std::pair<error_code, T> get() { return future.get(); }
};

/// `capture` for operations that complete with an error code alone.
struct capture_ec {
  /// Where the handler puts the result.
  std::shared_ptr<std::promise<error_code>> promise = std::make_shared<std::promise<error_code>>();
  /// Where `get()` reads it.
  std::future<error_code> future = promise->get_future();
  /// The handler to pass as a completion token.
  auto handler() {
    return [p = promise](error_code ec) { p->set_value(ec); };
  }
  /// Waits for the operation and returns its error code.
  error_code get() { return future.get(); }
};

/// Publishes `e` and waits for the answer.
inline std::pair<error_code, receipt> publish(durable_queue& q, envelope e) {
  capture<receipt> c;
  q.async_publish(std::move(e), c.handler());
  return c.get();
}

/// A message with key `key`, subject "test" and `payload`.
inline envelope message(std::string key, std::string payload = "{}") {
  envelope e;
  e.idempotency_key = std::move(key);
  e.subject = "test";
  e.payload = std::move(payload);
  return e;
}

/// Fetches up to `max` deliveries, waiting up to `wait` for the first.
inline std::pair<error_code, std::vector<delivery>> fetch(durable_queue& q, std::size_t max,
                                                          std::chrono::milliseconds wait = 0ms) {
  capture<std::vector<delivery>> c;
  q.async_fetch(max, wait, c.handler());
  return c.get();
}

/// Settles deliveries and waits for the answer.
inline error_code settle(durable_queue& q, std::vector<settlement> s) {
  capture_ec c;
  q.async_settle(std::move(s), c.handler());
  return c.get();
}

/// Acknowledges every delivery in `ds`.
inline error_code ack(durable_queue& q, const std::vector<delivery>& ds) {
  std::vector<settlement> s;
  for (const auto& d : ds) s.push_back({d.token, settle_action::ack, {}, {}, {}});
  return settle(q, std::move(s));
}

/// The queue's counts (default-constructed when the backend cannot tell).
inline queue_stats stats(durable_queue& q) {
  capture<queue_stats> c;
  q.async_stats(c.handler());
  return c.get().second;
}

/// Up to `limit` dead letters from the start of the list.
inline std::vector<dead_letter> dead_letters(durable_queue& q, std::size_t limit = 1000) {
  capture<std::vector<dead_letter>> c;
  q.async_dead_letters("", limit, c.handler());
  return c.get().second;
}

/// The balance of guarantee 4: checked where the backend counts every state exactly on
/// its own (`features().exact_stats`), and never claimed where it does not.
inline void check_books(const durable_queue& q, const queue_stats& st) {
  CHECK(st.balance_known() == q.features().exact_stats);
  if (q.features().exact_stats) {
    CHECK(st.balanced());
  } else {
    CHECK_FALSE(st.balanced());
  }
}

}  // namespace ingest::testing
