#pragma once
/// @file
/// The drain side: fetch batches, run the user's transaction, settle each item.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ingest/dead_letter_policy.hpp"
#include "ingest/durable_queue.hpp"
#include "ingest/log.hpp"
#include "ingest/metrics.hpp"
#include "ingest/retry_policy.hpp"

namespace ingest {

/// What became of one item of a batch.
enum class item_outcome {
  ok,     ///< committed: it will be acked
  retry,  ///< transient failure: retried with backoff, dead-lettered after max_attempts
  fail,   ///< permanent failure: dead-lettered now
};

/// The deliveries a handler gets, and where it marks the ones that did not succeed.
/// Every item starts as `item_outcome::ok`.
class batch {
 public:
  /// Takes the deliveries of one fetch; every item starts as `item_outcome::ok`.
  explicit batch(std::vector<delivery> items);

  /// Number of items.
  std::size_t size() const noexcept { return items_.size(); }
  /// True when there are no items.
  bool empty() const noexcept { return items_.empty(); }
  /// Item `i` (from 0).
  const delivery& operator[](std::size_t i) const { return items_[i]; }
  /// All items, in delivery order.
  std::span<const delivery> items() const noexcept { return items_; }
  /// Iteration over the items.
  auto begin() const noexcept { return items_.begin(); }
  /// Iteration over the items.
  auto end() const noexcept { return items_.end(); }

  /// Item `i` failed for a reason that may pass (it was not committed).
  void retry(std::size_t i, std::string error);
  /// The same; should its retries run out, its dead letter's reason is `reason` (a
  /// word a person acts on, e.g. `attachment_missing`) instead of `max_attempts`.
  void retry(std::size_t i, std::string error, std::string reason);
  /// Item `i` can never succeed (it was not committed): dead-letter it, with the
  /// reason `permanent_failure`.
  void fail(std::size_t i, std::string error);
  /// The same, with the dead letter's reason chosen by the handler (e.g. a domain
  /// reason a person acts on, such as `deadline_passed`).
  void fail(std::size_t i, std::string error, std::string reason);

  /// What the handler decided for item `i` so far.
  item_outcome outcome(std::size_t i) const { return results_.at(i).kind; }
  /// The error text given with `retry` / `fail` for item `i` (empty when ok).
  const std::string& error(std::size_t i) const { return results_.at(i).error; }

 private:
  friend class batching_consumer;
  struct result {
    item_outcome kind = item_outcome::ok;
    std::string error;
    std::string reason{};  // the dead letter's reason (empty: permanent_failure, or max_attempts for retry)
  };
  std::vector<delivery> items_;
  std::vector<result> results_;
};

/// The user's unit of work: write the batch's `ok` items in **one transaction**
/// together with their idempotency records, commit, and return. Items it could not
/// write are marked with `batch::retry` / `batch::fail` (and left out of the
/// transaction). Throwing means nothing was committed: every item is retried (or
/// isolated, see `consumer_options::isolate_failures`). Runs on a consumer thread;
/// may block.
using batch_handler = std::function<void(batch&)>;

/// How a `batching_consumer` fetches, paces, retries and dead-letters.
struct consumer_options {
  std::size_t workers = 2;                   ///< concurrent fetch loops (W)
  std::size_t max_batch = 100;               ///< items per batch at most (N)
  std::chrono::milliseconds linger{10};      ///< how long a partial batch waits to fill (T)
  std::chrono::milliseconds poll_wait{250};  ///< how long one fetch waits when the queue is empty
  /// Items handed to the handler per second at most, whatever the backlog (0 = no limit).
  double max_rate = 0;
  /// Handler calls running at once at most (0 = `workers`).
  std::size_t max_concurrency = 0;
  /// When a batch of several items throws, run each item alone to find the one that
  /// fails, instead of retrying them all together.
  bool isolate_failures = true;
  /// While a batch is in hand, extend its leases by `lease_extension` every
  /// `lease_heartbeat` (zero: never). Keep the heartbeat below the backend's visibility timeout.
  std::chrono::milliseconds lease_heartbeat{std::chrono::seconds(10)};
  std::chrono::milliseconds lease_extension{std::chrono::seconds(30)};  ///< by how much each heartbeat extends the leases
  retry_policy retry{};  ///< backoff and attempt limit for failed items
  dead_letter_policy dead_letter{};  ///< dead-letter reasons and the alert hook
  /// Where to record processed / retried / dead-lettered / handler errors / batch
  /// size / commit latency (optional; share one instance with the producer).
  std::shared_ptr<pipeline_metrics> metrics{};
  /// Where `processed` / `retry` / `dead_lettered` / `settle_failed` events go
  /// (optional; see log.hpp).
  std::shared_ptr<logger> log{};

  /// Throws `ingest::error(errc::invalid_config)` when a value is out of range.
  void validate() const;
};

/// Monotonic counters of a consumer.
struct consumer_stats {
  std::uint64_t batches = 0;         ///< handler calls that returned
  std::uint64_t acked = 0;           ///< items committed and acked
  std::uint64_t retried = 0;         ///< items sent back for a later attempt
  std::uint64_t dead_lettered = 0;   ///< items moved to the dead-letter store
  std::uint64_t handler_errors = 0;  ///< handler calls that threw
  std::uint64_t settle_errors = 0;   ///< settlements refused (lease expired: the item comes back)
};

/// W fetch loops that drain a `durable_queue` in batches into a user transaction.
///
/// **Guarantees.** An item is acked only after the handler returned, i.e. after its
/// transaction committed (guarantee 2); a crash in between means a redelivery that
/// the idempotency store absorbs. Handler calls never exceed `max_concurrency` at once
/// nor `max_rate` items per second, however deep the backlog (guarantee 5). Failed
/// items are retried with the retry policy's backoff and, after `max_attempts`
/// deliveries or on a permanent error, dead-lettered with reason, attempts and last
/// error, and the alert is called once (guarantee 4). `drain()` stops fetching,
/// lets every batch in hand finish and be settled, and acks nothing uncommitted
/// (guarantee 8).
///
/// **Ownership.** Refers to the queue (not owned; it must outlive the consumer) and owns
/// the handler, its threads and the batches in hand. Not copyable or movable; the
/// destructor drains.
///
/// **Threading.** `start`, `drain` and `stats` are thread-safe. The handler and the
/// alert run on the consumer's own threads (`workers` of them).
///
/// **Completion.** `async_drain`: `void(error_code)`, on the queue's executor.
///
/// **Cancellation.** None per operation: `drain()` / `async_drain()` is the way to stop,
/// and it never abandons a batch in hand.
///
/// @code
/// ingest::batching_consumer consumer(queue, [&](ingest::batch& b) {
///   auto tx = db.begin();            // one transaction per batch
///   for (const auto& d : b) write(d.message);
///   tx.commit();                     // then the consumer acks
/// }, {.workers = 2, .max_batch = 500, .max_rate = 5000});
/// consumer.start();
/// @endcode
class batching_consumer {
 public:
  /// The executor `async_drain` completes on by default (the queue's).
  using executor_type = durable_queue::executor_type;

  /// Binds to `queue` (which must outlive the consumer) and `handler`; starts nothing
  /// until `start()`. Throws `ingest::error(errc::invalid_config)` for bad options.
  batching_consumer(durable_queue& queue, batch_handler handler, consumer_options options = {});
  ~batching_consumer();
  batching_consumer(const batching_consumer&) = delete;
  batching_consumer& operator=(const batching_consumer&) = delete;

  /// The queue's executor.
  executor_type get_executor() const;

  /// Starts the fetch loops. Idempotent; a drained consumer does not restart.
  void start();
  /// Blocks until every loop has finished its batch in hand and stopped.
  void drain();

  /// Like `drain()`, without blocking the caller. Signature `void(error_code)`.
  template <class Token>
  auto async_drain(Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        [this](auto handler) { do_drain(detail::to_callback<error_code>(std::move(handler), get_executor())); }, token);
  }

  /// A snapshot of the counters (thread-safe).
  consumer_stats stats() const;

 private:
  void do_drain(detail::callback<void(error_code)> done);

  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace ingest
