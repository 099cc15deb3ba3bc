#pragma once
// The fetch of a partitioned_queue: first a sweep of the partitions in turn, each asked
// without waiting; when all were empty, a wait on all of them together, each asked for
// one message, the first answer completing the fetch.

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <mutex>
#include <string>
#include <vector>

#include "ingest/partitioned_queue.hpp"

namespace ingest::detail {

// A delivery token names its partition: "P/token".
std::string partition_token(std::size_t partition, const std::string& token);
// Splits a token made by partition_token; false when it is not one (or names no partition below `count`).
bool split_partition_token(const std::string& token, std::size_t count, std::size_t& partition, std::string& inner);

}  // namespace ingest::detail

namespace ingest {

class partitioned_queue::fetcher : public std::enable_shared_from_this<fetcher> {
 public:
  using fetch_done = detail::callback<void(error_code, std::vector<delivery>)>;
  using steady = std::chrono::steady_clock;

  fetcher(executor_type ex, std::vector<durable_queue*> partitions);

  void fetch(std::size_t max, duration wait, fetch_done done);
  // Completes the waiting fetches (operation_canceled) and releases what is held.
  void close();
  // Before the partitions are destroyed: nothing is asked of them from now on, and what
  // arrives later is left to its lease.
  void forget();

 private:
  // One fetch's pass over the partitions, none waited for.
  struct sweep {
    std::size_t max = 0;
    steady::time_point deadline{};
    fetch_done done;
    std::vector<delivery> got;
    std::size_t start = 0;    // the partition it began with
    std::size_t visited = 0;  // partitions looked at so far (asked or busy)
    error_code error{};
  };
  // A fetch waiting on every partition at once.
  struct waiter {
    std::uint64_t id = 0;
    std::size_t max = 0;
    steady::time_point deadline{};
    fetch_done done;
    std::size_t outstanding = 0;  // its wake-up fetches not yet answered
    error_code error{};
  };
  using actions = std::vector<std::function<void()>>;

  void step(std::shared_ptr<sweep> s);
  void swept(const std::shared_ptr<sweep>& s, std::size_t partition, error_code ec, std::vector<delivery> batch);
  void woken(std::size_t partition, std::uint64_t waiter_id, error_code ec, std::vector<delivery> batch);
  // Under the lock: hands what is ready to the waiters, ends the ones that are done and
  // starts wake-up fetches on the idle partitions.
  void pump(actions& later);
  void launch(std::size_t partition, std::size_t max, duration wait,
              std::function<void(error_code, std::vector<delivery>)> then);
  // Under the lock: releases deliveries nobody will take (a retry with no delay).
  void release(std::vector<delivery> held);
  std::vector<delivery> take_ready(std::size_t max);
  void tag(std::size_t partition, std::vector<delivery>& batch) const;

  executor_type ex_;
  std::vector<durable_queue*> parts_;
  std::mutex mutex_;
  bool closed_ = false;
  bool forgotten_ = false;
  std::vector<char> busy_;      // a fetch of ours is out on the partition
  std::deque<delivery> ready_;  // arrived after their fetch was answered
  std::list<waiter> waiters_;
  std::uint64_t next_waiter_ = 1;
  std::size_t turn_ = 0;  // where the next sweep begins
};

}  // namespace ingest
