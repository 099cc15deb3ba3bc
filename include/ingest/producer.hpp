#pragma once
/// @file
/// The accept path: validate, fingerprint, publish, wait for the durable ack, return a receipt.

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "ingest/durable_queue.hpp"
#include "ingest/log.hpp"
#include "ingest/metrics.hpp"

namespace ingest {

/// One item to accept.
struct submission {
  std::string idempotency_key{};  ///< client-chosen, reused on every retry of the same submission
  std::string subject{};          ///< empty: the producer's default subject
  std::string payload{};          ///< opaque bytes (at most `producer_options::max_payload_bytes`)
  /// Application headers, carried to the consumer: names as `valid_header_name` and
  /// values as `valid_header_value` allow (otherwise `errc::invalid_header`).
  header_list headers{};
  /// A deadline: a new submission accepted after it is refused with
  /// `errc::deadline_passed` (see `envelope::not_after`); a repeat of one accepted in
  /// time gets its receipt.
  time_point not_after = time_point::max();
  /// What the receipt id vouches for when the queue signs receipts (see
  /// `envelope::receipt_claims`).
  std::string receipt_claims{};
};

/// How a `producer` bounds and checks what it accepts.
struct producer_options {
  /// Publishes awaiting their durable ack at once; past it `async_submit` fails at
  /// once with `errc::backpressure` (guarantee 6).
  std::size_t max_in_flight = 1024;
  /// Largest payload accepted (bytes).
  std::size_t max_payload_bytes = 1 << 20;
  /// Longest wait for the durable ack before answering `errc::publish_timeout`
  /// (zero: wait for the backend). The publish may still complete later; a retry with
  /// the same key then returns its receipt. One timer checks every publish in flight,
  /// an eighth of this apart (10 ms to 1 s): the answer comes up to that much late.
  std::chrono::milliseconds publish_timeout{std::chrono::seconds(5)};
  std::string default_subject = "ingest";  ///< the subject of submissions that name none
  /// Where to record accepted / duplicates / rejected by reason / accept latency
  /// (optional; share one instance with the consumer).
  std::shared_ptr<pipeline_metrics> metrics{};
  /// Where `accepted` / `duplicate` / `rejected` events go (optional; see log.hpp).
  std::shared_ptr<logger> log{};

  /// Throws `ingest::error(errc::invalid_config)` when a value is out of range.
  void validate() const;
};

/// Producer statistics (monotonic counters, plus the current in-flight count).
struct producer_stats {
  std::uint64_t accepted = 0;    ///< receipts for new messages
  std::uint64_t duplicates = 0;  ///< original receipts returned for a repeated key
  std::uint64_t rejected = 0;    ///< completed with an error
  std::size_t in_flight = 0;     ///< publishes awaiting their durable ack now
};

/// Accepts submissions into a `durable_queue`.
///
/// `async_submit` completes with a receipt only after the queue durably acknowledged
/// the message (guarantee 1), stamped with the queue's postmark (guarantee 7, `envelope::accepted_at`); one
/// postmarked after its `submission::not_after` with `errc::deadline_passed`. A
/// repeated key completes with the original receipt; the same key with another
/// payload with `errc::conflict`; a key whose first publish is still awaiting its ack
/// with `errc::in_flight` (or `errc::conflict` when the payload differs). When
/// `max_in_flight` publishes are outstanding, or the backend fails, it completes at
/// once with an error for which `is_retry_later()` holds, never with a receipt.
///
/// **Ownership.** Refers to the queue (not owned; it must outlive the producer); owns
/// its in-flight bookkeeping. Not copyable or movable.
///
/// **Threading.** Thread-safe. Completion handlers run on their associated executor
/// (default: the queue's), never inside `async_submit`.
///
/// **Completion.** Submit `void(error_code, receipt)`, drain `void(error_code)`.
///
/// **Cancellation.** None per submit (a publish handed to the queue is not taken back;
/// `publish_timeout` bounds the wait). `async_drain` stops accepting (later submits
/// complete with `errc::shutting_down`) and completes once every in-flight publish
/// has completed.
///
/// @code
/// ingest::producer producer(queue, {.max_in_flight = 4096});
/// producer.async_submit({.idempotency_key = key, .payload = body},
///     [](error_code ec, ingest::receipt r) { ... });
/// @endcode
class producer {
 public:
  /// The executor completions run on by default (the queue's).
  using executor_type = durable_queue::executor_type;

  /// Binds to `queue` (not owned; it must outlive the producer). Throws
  /// `ingest::error(errc::invalid_config)` for bad options.
  explicit producer(durable_queue& queue, producer_options options = {});
  ~producer();
  producer(const producer&) = delete;
  producer& operator=(const producer&) = delete;

  /// The queue's executor.
  executor_type get_executor() const;

  /// Validates, fingerprints and publishes `item`; completes with the receipt after the
  /// queue's durable ack. Signature `void(error_code, receipt)`.
  template <class Token>
  auto async_submit(submission item, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, receipt)>(
        [this](auto handler, submission s) {
          do_submit(std::move(s), detail::to_callback<error_code, receipt>(std::move(handler), get_executor()));
        },
        token, std::move(item));
  }

  /// Stops accepting; completes when every in-flight publish has completed.
  /// Signature `void(error_code)`.
  template <class Token>
  auto async_drain(Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        [this](auto handler) { do_drain(detail::to_callback<error_code>(std::move(handler), get_executor())); }, token);
  }

  /// A snapshot of the counters (thread-safe).
  producer_stats stats() const;

 private:
  void do_submit(submission item, detail::callback<void(error_code, receipt)> done);
  void do_drain(detail::callback<void(error_code)> done);

  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace ingest
