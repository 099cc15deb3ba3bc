#include "rate_limiter.hpp"

#include <thread>

namespace ingest::detail {

void rate_limiter::acquire(std::size_t n) {
  if (per_second_ <= 0 || n == 0) return;
  clock::time_point start;
  {
    std::lock_guard lock(mutex_);
    start = std::max(clock::now(), next_);
    next_ = start + std::chrono::duration_cast<clock::duration>(
                        std::chrono::duration<double>(static_cast<double>(n) / per_second_));
  }
  std::this_thread::sleep_until(start);
}

}  // namespace ingest::detail
