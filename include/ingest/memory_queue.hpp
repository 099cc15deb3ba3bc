#pragma once
/// @file
/// The in-memory backend. **Not durable**: everything it holds is lost when the process
/// exits. For tests, demos and as the reference for the other backends' semantics.

#include <chrono>
#include <memory>

#include "ingest/durable_queue.hpp"

namespace ingest {

/// How a `memory_queue` leases and bounds its messages.
struct memory_queue_options {
  /// How long a fetched delivery stays invisible to other fetches.
  std::chrono::milliseconds visibility_timeout{std::chrono::seconds(30)};
  /// Capacity in messages not yet processed (pending + leased); 0 = unbounded. A
  /// publish over capacity completes with `errc::queue_full`; nothing is evicted.
  std::size_t max_messages = 0;
  /// Suppress the one-time "not durable" warning on standard error.
  bool quiet = false;
};

/// Non-durable `durable_queue` with the full semantics: dedup by idempotency key,
/// leases with visibility timeout, delayed retry, lease extension, dead letters, stats.
/// Keys are remembered for the queue's lifetime (a few dozen bytes each), so the
/// memory it holds grows with the number of distinct keys it has accepted.
///
/// **Ownership.** Owns every message; they are gone with the object. Not copyable.
///
/// **Threading.** Thread-safe. Completion handlers run on their associated executor
/// (default: the one given here); the executor also runs the queue's timers, so it
/// must be running for fetch waits and lease expiry to progress.
///
/// **Completion and cancellation:** as `durable_queue` says (`close()` ends waiting
/// fetches).
///
/// Fault injection, for tests of the layers above: `fail_publishes`, `fail_lookups`,
/// `hold_acks`, `drop_settlements`.
///
/// @code
/// asio::io_context io;
/// ingest::memory_queue queue(io.get_executor(), {.visibility_timeout = 5s});
/// @endcode
class memory_queue final : public durable_queue {
 public:
  /// A queue whose timers and completions run on `ex` (which must be running).
  explicit memory_queue(executor_type ex, memory_queue_options options = {});
  ~memory_queue() override;

  memory_queue(const memory_queue&) = delete;
  memory_queue& operator=(const memory_queue&) = delete;

  executor_type get_executor() const override;
  queue_features features() const override;
  void close() override;

  /// From now on every publish fails with `ec` (and stores nothing); an empty code
  /// restores normal service.
  void fail_publishes(error_code ec);
  /// From now on every `async_find` fails with `ec`; an empty code restores normal
  /// service.
  void fail_lookups(error_code ec);
  /// While held, publishes are stored but their completions (the "durable ack") are
  /// withheld; releasing delivers every withheld ack.
  void hold_acks(bool hold);
  /// While set, settlements are accepted and reported as success but have no effect,
  /// as if the ack was lost on the way: the leases expire and the messages come back.
  void drop_settlements(bool drop);

 private:
  void do_publish(envelope message, callback<error_code, receipt> done) override;
  void do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) override;
  void do_settle(std::vector<settlement> decisions, callback<error_code> done) override;
  void do_extend(std::vector<std::string> tokens, duration by, callback<error_code> done) override;
  void do_stats(callback<error_code, queue_stats> done) override;
  void do_dead_letters(std::string after, std::size_t limit,
                       callback<error_code, std::vector<dead_letter>> done) override;
  void do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) override;
  void do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) override;
  void do_find(std::string receipt_id, callback<error_code, message_status> done) override;

  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace ingest
