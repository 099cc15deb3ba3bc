#pragma once
// The teachers' overview (GET /v1/overview): where the submissions stand, per state,
// and accepted against written per second over the last minutes (the flood and the
// plateau the graders drain it at), sampled once a period on a thread of its own, so
// that a page asking every second costs no query.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <thread>

#include "ingest/durable_queue.hpp"

namespace exam {

struct overview_sources {
  // The queue's counts (nullopt: no queue, or not readable just now).
  std::function<std::optional<ingest::queue_stats>()> queue;
  // Rows written to the database, of every exam; throws when the database cannot be read.
  std::function<std::uint64_t()> written;
  // New receipts this server gave (the accepted count where the queue keeps none).
  std::function<std::uint64_t()> accepted_here;
};

struct overview_options {
  std::chrono::milliseconds period{1000};
  std::size_t keep = 300;  // samples in the chart (5 minutes of seconds)
};

class overview {
 public:
  explicit overview(overview_sources sources, overview_options options = {});
  // Stops the sampling thread.
  ~overview();
  overview(const overview&) = delete;
  overview& operator=(const overview&) = delete;

  // The document GET /v1/overview answers (examples/README.md, "The teacher page").
  std::string json() const;
  // Takes one sample now (the thread does it once a period).
  void sample();

 private:
  struct point {
    std::optional<std::uint64_t> accepted;  // nullopt: not known for that period
    std::optional<std::uint64_t> written;
  };
  void run(std::stop_token stop);

  overview_sources sources_;
  overview_options options_;
  mutable std::mutex mutex_;
  std::condition_variable_any wake_;
  std::deque<point> series_;
  std::optional<std::uint64_t> accepted_;  // the last sample's totals (nullopt: not read)
  std::optional<std::uint64_t> written_;
  bool accepted_by_queue_ = false;  // where accepted_ came from
  std::optional<ingest::queue_stats> queue_;
  std::string sampled_at_;
  std::jthread thread_;  // last: stopped and joined before the rest goes
};

}  // namespace exam
