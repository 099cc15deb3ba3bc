#pragma once
// The standing audit of guarantee 4 on the embedded queue (exam_worker audit): every
// receipt the queue accepted in a window is processed (its row is in the sink: a
// submissions row, or a queue_copies row for a dual-write copy), pending, or
// dead-lettered (or purged by an operator); anything else raises an alert naming the
// receipt ids. A row whose body differs from what was accepted is reported too.
//   exam_worker audit [--lookback 1h] [--settle 1m] [--every 5m] [--once]

#include <iosfwd>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "ingest/reconciler.hpp"

namespace exam {

struct audit_request {
  std::string lookback = "1h";  // how far back each run looks
  std::string settle = "1m";    // the newest receipts left to the next run
  std::string every = "5m";     // between runs
  bool once = false;            // one run, then exit 0 (clean) or 1 (alert)
};

// Adds `audit` and its options to `cli`, filling `request`.
CLI::App* add_audit_command(CLI::App& cli, audit_request& request);

// Where each receipt of the queue at `queue_path` (an embedded queue file) stands, as
// the copy side of the audit: a record when the receipt is accounted for (detail:
// processed, pending, dead_lettered or purged), none when it is not.
std::unique_ptr<ingest::record_source> open_accounted(const std::string& queue_path, const std::string& sink);

// Runs the audit: once, or on its schedule until SIGINT/SIGTERM; reports on `out`,
// alerts as JSON lines on `err`. Returns the exit code (2: bad request or error).
int run_audit(const std::string& queue_url, const std::string& sink, const audit_request& request, std::ostream& out,
              std::ostream& err);

}  // namespace exam
