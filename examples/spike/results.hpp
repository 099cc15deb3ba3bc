#pragma once
// The record of a flood: latencies, counts, errors and every receipt, kept by all the
// connections at once.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "ingest/metrics.hpp"

namespace spike {

using steady = std::chrono::steady_clock;

// What happened, shared by every student (thread-safe).
struct results {
  ingest::histogram accept_latency;     // 2xx answers: request written -> response read
  ingest::histogram all_latency;        // every answer
  ingest::histogram connect_latency;    // TCP connect
  ingest::histogram scheduled_latency;  // open loop: scheduled time -> response read
  std::atomic<std::uint64_t> requests{0}, ok{0}, retried{0}, gave_up{0}, mismatched{0};
  std::mutex mutex;
  std::map<std::string, std::uint64_t> errors;           // kind -> count
  std::map<std::string, std::string> receipts;           // idempotency key -> receipt id
  std::map<std::string, std::uint64_t> answered_2xx_by;  // server (host:port) -> 2xx answers
  std::vector<std::uint32_t> accepted_per_tick;          // 100 ms ticks since t0
  // Open loop: every 2xx answer's latency from its scheduled time, by the second it was
  // scheduled in (does the tail recover after a burst?).
  std::vector<std::vector<float>> latency_by_second;
  steady::time_point t0{};
  steady::time_point last_accept{};

  void answered_2xx(const std::string& server) {
    std::lock_guard lock(mutex);
    ++answered_2xx_by[server];
  }
  void error(const std::string& kind) {
    std::lock_guard lock(mutex);
    ++errors[kind];
  }
  void scheduled_answer(steady::time_point scheduled, double seconds);  // report.cpp
  void receipt(const std::string& key, const std::string& id, steady::time_point at) {
    using namespace std::chrono_literals;
    std::lock_guard lock(mutex);
    auto [it, fresh] = receipts.emplace(key, id);
    if (!fresh && it->second != id) ++mismatched;  // a second receipt for the same key
    const auto tick = static_cast<std::size_t>(std::max<std::int64_t>(0, (at - t0) / 100ms));
    if (accepted_per_tick.size() <= tick) accepted_per_tick.resize(tick + 1, 0);
    if (fresh) ++accepted_per_tick[tick];
    last_accept = std::max(last_accept, at);
  }
};

}  // namespace spike
