#pragma once
/// @file
/// The message that travels through the pipeline, and the receipt a producer returns.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ingest/error.hpp"

namespace ingest {

/// The clock of accept times (wall clock: receipts are shown to people).
using clock = std::chrono::system_clock;
/// A point in time on `clock`.
using time_point = clock::time_point;

/// Application headers carried with a message (name, value), in order.
using header_list = std::vector<std::pair<std::string, std::string>>;

/// One accepted item.
///
/// Plain value type. `receipt_id`, `fingerprint` and `accepted_at` are filled in by the
/// producer and the backend; `attempts` by the backend on each delivery (1 on the first).
struct envelope {
  std::string receipt_id{};       ///< time-ordered id (UUIDv7 text), unique per accepted item
  std::string idempotency_key{};  ///< the client's key; one accepted item per key
  std::string subject{};          ///< routing subject / topic
  std::string payload{};          ///< opaque bytes
  header_list headers{};          ///< application headers
  std::string fingerprint{};      ///< hex SHA-256 of the payload (see fingerprint.hpp)
  /// The postmark (guarantee 7): when the backend took the message into its durable
  /// write, before the write completes. The embedded SQLite queue and the memory queue
  /// take it inside the transaction that stores the message; NATS and SQS just before
  /// the publish is sent. A receipt follows only once the message is durable, and a
  /// producer never answers later than its `publish_timeout` after the postmark: that
  /// is the bound from postmark to receipt.
  ///
  /// A write that outlives the bound is answered `errc::publish_timeout`, and may
  /// still become durable. On SQLite that is a commit whose fsync took longer than the
  /// producer's `publish_timeout`: its postmark stands, and a retry gets it. NATS and
  /// SQS stop sending at the queue's `publish_timeout` after the postmark, and a
  /// consumer trusts a postmark only when the broker's own store time (JetStream's
  /// timestamp, SQS's `SentTimestamp`) is within that `publish_timeout` plus one second
  /// of it; otherwise the broker's time is the accept time, for the delivery and for
  /// every later receipt of the key. This needs the publishing and the consuming
  /// processes to use the same `publish_timeout`, and the hosts' clocks to agree with
  /// the broker's within that second.
  time_point accepted_at{};
  std::uint32_t attempts = 0;  ///< deliveries so far, this one included
  /// Publish only, not stored: a new message whose postmark would fall after this is
  /// refused with `errc::deadline_passed`. Backends with
  /// `queue_features::deadline_before_store` refuse it before storing anything; the
  /// others store it and the producer refuses its receipt. A repeat of a key accepted
  /// in time still gets its receipt.
  time_point not_after = time_point::max();
  /// Publish only, not part of the wire format: what a signed receipt id vouches for, e.g. the owner's
  /// id (at most `receipt_signer::max_claims` bytes). When the queue signs receipts
  /// (`durable_queue::sign_receipts`), the backend replaces `receipt_id` with one signed
  /// over the postmark and these claims right after it stamps `accepted_at`; longer
  /// claims leave the id unsigned.
  std::string receipt_claims{};
};

/// What a producer hands back once the backend durably acknowledged a message.
/// Plain value type.
///
/// @code
/// // {"receipt_id": "0190...", "accepted_at": "2026-11-22T10:00:00.123Z"}
/// body = fmt::format(R"({{"receipt_id":"{}","accepted_at":"{}"}})", r.id, ingest::format_time(r.accepted_at));
/// @endcode
struct receipt {
  std::string id{};               ///< the envelope's receipt_id
  std::string idempotency_key{};  ///< the key the receipt belongs to
  time_point accepted_at{};       ///< the postmark (`envelope::accepted_at`); deadlines are judged against it
  bool duplicate = false;         ///< true when the key was already accepted: this is the original receipt
};

/// A new time-ordered receipt id in UUIDv7 layout (48-bit Unix milliseconds, version 7,
/// random tail; monotonic within the process), as 36-character lower-case text.
/// Thread-safe. Time-ordered keys keep SQLite B-tree inserts at the right edge.
std::string make_receipt_id();

/// The receipt id of a message another program published, which carries none:
/// derived from the broker's own identity of it, so that every delivery of the same
/// message gets the same id. UUIDv7 layout with `at` (the broker's store time) as its
/// time and the rest a hash of `source` (e.g. the stream's name) and `number` (e.g. the
/// stream sequence). Thread-safe.
std::string derived_receipt_id(time_point at, std::string_view source, std::uint64_t number);

/// RFC 3339 UTC text with milliseconds, e.g. `2026-11-22T10:00:00.123Z`.
std::string format_time(time_point t);

/// Converts microseconds since the Unix epoch (as stored by the backends) to a
/// `time_point`, clamped to the range `time_point` can hold (about ±292 years), so
/// that a damaged or foreign stored value cannot overflow the conversion.
time_point time_from_us(std::int64_t us) noexcept;

/// True when `name` can be an application header name on every backend: 1-255
/// characters of an HTTP token (RFC 9110 tchar: ASCII letters, digits and the
/// punctuation ! # $ % & ' * + - . ^ _ | ~ and the backquote), not starting with the
/// reserved prefixes `Ingest-` or `Nats-` (in any case).
bool valid_header_name(std::string_view name) noexcept;

/// True when `value` travels unchanged as a header value on every backend: no control
/// characters except tab (no CR, LF or NUL), and no space or tab at either end
/// (header parsers trim them). Bytes 0x80-0xFF are allowed.
bool valid_header_value(std::string_view value) noexcept;

struct envelope;

/// What every backend checks before accepting `message`: `errc::invalid_key` for an
/// idempotency key `valid_idempotency_key` refuses; `errc::invalid_header` for a
/// header name or value refused by `valid_header_name` / `valid_header_value`, or a
/// subject, receipt id or fingerprint that is not a valid header value. Empty result
/// when the message is publishable.
error_code validate_envelope(const envelope& message) noexcept;

/// Parses what `format_time` writes (also accepts 0-9 fraction digits). Throws
/// `ingest::error` (errc::invalid_config) on malformed text.
time_point parse_time(std::string_view text);

}  // namespace ingest
