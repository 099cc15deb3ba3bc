#pragma once
// The fetch of a partitioned_queue: first a sweep of the partitions in turn, each asked
// without waiting; when all were empty, a wait on all of them together, each asked for
// one message, the first answer completing the fetch.

#include <boost/asio/steady_timer.hpp>
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

  fetcher(executor_type ex, std::vector<durable_queue*> partitions, duration hold_limit);

  void fetch(std::size_t max, duration wait, fetch_done done);
  // Completes the waiting fetches (operation_canceled) and releases what is held.
  void close();
  // Before the partitions are destroyed: nothing is asked of them from now on, and what
  // arrives later is left to its lease.
  void forget();

 private:
  // One fetch's look at every idle partition at once, none waited for, each asked for
  // its share of the batch.
  struct sweep {
    std::size_t max = 0;
    steady::time_point deadline{};
    fetch_done done;
    std::vector<delivery> got;
    std::size_t outstanding = 0;  // partitions not yet answered in this round
    std::size_t asked = 0;
    std::size_t failed = 0;
    error_code error{};
    std::vector<std::size_t> full;  // partitions that gave their whole share: they may have more
  };
  // A fetch waiting on every partition at once, until a delivery or its deadline.
  struct waiter {
    std::uint64_t id = 0;
    std::size_t max = 0;
    steady::time_point deadline{};
    fetch_done done;
    std::shared_ptr<boost::asio::steady_timer> timer;
  };
  using actions = std::vector<std::function<void()>>;

  // Under the lock: asks each of `partitions` for its share of what the sweep still lacks.
  void ask(const std::shared_ptr<sweep>& s, const std::vector<std::size_t>& partitions);
  void swept(const std::shared_ptr<sweep>& s, std::size_t partition, std::size_t share, error_code ec,
             std::vector<delivery> batch);
  void finish(const std::shared_ptr<sweep>& s, actions& later);
  void woken(std::size_t partition, error_code ec, std::vector<delivery> batch);
  void expire(std::uint64_t waiter_id);
  // Under the lock: a fetch that found nothing waits on every partition.
  void add_waiter(std::size_t max, steady::time_point deadline, fetch_done done, actions& later);
  // Under the lock: hands what is ready to the waiters, ends them when every partition
  // is failing, and starts wake-up fetches on the idle partitions.
  void pump(actions& later);
  void answer(waiter& w, error_code ec, std::vector<delivery> batch, actions& later);
  void launch(std::size_t partition, std::size_t max, duration wait,
              std::function<void(error_code, std::vector<delivery>)> then);
  // Under the lock: notes a partition's answer (a failure keeps it out for a while).
  void note(std::size_t partition, error_code ec, bool empty);
  void pump_at(steady::time_point when);  // a pump at `when` (a failed partition's pause over)
  bool usable(std::size_t partition, steady::time_point now) const;
  bool all_failing(steady::time_point now) const;
  // Under the lock: releases deliveries nobody will take (a retry with no delay).
  void release(std::vector<delivery> held);
  // Under the lock: moves batch into `ready_`, held from now.
  void hold(std::vector<delivery> batch);
  // Under the lock: releases what has been held longer than the limit.
  void release_stale();
  // Under the lock: up to `max` held deliveries, oldest first (after release_stale).
  std::vector<delivery> take_ready(std::size_t max);
  std::vector<delivery> take_all();
  void tag(std::size_t partition, std::vector<delivery>& batch) const;

  executor_type ex_;
  std::vector<durable_queue*> parts_;
  std::mutex mutex_;
  bool closed_ = false;
  bool forgotten_ = false;
  std::vector<char> busy_;                         // a fetch of ours is out on the partition
  std::vector<steady::time_point> failing_until_;  // a failed partition is left alone until then
  error_code last_error_{};
  struct held_delivery {
    delivery d;
    steady::time_point since;
  };
  duration hold_limit_;
  std::deque<held_delivery> ready_;  // arrived after their fetch was answered, oldest first
  std::list<waiter> waiters_;
  std::uint64_t next_waiter_ = 1;
  std::size_t turn_ = 0;  // where the next sweep begins
};

}  // namespace ingest
