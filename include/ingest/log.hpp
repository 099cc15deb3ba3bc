#pragma once
/// @file
/// Structured events of the pipeline, with the receipt id as the correlation key: the
/// producer's `accepted` event and the consumer's `processed`, `retry` and
/// `dead_lettered` events of one submission carry the same `receipt_id`.

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string_view>

namespace ingest {

/// How much an event matters; a `logger` drops what is below its level.
enum class log_level { debug, info, warning, error };

/// One event. The views are valid during `logger::write` only. Payloads are never
/// logged (they may hold personal data); keys and receipt ids are.
struct log_event {
  log_level level = log_level::info;  ///< how much it matters
  std::string_view component{};        ///< "producer" or "consumer"
  std::string_view event{};            ///< see below
  std::string_view receipt_id{};       ///< the correlation key (empty when none was issued)
  std::string_view idempotency_key{};  ///< the client's key, as the queue knows it
  std::string_view detail{};           ///< error text, dead-letter reason
  std::uint32_t attempts = 0;          ///< deliveries so far (consumer events)
};
// Events: producer `accepted` (info), `duplicate` (info: the original receipt was
// returned), `rejected` (info for retry-later refusals, warning otherwise); consumer
// `processed` (debug), `retry` (warning), `dead_lettered` (error), `settle_failed`
// (warning: the items come back after their lease).

/// Where events go. `write` is called on the thread that made the event, possibly
/// several at once: implementations are thread-safe, quick and never throw.
class logger {
 public:
  virtual ~logger() = default;
  /// Events below this level are not even formatted.
  virtual bool enabled(log_level level) const noexcept = 0;
  /// Writes one event; must not throw or block for long (it runs on the accept and drain paths).
  virtual void write(const log_event& event) noexcept = 0;
};

/// One JSON object per line on `out` (not closed), with an RFC 3339 UTC `ts` and
/// the event's fields, for events at `min_level` or above. Thread-safe.
///
/// @code
/// auto log = ingest::json_lines_logger(stderr, ingest::log_level::info);
/// ingest::producer producer(queue, {.log = log});
/// // {"ts":"2026-11-23T10:00:00.123Z","level":"info","component":"producer","event":"accepted",
/// //  "receipt_id":"01a2...","key":"exam/s1/k1"}
/// @endcode
std::shared_ptr<logger> json_lines_logger(std::FILE* out, log_level min_level = log_level::info);

/// `debug`, `info`, `warning` (or `warn`), `error`; throws `ingest::error(errc::invalid_config)` otherwise.
log_level parse_log_level(std::string_view text);

}  // namespace ingest
