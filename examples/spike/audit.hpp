#pragma once
// The database side: exam.db, when --db names it, watched while the flood runs and until
// it has drained, then audited against the receipts: every receipt exactly once, no row
// without a receipt.

#include <atomic>
#include <boost/asio/ip/tcp.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ingest/postgres/connection.hpp"
#include "ingest/sqlite/database.hpp"
#include "results.hpp"
#include "settings.hpp"

namespace spike {

// Counts this run's rows (keys starting with the run's prefix) as they arrive. Each
// count reads only the rows added since the previous one: exam.db never deletes, and
// its writers commit one at a time, so rowids only grow. Scanning the whole table
// every 100 ms took the load generator ever more CPU as the table grew.
class row_counter {
 public:
  row_counter(ingest::sqlite::database& db, const std::string& prefix);

  std::int64_t total();

 private:
  std::string prefix_, end_;
  ingest::sqlite::statement count_;
  std::int64_t last_rowid_ = 0, total_ = 0;
};

// This run's rows (key, receipt id) in the submissions database: exam.db or PostgreSQL.
class row_source {
 public:
  virtual ~row_source() = default;
  virtual std::int64_t count() = 0;  // this run's rows so far
  virtual std::vector<std::pair<std::string, std::string>> rows() = 0;
};

struct audit_result {
  std::int64_t rows = 0;
  std::int64_t receipts = 0;
  std::int64_t lost = 0;             // receipts with no row that the server does not know either
  std::int64_t pending = 0;          // receipts with no row yet: still queued or retrying
  std::int64_t dead_lettered = 0;    // receipts parked in the dead-letter store
  std::vector<std::string> missing;  // receipts with no row
  std::int64_t duplicated = 0;       // keys with more than one row, or one key with two receipts
  std::int64_t unreceipted = 0;      // rows whose receipt the client never saw
};

// The submissions database as one run sees it; without `open()` every step does nothing.
class db_watch {
 public:
  // Opens exam.db read-only (or connects to the postgresql:// URL) and counts this run's
  // rows already there; throws when it cannot.
  void open(const std::string& path, const std::string& prefix);
  bool opened() const { return source_ != nullptr; }

  // exam.db sampled every 100 ms, on a thread of its own, from `results::t0` while the
  // flood runs and until it has drained.
  void start(const settings& s, results& r);
  // The flood is over: returns once exam.db has drained or --drain-timeout has passed.
  void stop();

  std::int64_t rows_now() const { return rows_now_.load(); }             // -1: not sampled
  const std::vector<std::int64_t>& written() const { return written_; }  // rows so far, every 100 ms
  double drain_seconds() const { return drain_seconds_; }                // from the last accept; -1: not drained

  // Every receipt against the rows; a receipt with no row is looked up on the server.
  audit_result audit(const settings& s, results& r, const boost::asio::ip::tcp::endpoint& ep);

 private:
  void watch(const settings& s, results& r);

  std::unique_ptr<row_source> source_;
  std::string prefix_;
  std::int64_t rows_before_ = 0;
  std::vector<std::int64_t> written_;
  std::atomic<std::int64_t> rows_now_{-1};
  std::atomic<bool> flood_done_{false};
  std::thread watcher_;
  double drain_seconds_ = -1;
};

}  // namespace spike
