#pragma once
/// @file
/// Dual write: a synchronous write path stays the source of truth, and every write it
/// makes is also published to the queue, without ever failing or slowing the user's
/// request for the queue's sake.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "ingest/producer.hpp"

namespace ingest {

/// A write the source of truth made that the queue did not get as it is: re-send it
/// from the source of truth (`shadow_producer::async_resend`), or let a reconciler
/// find it (reconciler.hpp).
struct shadow_gap {
  std::string idempotency_key;  ///< the key of the write
  std::string subject;          ///< its subject as published (empty: the producer's default)
  /// Why: the publish's error (`is_retry_later` ones are worth re-sending as they are),
  /// `errc::backpressure` when `shadow_options::max_pending` publishes were waiting,
  /// `errc::shutting_down` after `async_drain`, `errc::conflict` when the queue holds
  /// the key with another payload (the copies differ; re-sending does not help).
  error_code error;
};

/// How a `shadow_producer` bounds its publishes and reports its gaps.
struct shadow_options {
  /// Shadow publishes awaiting their ack at once; past it a write is not published
  /// (a gap with `errc::backpressure`) rather than queued in memory.
  std::size_t max_pending = 4096;
  /// Called once per gap, on the producer's executor or the caller's thread; must be
  /// quick and must not throw (e.g. append to a re-send list).
  std::function<void(const shadow_gap&)> on_gap{};
  /// `shadow_gap` events (warning) go here (optional).
  std::shared_ptr<logger> log{};

  /// Throws `ingest::error(errc::invalid_config)` when a value is out of range.
  void validate() const;
};

/// Shadow publish counters; each outcome counted when it happens, none derived.
struct shadow_stats {
  std::uint64_t sent = 0;       ///< new in the queue
  std::uint64_t repeats = 0;    ///< the queue had the key with this payload already (or it was in flight)
  std::uint64_t failed = 0;     ///< the publish failed: a gap
  std::uint64_t conflicts = 0;  ///< the queue had the key with another payload: a gap
  std::uint64_t skipped = 0;    ///< not published (max_pending reached, or draining): a gap
  std::uint64_t resent = 0;     ///< `async_resend` calls that ended with the key in the queue
  std::size_t pending = 0;      ///< shadow publishes awaiting their ack now
};

/// Publishes copies of the writes a synchronous path already committed.
///
/// `publish` returns at once: the copy goes to the producer in the background, and its
/// outcome is only counted (a failure is a gap, reported to `shadow_options::on_gap`).
/// The caller's request never waits for the queue and never fails because of it.
/// `async_resend` publishes a copy and reports the outcome, for re-sending gaps from
/// the source of truth later (the same key: a copy that did arrive is a repeat).
///
/// **Ownership.** Refers to the producer (not owned; it must outlive this object).
///
/// **Threading.** Thread-safe.
///
/// @code
/// db.insert_and_commit(row);                     // the source of truth
/// shadow.publish({.idempotency_key = row.key, .payload = row.json()});
/// return answer(201, row.receipt);               // never waits for the queue
/// @endcode
class shadow_producer {
 public:
  /// Throws `ingest::error(errc::invalid_config)` for bad options.
  explicit shadow_producer(producer& target, shadow_options options = {});
  ~shadow_producer();
  shadow_producer(const shadow_producer&) = delete;
  shadow_producer& operator=(const shadow_producer&) = delete;

  /// Publishes a copy of a committed write in the background. Does not throw for the
  /// queue's sake (only `std::bad_alloc`).
  void publish(submission item);

  /// Publishes a copy and completes with the queue's receipt: `void(error_code,
  /// receipt)`; a repeat completes with the original receipt, like the producer.
  template <class Token>
  auto async_resend(submission item, Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code, receipt)>(
        [this](auto handler, submission s) {
          do_resend(std::move(s),
                    detail::to_callback<error_code, receipt>(std::move(handler), target_.get_executor()));
        },
        token, std::move(item));
  }

  /// Stops publishing (later copies are gaps with `errc::shutting_down`) and completes
  /// once every pending copy has its outcome: `void(error_code)`.
  template <class Token>
  auto async_drain(Token&& token) {
    return boost::asio::async_initiate<Token, void(error_code)>(
        [this](auto handler) {
          do_drain(detail::to_callback<error_code>(std::move(handler), target_.get_executor()));
        },
        token);
  }

  /// A snapshot of the counters.
  shadow_stats stats() const;

 private:
  void do_resend(submission item, detail::callback<void(error_code, receipt)> done);
  void do_drain(detail::callback<void(error_code)> done);

  producer& target_;
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace ingest
