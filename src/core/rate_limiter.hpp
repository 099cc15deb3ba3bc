#pragma once
// Paces work to a rate: a reservation scheduler (the virtual clock of GCRA). Each
// acquire(n) reserves the next n/rate seconds of the schedule and sleeps until its
// slot begins, so any interval of length t starts at most rate*t + n items.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>

namespace ingest::detail {

class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  /// `per_second` <= 0: no limit.
  explicit rate_limiter(double per_second) : per_second_(per_second) {}

  /// Blocks until `n` items may start.
  void acquire(std::size_t n);

 private:
  double per_second_;
  std::mutex mutex_;
  clock::time_point next_{};
};

}  // namespace ingest::detail
