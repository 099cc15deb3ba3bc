#pragma once
/// @file
/// The message that travels through the pipeline, and the receipt a producer returns.

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

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
  time_point accepted_at{};       ///< when the backend durably accepted it (guarantee 7)
  std::uint32_t attempts = 0;     ///< deliveries so far, this one included
};

/// What a producer hands back once the backend durably acknowledged a message.
/// Plain value type.
///
/// @code
/// // {"receipt_id": "0190...", "accepted_at": "2026-11-22T10:00:00.123Z"}
/// body = fmt::format(R"({{"receipt_id":"{}","accepted_at":"{}"}})", r.id, ingest::format_time(r.accepted_at));
/// @endcode
struct receipt {
  std::string id{};  ///< the envelope's receipt_id
  std::string idempotency_key{};  ///< the key the receipt belongs to
  time_point accepted_at{};  ///< durable-accept time; deadlines are judged against it
  bool duplicate = false;    ///< true when the key was already accepted: this is the original receipt
};

/// A new time-ordered receipt id in UUIDv7 layout (48-bit Unix milliseconds, version 7,
/// random tail; monotonic within the process), as 36-character lower-case text.
/// Thread-safe. Time-ordered keys keep SQLite B-tree inserts at the right edge.
std::string make_receipt_id();

/// RFC 3339 UTC text with milliseconds, e.g. `2026-11-22T10:00:00.123Z`.
std::string format_time(time_point t);

/// Parses what `format_time` writes (also accepts 0-9 fraction digits). Throws
/// `ingest::error` (errc::invalid_config) on malformed text.
time_point parse_time(std::string_view text);

}  // namespace ingest
