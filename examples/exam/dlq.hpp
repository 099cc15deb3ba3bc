#pragma once
// The dead-letter command line, for every backend a queue URL can name:
//   exam_worker dlq list   [--after RECEIPT] [--limit N]
//   exam_worker dlq show   RECEIPT
//   exam_worker dlq replay RECEIPT... | --all
//   exam_worker dlq purge  RECEIPT... | --all

#include <CLI/CLI.hpp>
#include <iosfwd>
#include <string>
#include <vector>

#include "ingest/durable_queue.hpp"
#include "store.hpp"

namespace exam {

struct dlq_request {
  std::string action{};  // list | show | replay | purge
  std::vector<std::string> receipts{};
  bool all = false;
  std::string after{};
  std::size_t limit = 100;
};

// Adds `dlq` and its arguments to `cli`, filling `request`.
CLI::App* add_dlq_command(CLI::App& cli, dlq_request& request);

// Runs one action against `queue` (its executor must be running), writing a
// human-readable answer to `out`. Returns the exit code: 0 done, 1 nothing matched
// (show of an unknown receipt), 2 bad request or a queue error (written to `err`).
// With `notes` (the PostgreSQL sink), a replay or purge also removes the graders'
// notes of those dead letters, so that every server stops showing them dead-lettered.
int run_dlq(ingest::durable_queue& queue, const dlq_request& request, std::ostream& out, std::ostream& err,
            submission_reader* notes = nullptr);

}  // namespace exam
