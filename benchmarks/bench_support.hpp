#pragma once
// Shared pieces of the benchmark programs.

#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <latch>
#include <random>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "ingest/batching_consumer.hpp"
#include "ingest/durable_queue.hpp"

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

inline const std::string& sample_payload() {
  static const std::string payload = R"({"answers":{"q1":"B","q2":"D","q3":"A","q4":"C","q5":"A"}})";
  return payload;
}

/// `n` random keys (UUIDv4 text), made before a timed part that publishes them.
inline std::vector<std::string> random_keys(std::int64_t n, std::mt19937_64& rng) {
  std::vector<std::string> keys;
  keys.reserve(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) keys.push_back(uuid_v4(rng));
  return keys;
}

/// Publishes the sample payload once under each key, `window` of them awaiting their
/// durable ack at any time (the publishing thread blocks, not spins, while the window
/// is full), and waits for every answer. Returns how many failed.
inline std::int64_t publish_keys(durable_queue& queue, std::vector<std::string> keys, std::int64_t window) {
  std::latch done(static_cast<std::ptrdiff_t>(keys.size()));
  std::counting_semaphore<> slots(window);
  std::atomic<std::int64_t> failed{0};
  for (auto& key : keys) {
    slots.acquire();
    envelope e;
    e.idempotency_key = std::move(key);
    e.subject = "exam.demo";
    e.payload = sample_payload();
    queue.async_publish(std::move(e), [&](error_code ec, receipt) {
      if (ec) ++failed;
      slots.release();
      done.count_down();
    });
  }
  done.wait();
  return failed;
}

/// `publish_keys` with `n` random keys made on the way.
inline std::int64_t publish_flood(durable_queue& queue, std::int64_t n, std::int64_t window, std::mt19937_64& rng) {
  return publish_keys(queue, random_keys(n, rng), window);
}

/// Drains a queue holding at least `n` messages through a batching consumer (2
/// workers, no-op handler); timed from start() until `n` are acked.
template <class State>
void timed_drain(State& state, durable_queue& queue, std::int64_t n, std::size_t batch_size) {
  using namespace std::chrono_literals;
  batching_consumer consumer(queue, [](ingest::batch&) {},
                             {.workers = 2, .max_batch = batch_size, .linger = 0ms, .poll_wait = 20ms});
  state.ResumeTiming();
  consumer.start();
  while (consumer.stats().acked < static_cast<std::uint64_t>(n)) std::this_thread::sleep_for(1ms);
  state.PauseTiming();
  consumer.drain();
}

}  // namespace ingest::bench
