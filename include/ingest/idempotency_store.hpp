#pragma once
/// @file
/// The record that makes processing idempotent: key + payload fingerprint + result,
/// written in the same transaction as the business write (guarantee 3).

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/envelope.hpp"

namespace ingest {

/// What a key lookup found.
enum class key_status {
  fresh,        ///< unseen: the caller owns it now (recorded in its transaction)
  completed,    ///< already done: `result` holds the original result; write nothing
  in_progress,  ///< claimed by another request that has not completed yet
  conflict,     ///< known with another payload fingerprint: refuse, never overwrite
};

/// The answer of a key lookup.
struct key_check {
  key_status status = key_status::fresh;  ///< what was found
  std::string result{};  ///< the stored result when `completed`
};

/// One stored key, as `find` returns it.
struct idempotency_record {
  std::string key{};  ///< the idempotency key
  std::string fingerprint{};  ///< hex SHA-256 of the payload it was first seen with
  bool completed = false;  ///< true once its write committed
  std::string result{};  ///< what the first request produced (e.g. the receipt id of the row)
  time_point created_at{};  ///< when it was claimed
  time_point completed_at{};  ///< when it completed
};

/// An idempotency store bound to a database connection.
///
/// **Transactions.** Every call runs on the store's connection *inside the caller's
/// open transaction*: the key record commits or rolls back together with the
/// business rows. The store never begins or commits a transaction itself. So a
/// redelivery after a crash between commit and ack finds the key `completed` and
/// writes nothing, and a crash before commit leaves no key behind.
///
/// **Ownership.** Implementations refer to a connection they do not own.
///
/// **Threading.** Not thread-safe; one store per connection, used by one thread at a
/// time (like the connection). Calls are synchronous (no completion handlers, nothing
/// to cancel): they run inside the caller's transaction.
///
/// @code
/// switch (keys.claim(key, fingerprint).status) {
///   case ingest::key_status::fresh:     write_row(); keys.complete(key, receipt_id); break;
///   case ingest::key_status::completed: break;                 // a repeat: write nothing
///   case ingest::key_status::conflict:  throw rejected(422);   // same key, other payload
///   case ingest::key_status::in_progress: throw busy(409);
/// }
/// @endcode
class idempotency_store {
 public:
  virtual ~idempotency_store() = default;

  /// Claims `key` as in-progress when fresh; otherwise reports what is there.
  virtual key_check claim(std::string_view key, std::string_view fingerprint) = 0;
  /// Marks a claimed key completed with `result`. Throws `ingest::error(errc::not_found)` if unclaimed.
  virtual void complete(std::string_view key, std::string_view result) = 0;
  /// Claim and complete in one step, for writes that finish in the same transaction
  /// (the batch consumer's case). On `fresh`, the record is written completed with `result`.
  virtual key_check record(std::string_view key, std::string_view fingerprint, std::string_view result) = 0;
  /// `record` for many keys at once; the answer for keys[i] is at [i]. A key repeated
  /// within the call is `completed` (or `conflict`) after its first occurrence.
  virtual std::vector<key_check> record_many(const std::vector<std::string>& keys,
                                             const std::vector<std::string>& fingerprints,
                                             const std::vector<std::string>& results) = 0;
  /// The stored record of `key`, if any (for inspection; decisions use claim/record).
  virtual std::optional<idempotency_record> find(std::string_view key) = 0;
  /// Deletes completed records created before `cutoff` (the TTL); returns how many.
  virtual std::size_t prune(time_point cutoff) = 0;
};

}  // namespace ingest
