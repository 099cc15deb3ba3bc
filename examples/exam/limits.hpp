#pragma once
// Token buckets per principal and per client IP (429 + Retry-After when empty).

#include <chrono>
#include <mutex>
#include <string>
#include <unordered_map>

namespace exam {

class keyed_limiter {
 public:
  using clock = std::chrono::steady_clock;
  // rate <= 0: no limit.
  keyed_limiter(double rate_per_second, double burst) : rate_(rate_per_second), burst_(burst < 1 ? 1 : burst) {}

  // Takes one token for `key`; when there is none, returns how long until there is.
  std::chrono::milliseconds take(const std::string& key, clock::time_point now = clock::now());
  bool enabled() const noexcept { return rate_ > 0; }

 private:
  struct bucket {
    double tokens;
    clock::time_point at;
  };
  void prune(clock::time_point now);

  double rate_;
  double burst_;
  std::mutex mutex_;
  std::unordered_map<std::string, bucket> buckets_;
  clock::time_point last_prune_{};
};

}  // namespace exam
