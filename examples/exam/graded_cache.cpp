#include "graded_cache.hpp"

#include <functional>

namespace exam {

graded_cache::shard& graded_cache::shard_of(const std::string& receipt_id) const {
  return shards_[std::hash<std::string>{}(receipt_id) % shards];
}

std::optional<graded_cache::entry> graded_cache::find(const std::string& receipt_id) const {
  if (per_shard_ == 0) return std::nullopt;
  auto& s = shard_of(receipt_id);
  std::lock_guard lock(s.mutex);
  const auto it = s.entries.find(receipt_id);
  if (it == s.entries.end()) return std::nullopt;
  hits_.fetch_add(1, std::memory_order_relaxed);
  return it->second;
}

void graded_cache::remember(const std::string& receipt_id, std::string student_id, std::string json) {
  if (per_shard_ == 0) return;
  auto& s = shard_of(receipt_id);
  std::lock_guard lock(s.mutex);
  const auto [it, added] = s.entries.try_emplace(receipt_id, entry{std::move(student_id), std::move(json)});
  if (!added) return;
  s.order.push_back(receipt_id);
  while (s.order.size() > per_shard_) {
    s.entries.erase(s.order.front());
    s.order.pop_front();
  }
}

}  // namespace exam
