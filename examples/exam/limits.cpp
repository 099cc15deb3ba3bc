#include "limits.hpp"

#include <cmath>

namespace exam {

std::chrono::milliseconds keyed_limiter::take(const std::string& key, clock::time_point now) {
  if (rate_ <= 0) return std::chrono::milliseconds(0);
  std::lock_guard lock(mutex_);
  if (now - last_prune_ > std::chrono::seconds(10)) prune(now);
  auto [it, fresh] = buckets_.try_emplace(key, bucket{burst_, now});
  auto& b = it->second;
  if (!fresh) {
    const double elapsed = std::chrono::duration<double>(now - b.at).count();
    b.tokens = std::min(burst_, b.tokens + elapsed * rate_);
    b.at = now;
  }
  if (b.tokens >= 1) {
    b.tokens -= 1;
    return std::chrono::milliseconds(0);
  }
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(1000.0 * (1 - b.tokens) / rate_)));
}

// Buckets that have refilled are indistinguishable from new ones: drop them, so the
// map holds only clients active in the last few seconds.
void keyed_limiter::prune(clock::time_point now) {
  last_prune_ = now;
  for (auto it = buckets_.begin(); it != buckets_.end();) {
    const double elapsed = std::chrono::duration<double>(now - it->second.at).count();
    if (it->second.tokens + elapsed * rate_ >= burst_)
      it = buckets_.erase(it);
    else
      ++it;
  }
}

}  // namespace exam
