#include "rate_limiter.hpp"

#include <condition_variable>
#include <thread>

namespace ingest::detail {

rate_limiter::clock::time_point rate_limiter::reserve(std::size_t n) {
  std::lock_guard lock(mutex_);
  const auto start = std::max(clock::now(), next_);
  next_ = start + std::chrono::duration_cast<clock::duration>(
                      std::chrono::duration<double>(static_cast<double>(n) / per_second_));
  return start;
}

void rate_limiter::acquire(std::size_t n) {
  if (per_second_ <= 0 || n == 0) return;
  std::this_thread::sleep_until(reserve(n));
}

bool rate_limiter::acquire(std::size_t n, std::stop_token stop) {
  if (per_second_ <= 0 || n == 0) return !stop.stop_requested();
  const auto start = reserve(n);
  std::mutex m;
  std::condition_variable_any wake;
  std::unique_lock lock(m);
  wake.wait_until(lock, stop, start, [] { return false; });  // wakes at `start` or on a stop request
  return !stop.stop_requested();
}

}  // namespace ingest::detail
