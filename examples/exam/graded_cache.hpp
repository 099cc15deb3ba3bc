#pragma once
// The answers of graded submissions, kept in memory: a graded answer never changes, so
// a status read of a receipt graded before (the student's page after a reload, a poll
// that goes on) is answered without a query. Bounded: past `capacity` receipts, the
// oldest go first. Thread-safe.

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

namespace exam {

class graded_cache {
 public:
  struct entry {
    std::string student_id;  // who may read it besides teachers
    std::string json;        // the GET's answer
  };

  explicit graded_cache(std::size_t capacity) : per_shard_((capacity + shards - 1) / shards) {}

  std::optional<entry> find(const std::string& receipt_id) const;
  void remember(const std::string& receipt_id, std::string student_id, std::string json);
  std::uint64_t hits() const { return hits_.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t shards = 16;
  struct shard {
    mutable std::mutex mutex;
    std::unordered_map<std::string, entry> entries;
    std::deque<std::string> order;  // oldest first
  };
  shard& shard_of(const std::string& receipt_id) const;

  std::size_t per_shard_;
  mutable std::array<shard, shards> shards_;
  mutable std::atomic<std::uint64_t> hits_{0};
};

}  // namespace exam
