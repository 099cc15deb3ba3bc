#pragma once
/// @file
/// A reconciliation that runs on a schedule in production, over a sliding window, and
/// raises an alert with the keys it finds wrong: the standing audit of guarantee 4.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ingest/reconciler.hpp"

namespace ingest {

/// When and how an `auditor` runs.
struct audit_options {
  std::chrono::seconds every{60};     ///< from the start of one run to the start of the next
  std::chrono::seconds lookback{3600};  ///< how much time each run covers
  /// The newest records left out of each run (still on their way from one side to the
  /// other): a run covers `[now - settle - lookback, now - settle)`.
  std::chrono::seconds settle{60};
  /// Paging, pacing, comparison and metrics of each run (`window`, `on_page` and
  /// `stop` are the auditor's own).
  reconcile_options compare{};
  /// Called after a run that found discrepancies, with them (the first
  /// `compare.max_reported`), on the auditor's thread. Must not throw.
  std::function<void(const reconcile_report&)> alert{};
  /// Called after every run (clean or not), on the auditor's thread. Must not throw.
  std::function<void(const reconcile_report&)> on_run{};

  /// Throws `ingest::error(errc::invalid_config)` when a value is out of range.
  void validate() const;
};

/// What an `auditor` has done.
struct audit_stats {
  std::uint64_t runs = 0;         ///< runs completed
  std::uint64_t alerts = 0;       ///< runs that found discrepancies
  std::uint64_t failed_runs = 0;  ///< runs a source's error ended (see `last_error`)
  std::optional<reconcile_report> last{};  ///< the last completed run's report
  std::string last_error{};       ///< the last failed run's error
};

/// Runs `reconcile(truth, copy)` every `audit_options::every` over a window ending
/// `settle` ago, on a thread of its own, and calls `alert` when a run finds keys
/// missing, extra or different. The sources are made afresh for each run by the
/// factories given (on the auditor's thread), so a connection lost between runs does
/// not end the audit; a run that fails is counted and the next one runs on time.
///
/// **Threading.** `start`, `stop`, `stats` and `run_once` are thread-safe; the
/// callbacks run on the auditor's thread (or `run_once`'s caller).
///
/// @code
/// ingest::auditor audit([] { return std::make_unique<ingest::sqlite::queue_records>("queue.db"); },
///                       [] { return make_sink_source(); },
///                       {.every = 5min, .lookback = 1h, .alert = page_the_on_call});
/// audit.start();
/// @endcode
class auditor {
 public:
  /// Makes a source for one run.
  using source_factory = std::function<std::unique_ptr<record_source>()>;

  /// Throws `ingest::error(errc::invalid_config)` for bad options.
  auditor(source_factory truth, source_factory copy, audit_options options = {});
  /// Stops (see `stop`).
  ~auditor();
  auditor(const auditor&) = delete;
  auditor& operator=(const auditor&) = delete;

  /// Starts the schedule; the first run starts at once. A second call does nothing.
  void start();
  /// Ends the schedule: a run in progress stops after its page in hand; returns once
  /// the thread has ended.
  void stop();
  /// One run now over the window ending `settle` before `now`, on the calling thread
  /// (throws what the sources throw; the callbacks are called as for scheduled runs).
  reconcile_report run_once(time_point now = clock::now());
  /// A snapshot of what the auditor has done.
  audit_stats stats() const;

 private:
  struct state;
  std::shared_ptr<state> state_;
};

}  // namespace ingest
