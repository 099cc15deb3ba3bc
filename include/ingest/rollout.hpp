#pragma once
/// @file
/// Moving authority from a synchronous write path to the queue, a share of principals
/// at a time, with a switch that moves them back in one call.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "ingest/metrics.hpp"

namespace ingest {

/// Which write path is authoritative for a submission.
enum class write_path {
  direct,  ///< the application's own synchronous write (the path being retired)
  queue,   ///< a `producer` publish, processed later by a consumer
};

/// "direct" or "queue".
std::string_view to_string(write_path p) noexcept;

/// How a `rollout` routes.
struct rollout_options {
  /// Share of principals whose submissions the queue path takes: 0 to 100, in steps
  /// of 0.01 (finer values are rounded down).
  double queue_percent = 0;
  /// How long a key keeps the path it was first routed to: a retry of the same key
  /// within this time takes that path even when the percentage has moved past its
  /// principal since. Zero: no pins (every call decides from the percentage).
  std::chrono::seconds pin_for{std::chrono::minutes(30)};
  /// Most keys pinned at once; past it the oldest pin goes first.
  std::size_t max_pins = 1'000'000;

  /// Throws `ingest::error(errc::invalid_config)` when a value is out of range.
  void validate() const;
};

/// Counters of one `rollout`.
struct rollout_stats {
  std::uint64_t routed_direct = 0;  ///< `route` answers `direct`
  std::uint64_t routed_queue = 0;   ///< `route` answers `queue`
  std::uint64_t pinned_answers = 0; ///< answers that came from a pin and differ from the percentage now
  std::size_t pins = 0;             ///< keys pinned now
};

/// Decides per principal which write path is authoritative, by a stable hash of the
/// principal: `bucket(principal) < queue_percent * 100` goes to the queue. A principal
/// stays on its path while the percentage does not cross its bucket; raising the
/// percentage only moves principals from direct to queue, lowering it only back.
///
/// The bucket is the first 8 bytes of SHA-256(principal), read big-endian, modulo
/// 10,000, so a program in another language routes the same principal the same way.
///
/// **Pins.** `route(principal, key)` remembers the answer for `key` for
/// `rollout_options::pin_for`, so a retry of a submission follows its first attempt
/// even when the percentage moved in between. Pins live in this object: with several
/// servers, a retry that reaches another server after the percentage moved across its
/// principal takes that server's answer.
///
/// **Metrics.** `metrics(path)` is one `pipeline_metrics` per path, for the caller to
/// record each path's accepts, rejections, latency and dead letters in (for instance as
/// the producer's `producer_options::metrics` on the queue path).
///
/// **Threading.** Thread-safe: `set_queue_percent` may run while requests are routed;
/// calls after it returns see the new percentage.
class rollout {
 public:
  /// Throws `ingest::error(errc::invalid_config)` for bad options.
  explicit rollout(rollout_options options = {});
  ~rollout();
  rollout(const rollout&) = delete;
  rollout& operator=(const rollout&) = delete;

  /// The path for a submission of `principal` identified by `key` (its idempotency
  /// key, or any string naming that submission; empty: not pinned).
  write_path route(std::string_view principal, std::string_view key = {});

  /// The path the percentage alone gives `principal` (no pin read or written).
  write_path path_of(std::string_view principal) const noexcept;

  /// Sets the share of principals on the queue path (0-100). Throws
  /// `ingest::error(errc::invalid_config)` outside that range.
  void set_queue_percent(double percent);
  /// The share now (rounded down to 0.01).
  double queue_percent() const noexcept;

  /// Forgets every pin: the next call for each key follows the percentage.
  void clear_pins();

  /// `principal`'s bucket, 0 to 9,999.
  static std::uint32_t bucket(std::string_view principal) noexcept;

  /// The metrics of one path (never null; the same instance on every call).
  std::shared_ptr<pipeline_metrics> metrics(write_path p) const noexcept;

  /// A snapshot of the counters.
  rollout_stats stats() const;

 private:
  struct state;
  std::unique_ptr<state> state_;
};

/// Prometheus text of a rollout: `<prefix>queue_percent` (gauge),
/// `<prefix>routed_total{path=...}`, `<prefix>pins`, and each path's
/// `pipeline_metrics` with `path_<name>_` after the prefix.
std::string to_prometheus(const rollout& r, std::string_view prefix = "ingest_rollout_");

}  // namespace ingest
