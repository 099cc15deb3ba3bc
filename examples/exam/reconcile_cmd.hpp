#pragma once
// The reconcile command line, comparing the direct path's rows with what the queued
// path produced (dual write, ledger.hpp):
//   exam_worker reconcile --since T [--until T] [--page N] [--rate N] [--show N]
//                         [--state FILE] [--resend]

#include <iosfwd>
#include <string>

#include <CLI/CLI.hpp>

#include "ingest/durable_queue.hpp"

namespace exam {

struct reconcile_request {
  std::string since{};  // RFC 3339, or a span back from now: 90s, 30m, 2h, 1d
  std::string until{};  // the same; empty: now
  std::size_t page = 500;
  double rate = 0;        // records read per second (0: no limit)
  std::size_t show = 20;  // keys listed per kind
  std::string state{};    // a file saving the progress; a run finding it resumes from it
  bool resend = false;    // re-send the missing copies from the submissions rows
};

// Adds `reconcile` and its options to `cli`, filling `request`.
CLI::App* add_reconcile_command(CLI::App& cli, reconcile_request& request);

// Reconciles `sink`'s submissions with its queue_copies over the window and writes
// the report to `out`; with `request.resend`, publishes each missing copy again to
// `queue` (its executor must be running) from the submissions row. Returns the exit
// code: 0 clean, 1 discrepancies found (re-sent ones included: run again once the
// workers took them), 2 bad request or an error (written to `err`).
int run_reconcile(const std::string& sink, ingest::durable_queue* queue, const reconcile_request& request,
                  std::ostream& out, std::ostream& err);

// The instant `text` names: RFC 3339, or "<n>s|m|h|d" before `now`. Throws
// ingest::error(errc::invalid_config) otherwise.
ingest::time_point parse_instant(const std::string& text, ingest::time_point now);

}  // namespace exam
