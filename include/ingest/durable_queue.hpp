#pragma once
/// @file
/// The durable queue interface every backend implements, and its contract.

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ingest/detail/callback.hpp"
#include "ingest/envelope.hpp"
#include "ingest/error.hpp"

namespace ingest {

class receipt_signer;

/// What a backend can promise; the conformance suite reads it to know what to test.
struct queue_features {
  bool durable = false;          ///< an acknowledged publish survives a process crash
  bool native_dedup = false;     ///< the backend itself rejects a repeated idempotency key
  bool fifo = false;             ///< deliveries come in publish order (absent redelivery)
  bool delayed_retry = false;    ///< retry-after delays are honoured by the backend
  bool lease_extension = false;  ///< leases can be extended while a batch is in hand
  bool exact_stats = false;  ///< every stats() count is exact and counted on its own (`queue_stats::balance_known()`)
  bool lookup = false;       ///< async_find() can look a message up by receipt id
  /// `envelope::not_after` is checked before the message is stored: a late new message
  /// leaves nothing behind. Otherwise (NATS, SQS: the broker decides whether a key is
  /// new) it is stored and only its receipt is refused.
  bool deadline_before_store = false;
  /// How long the backend remembers an accepted key at least (a repeat within it gets
  /// the original receipt); zero when it does not dedup. Past it, a repeat is a new
  /// message: an application that takes retries for longer checks its own records.
  std::chrono::milliseconds dedup_window{0};
};

/// One message handed to a consumer, leased to it until settled or the lease expires.
///
/// A message another program published may lack what the library writes (receipt id,
/// key, accept time, fingerprint): the backend derives those from the broker's own
/// record of the message (see docs/wire-format.md). A message that breaks the wire
/// format (a field present but unreadable, a fingerprint that does not match the
/// payload) is delivered with `malformed` saying which field and what is wrong, and
/// the fields it could not read derived instead; `batching_consumer` dead-letters it
/// with the reason `malformed_envelope` without calling the handler. Never ack one
/// without a row or a letter.
struct delivery {
  envelope message{};             ///< `message.attempts` counts this delivery
  std::string token{};            ///< opaque lease handle; pass it back to settle
  time_point first_attempt_at{};  ///< when the message was first delivered
  std::string malformed{};        ///< empty, or why the message breaks the wire format
};

/// How a delivery ends.
enum class settle_action {
  ack,          ///< processed and committed: remove it
  retry,        ///< redeliver after `delay`
  dead_letter,  ///< park it in the dead-letter store with `reason`
};

/// A decision on one delivery.
struct settlement {
  std::string token{};                        ///< the lease handle of the delivery (`delivery::token`)
  settle_action action = settle_action::ack;  ///< what to do with it
  std::chrono::milliseconds delay{0};         ///< for retry
  std::string reason{};                       ///< for dead_letter: e.g. "max_attempts", "permanent_failure"
  std::string last_error{};                   ///< for retry and dead_letter: the handler's error text
};

/// Where an accepted message is now (see `durable_queue::async_find`).
enum class message_state {
  pending,        ///< waiting for a consumer, or for its retry delay
  leased,         ///< held by a consumer right now
  processed,      ///< acknowledged after commit (until the backend compacts it)
  dead_lettered,  ///< in the dead-letter store
};

/// The answer of `async_find`.
struct message_status {
  envelope message{};                            ///< the message as accepted
  message_state state = message_state::pending;  ///< where it is now
  std::string reason{};                          ///< dead letters: why
  std::string last_error{};                      ///< the last handler error, if any
};

/// A message parked in the dead-letter store.
struct dead_letter {
  envelope message{};        ///< the message as accepted, `attempts` as delivered last
  std::string reason{};      ///< why: `max_attempts`, `permanent_failure`, ... (the consumer's or the operator's word)
  std::string last_error{};  ///< the last handler error
  std::uint32_t attempts = 0;     ///< deliveries before it was parked
  time_point first_attempt_at{};  ///< the first delivery
  time_point last_attempt_at{};   ///< the last delivery
  time_point dead_lettered_at{};  ///< when it was parked
};

/// Which counts of a `queue_stats` the backend took from its own record of that state,
/// each on its own, and exactly. A count that is not exact is an estimate or is
/// derived from the others; the balance of guarantee 4 can be checked only when the
/// five counts that enter it are exact.
struct stats_exactness {
  bool accepted = false;       ///< `accepted` is a durable count of its own
  bool pending = false;        ///< `pending` is counted from the pending messages themselves
  bool processed = false;      ///< `processed` is counted from the processed messages (and what compaction removed)
  bool dead_lettered = false;  ///< `dead_lettered` is counted from the dead-letter store
  bool purged = false;         ///< `purged` is counted from the purged messages (and what compaction removed)

  /// All five exact: the balance can be checked.
  bool all() const noexcept { return accepted && pending && processed && dead_lettered && purged; }
};

/// Per-state counts (guarantee 4). Every accepted message is in exactly one of
/// processed, pending (waiting, leased, or waiting to be retried) and dead-lettered,
/// unless an operator purged it from the dead-letter store.
///
/// Each state is counted on its own, never derived from the others, where the backend
/// can count it; `exact` says which counts are. A message that vanished from the
/// backend (a row deleted behind the queue's back, a message purged from a stream)
/// then shows as a balance that does not add up, instead of as a processed message.
struct queue_stats {
  std::uint64_t accepted = 0;       ///< distinct messages durably accepted (duplicates not counted)
  std::uint64_t pending = 0;        ///< not yet processed: ready, leased or delayed
  std::uint64_t leased = 0;         ///< of pending: held by a consumer right now
  std::uint64_t retrying = 0;       ///< of pending: delivered at least once before
  std::uint64_t processed = 0;      ///< acknowledged after commit
  std::uint64_t dead_lettered = 0;  ///< in the dead-letter store now
  std::uint64_t purged = 0;         ///< removed from the dead-letter store by an operator
  stats_exactness exact{};          ///< which of the counts above are exact

  /// Whether the balance can be checked: every count that enters it is exact.
  bool balance_known() const noexcept { return exact.all(); }
  /// The invariant of guarantee 4: true only when every count is exact and they add
  /// up. False when they do not add up, and false when the backend cannot count every
  /// state exactly (see `balance_known()`): an estimate never claims a balance.
  bool balanced() const noexcept { return balance_known() && accepted == pending + processed + dead_lettered + purged; }
};

/// A durable queue: the single point where the producer and the consumers meet.
///
/// **Delivery guarantee.** At least once. A message is redelivered until it is acked
/// or dead-lettered; consumers make processing idempotent (idempotency_store.hpp).
///
/// **Publish.** Completes with a receipt only after the backend has made the message
/// durable (for a non-durable backend: stored in memory; see `features().durable`).
/// The backend stamps `accepted_at` (the postmark, see `envelope::accepted_at`) and keeps the
/// idempotency key: a publish whose key was already accepted completes with the
/// *original* receipt and `duplicate = true`, or with `errc::conflict` when the
/// payload fingerprint differs. A new message postmarked after its
/// `envelope::not_after` completes with `errc::deadline_passed` where the backend can
/// tell before storing it (`features().deadline_before_store`); the others store it and
/// its receipt shows the late postmark. A full backend completes with
/// `errc::queue_full`; a failed or unreachable one with an error: never with a
/// receipt it cannot honour.
///
/// **Fetch.** Completes as soon as at least one message is deliverable (up to `max`),
/// or with an empty batch once `wait` has elapsed. Each delivery is leased to the
/// caller for the backend's visibility timeout; an unsettled delivery whose lease
/// runs out becomes deliverable again with `attempts + 1`.
///
/// **Settle.** `ack` removes the message (call it only after the consumer's
/// transaction committed: guarantee 2); `retry` makes it deliverable again after
/// `delay`; `dead_letter` moves it, with reason, attempts and last error, to the
/// dead-letter store. Settling with a lease that has expired completes with
/// `errc::lease_expired` for the batch (the others are still settled) and leaves
/// that message to its redelivery.
///
/// **Threading.** Every operation may be started from any thread, concurrently.
/// Completion handlers run on their associated executor (by default the queue's),
/// never inside the initiating call.
///
/// **Cancellation.** Per-operation cancellation is not supported. `close()` completes
/// waiting fetches with an empty batch and `std::errc::operation_canceled`, and
/// makes later publishes and fetches complete with `errc::shutting_down`. Settle,
/// extend, stats and the dead-letter operations keep working after `close()`, so
/// that consumers can finish and settle the batches they hold (guarantee 8).
///
/// **Completion signatures.** Every `async_*` function takes any Asio completion
/// token (callback, `use_future`, `use_awaitable`, ...):
/// - publish: `void(error_code, receipt)`
/// - fetch: `void(error_code, std::vector<delivery>)`
/// - settle, extend: `void(error_code)`
/// - stats: `void(error_code, queue_stats)`
/// - dead_letters: `void(error_code, std::vector<dead_letter>)`
/// - replay, purge: `void(error_code, std::size_t)` (how many were moved/removed)
/// - find: `void(error_code, message_status)`
///
/// @code
/// auto r = co_await queue.async_publish(std::move(env), asio::use_awaitable);
/// @endcode
class durable_queue {
 public:
  /// Completions run here unless the handler has an associated executor.
  using executor_type = boost::asio::any_io_executor;
  /// Waits, delays and lease lengths.
  using duration = std::chrono::milliseconds;

  virtual ~durable_queue() = default;

  /// The executor on which completions run by default.
  virtual executor_type get_executor() const = 0;
  /// What this backend promises (see `queue_features`); constant for the object's life.
  virtual queue_features features() const = 0;
  /// Stops the queue: see "Cancellation". Idempotent, thread-safe.
  virtual void close() = 0;

  /// From now on, new messages get receipt ids signed by `signer` over their postmark
  /// and `envelope::receipt_claims` (receipt_signer.hpp), so that any process holding
  /// the key can answer for a receipt it never stored; null turns signing off. A
  /// repeated key still gets its original receipt, signed or not. Call before the
  /// first publish: it is not synchronised with publishes in flight. A backend that
  /// wraps another queue overrides it to pass the signer on as well.
  virtual void sign_receipts(std::shared_ptr<const receipt_signer> signer) { signer_ = std::move(signer); }

  /// Publishes one message; completes with its receipt once the backend made it durable
  /// (or with the original receipt for a repeated key). Signature `void(error_code, receipt)`.
  template <class Token>
  auto async_publish(envelope message, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, receipt)>(
        [this](auto handler, envelope m) {
          check_and_publish(std::move(m), detail::to_callback<error_code, receipt>(std::move(handler), get_executor()));
        },
        token, std::move(message));
  }

  /// Fetches up to `max` deliveries, waiting up to `wait` for the first one.
  /// Signature `void(error_code, std::vector<delivery>)`.
  template <class Token>
  auto async_fetch(std::size_t max, duration wait, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, std::vector<delivery>)>(
        [this](auto handler, std::size_t n, duration w) {
          do_fetch(n, w, detail::to_callback<error_code, std::vector<delivery>>(std::move(handler), get_executor()));
        },
        token, max, wait);
  }

  /// Acks, retries or dead-letters deliveries in hand. Signature `void(error_code)`.
  template <class Token>
  auto async_settle(std::vector<settlement> decisions, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        [this](auto handler, std::vector<settlement> d) {
          do_settle(std::move(d), detail::to_callback<error_code>(std::move(handler), get_executor()));
        },
        token, std::move(decisions));
  }

  /// Extends the leases of deliveries still in hand by `by` from now.
  template <class Token>
  auto async_extend(std::vector<std::string> tokens, duration by, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        [this](auto handler, std::vector<std::string> t, duration d) {
          do_extend(std::move(t), d, detail::to_callback<error_code>(std::move(handler), get_executor()));
        },
        token, std::move(tokens), by);
  }

  /// Per-state counts. Signature `void(error_code, queue_stats)`.
  template <class Token>
  auto async_stats(Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, queue_stats)>(
        [this](auto handler) {
          do_stats(detail::to_callback<error_code, queue_stats>(std::move(handler), get_executor()));
        },
        token);
  }

  /// Lists dead letters in receipt-id order, starting after `after_receipt_id` ("" for the start).
  template <class Token>
  auto async_dead_letters(std::string after_receipt_id, std::size_t limit, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, std::vector<dead_letter>)>(
        [this](auto handler, std::string after, std::size_t n) {
          do_dead_letters(
              std::move(after), n,
              detail::to_callback<error_code, std::vector<dead_letter>>(std::move(handler), get_executor()));
        },
        token, std::move(after_receipt_id), limit);
  }

  /// Moves dead letters back into the queue (attempts reset); empty list = all of them.
  template <class Token>
  auto async_replay(std::vector<std::string> receipt_ids, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, std::vector<std::string> ids) {
          do_replay(std::move(ids), detail::to_callback<error_code, std::size_t>(std::move(handler), get_executor()));
        },
        token, std::move(receipt_ids));
  }

  /// Looks an accepted message up by receipt id. Completes with `errc::not_found` when
  /// the backend does not know it (never accepted, or compacted after processing) and
  /// with `errc::not_supported` when the backend cannot look messages up
  /// (`features().lookup` is false).
  template <class Token>
  auto async_find(std::string receipt_id, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, message_status)>(
        [this](auto handler, std::string id) {
          do_find(std::move(id), detail::to_callback<error_code, message_status>(std::move(handler), get_executor()));
        },
        token, std::move(receipt_id));
  }

  /// Deletes dead letters for good (counted as `purged`); empty list = all of them.
  template <class Token>
  auto async_purge(std::vector<std::string> receipt_ids, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, std::size_t)>(
        [this](auto handler, std::vector<std::string> ids) {
          do_purge(std::move(ids), detail::to_callback<error_code, std::size_t>(std::move(handler), get_executor()));
        },
        token, std::move(receipt_ids));
  }

 protected:
  // The producer checks with prepare() before it takes an in-flight slot, calls
  // do_publish directly and handles the answer on the backend's thread.
  friend class producer;
  // A queue over several partitions hands each call on to the partition's hooks.
  friend class partitioned_queue;

  /// The type-erased completion a backend receives; call it exactly once, from any thread.
  template <class... Args>
  using callback = detail::callback<void(Args...)>;

  /// Backend hook of `async_publish`. The message has passed `validate_envelope`, and its
  /// fingerprint and receipt id are set; a backend answers a repeated key with the
  /// original receipt rather than this one. Right after it stamps a new message's
  /// `accepted_at`, it calls `sign_receipt(receipt_signing().get(), message)` (the
  /// conformance suite checks that the receipt then verifies).
  virtual void do_publish(envelope message, callback<error_code, receipt> done) = 0;
  /// Backend hook of `async_fetch`.
  virtual void do_fetch(std::size_t max, duration wait, callback<error_code, std::vector<delivery>> done) = 0;
  /// Backend hook of `async_settle`.
  virtual void do_settle(std::vector<settlement> decisions, callback<error_code> done) = 0;
  /// Backend hook of `async_extend`.
  virtual void do_extend(std::vector<std::string> tokens, duration by, callback<error_code> done) = 0;
  /// Backend hook of `async_stats`.
  virtual void do_stats(callback<error_code, queue_stats> done) = 0;
  /// Backend hook of `async_dead_letters`.
  virtual void do_dead_letters(std::string after, std::size_t limit,
                               callback<error_code, std::vector<dead_letter>> done) = 0;
  /// Backend hook of `async_replay`.
  virtual void do_replay(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) = 0;
  /// Backend hook of `async_purge`.
  virtual void do_purge(std::vector<std::string> receipt_ids, callback<error_code, std::size_t> done) = 0;
  /// Backends with `features().lookup` override this.
  virtual void do_find(std::string receipt_id, callback<error_code, message_status> done);

  /// The signer set by `sign_receipts` (null: none). A backend reads it in `do_publish`
  /// and calls `sign_receipt` right after it stamps a new message's `accepted_at`.
  const std::shared_ptr<const receipt_signer>& receipt_signing() const noexcept { return signer_; }
  /// Replaces `m.receipt_id` with one `signer` signs over `m.accepted_at` and
  /// `m.receipt_claims`; leaves it when `signer` is null, the claims are too long or
  /// signing fails.
  static void sign_receipt(const receipt_signer* signer, envelope& m) noexcept;

 private:
  /// The one check of every message on its way in, whichever way it comes
  /// (`async_publish` or a producer): `validate_envelope`, then the fingerprint and the
  /// receipt id filled in when the caller left them empty. Only a message that passed
  /// reaches `do_publish`, so a backend used directly has the same protection as one
  /// behind a producer.
  static error_code prepare(envelope& message);
  /// `prepare`, then `do_publish`; a refusal completes `done` at once.
  void check_and_publish(envelope message, callback<error_code, receipt> done);

  std::shared_ptr<const receipt_signer> signer_;
};

}  // namespace ingest
