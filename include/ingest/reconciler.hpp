#pragma once
/// @file
/// Reconciliation: compares the records of a source of truth with a copy made by
/// another path (the queued path beside a synchronous one, or the sink beside the
/// queue's own records), by key, over a time window, and reports what differs.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <vector>

#include "ingest/envelope.hpp"
#include "ingest/metrics.hpp"

namespace ingest {

/// One record as a reconciler sees it.
struct reconcile_record {
  std::string key{};          ///< unique within its source (e.g. the idempotency key)
  std::string fingerprint{};  ///< what the default comparison compares (e.g. `fingerprint(payload)`)
  time_point at{};            ///< when its source made it (what the window selects on)
  std::string detail{};       ///< anything a caller's comparison or report needs (optional)
};

/// Records made in `[from, until)`.
struct reconcile_window {
  time_point from{};                   ///< first instant included
  time_point until = time_point::max();  ///< first instant after the window
};

/// One side of a reconciliation. Called from one thread at a time.
class record_source {
 public:
  virtual ~record_source() = default;
  /// Up to `limit` records made within `window` whose keys come after `after` (the
  /// empty string: from the first), in the source's key order; fewer than `limit` only
  /// at the end. The order must be total and stable (e.g. bytewise, `COLLATE "C"`).
  virtual std::vector<reconcile_record> page(const reconcile_window& window, std::string_view after,
                                             std::size_t limit) = 0;
  /// The records with these keys, made at any time; keys it does not have are left
  /// out; any order.
  virtual std::vector<reconcile_record> find(std::span<const std::string> keys) = 0;
};

/// What a reconciliation found wrong with one key.
enum class discrepancy_kind {
  missing,    ///< in the source of truth (within the window), not in the copy at all
  extra,      ///< in the copy (within the window), not in the source of truth at all
  different,  ///< in both, and the comparison says they differ
};

/// "missing", "extra" or "different".
std::string_view to_string(discrepancy_kind k) noexcept;

/// One key that differs, with what each side holds.
struct discrepancy {
  discrepancy_kind kind = discrepancy_kind::missing;  ///< what is wrong
  std::string key{};                                  ///< the record's key
  std::optional<reconcile_record> truth{};            ///< the source of truth's record (none when extra)
  std::optional<reconcile_record> copy{};             ///< the copy's record (none when missing)
};

/// Where a reconciliation stands: pass 0 walks the source of truth, pass 1 the copy,
/// pass 2 is the end. `after` is the last key done in the current pass.
struct reconcile_cursor {
  int pass = 0;         ///< 0, 1 or 2 (done)
  std::string after{};  ///< the last key done in `pass`

  /// `"<pass>:<after>"`, for saving between runs.
  std::string to_string() const;
  /// Reads what `to_string` wrote; nullopt for anything else.
  static std::optional<reconcile_cursor> parse(std::string_view text);
  /// Same pass, same key.
  bool operator==(const reconcile_cursor&) const = default;
};

/// Live counters of reconciliations (share one instance between runs for totals).
struct reconcile_metrics {
  counter checked;      ///< records of the source of truth compared
  counter copies_checked;  ///< records of the copy looked up in the source of truth
  counter missing;      ///< keys found missing from the copy
  counter extra;        ///< keys found extra in the copy
  counter different;    ///< keys found different
  counter pages;        ///< pages read (from either side)
};

/// Prometheus text of `m`: `<prefix>checked_total`, `<prefix>copies_checked_total`,
/// `<prefix>discrepancies_total{kind=...}`, `<prefix>pages_total`.
std::string to_prometheus(const reconcile_metrics& m, std::string_view prefix = "ingest_reconcile_");

struct reconcile_report;

/// How `reconcile` reads and compares.
struct reconcile_options {
  reconcile_window window{};  ///< which records count (each side's own time)
  std::size_t page_size = 500;  ///< records per page read
  /// Records read per second from both sides together, at most (0: no limit), so a
  /// reconciliation can run against a live database.
  double max_records_per_second = 0;
  /// Discrepancies kept in `reconcile_report::found`; the counts are always exact.
  std::size_t max_reported = 1000;
  /// Whether to walk the copy for records the source of truth lacks (pass 1). Off for
  /// a copy that may rightly hold more (e.g. a sink also written by another path):
  /// only missing and different keys are then looked for.
  bool find_extra = true;
  /// Whether two records of one key agree (default: equal fingerprints).
  std::function<bool(const reconcile_record& truth, const reconcile_record& copy)> same{};
  /// Called for every discrepancy as it is found (e.g. an alert hook).
  std::function<void(const discrepancy&)> on_discrepancy{};
  /// Called after each page with the report so far: save `report.next` (and the
  /// counts) to resume after a crash.
  std::function<void(const reconcile_report&)> on_page{};
  /// Where to count (optional).
  std::shared_ptr<reconcile_metrics> metrics{};
  /// A stop request ends the run after the page in hand, or at once while it waits for
  /// its turn under `max_records_per_second` (`report.complete` false).
  std::stop_token stop{};

  /// Throws `ingest::error(errc::invalid_config)` when a value is out of range.
  void validate() const;
};

/// What a reconciliation found. Resume a stopped run by passing its report back in.
struct reconcile_report {
  std::uint64_t checked = 0;         ///< records of the source of truth compared
  std::uint64_t copies_checked = 0;  ///< records of the copy looked up
  std::uint64_t matched = 0;         ///< records of the source of truth the copy agrees with
  std::uint64_t missing = 0;         ///< keys missing from the copy
  std::uint64_t extra = 0;           ///< keys extra in the copy
  std::uint64_t different = 0;       ///< keys that differ
  std::vector<discrepancy> found{};  ///< the first `max_reported` discrepancies
  reconcile_cursor next{};           ///< where the run goes on
  bool complete = false;             ///< both passes ran to their end

  /// Complete, and nothing missing, extra or different.
  bool clean() const noexcept { return complete && missing == 0 && extra == 0 && different == 0; }
};

/// Compares `truth` with `copy` over `options.window`: every record of the source of
/// truth in the window is looked up in the copy (missing, different or matched), then
/// every record of the copy in the window is looked up in the source of truth (extra
/// when it has no record of that key at all). Each side's window is applied to its own
/// times, and lookups ignore time, so a copy made a little after its original is not
/// reported for falling on the other side of a window's edge.
///
/// Blocking: runs on the calling thread, reading page by page, paced by
/// `max_records_per_second`. `start` resumes a stopped run (its counts go on). Throws
/// what the sources throw, and `ingest::error(errc::invalid_config)` for bad options
/// or a source whose page does not advance.
reconcile_report reconcile(record_source& truth, record_source& copy, const reconcile_options& options,
                           reconcile_report start = {});

}  // namespace ingest
