#pragma once
// Paces work to a rate: a reservation scheduler (the virtual clock of GCRA). Each
// acquire(n) reserves the next n/rate seconds of the schedule and sleeps until its
// slot begins, so any interval of length t starts at most rate*t + n items.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <stop_token>

namespace ingest::detail {

class rate_limiter {
 public:
  using clock = std::chrono::steady_clock;

  /// `per_second` <= 0: no limit.
  explicit rate_limiter(double per_second) : per_second_(per_second) {}

  /// Blocks until `n` items may start.
  void acquire(std::size_t n);
  /// The same, unless `stop` is requested first: then returns false at once.
  bool acquire(std::size_t n, std::stop_token stop);

 private:
  double per_second_;
  // The start of the next `n` items' slot (mutex held for the reservation).
  clock::time_point reserve(std::size_t n);

  std::mutex mutex_;
  clock::time_point next_{};
};

}  // namespace ingest::detail
