#pragma once
// An SQLite sink for pipeline tests: one `rows` table written through
// ingest::sqlite::transactional_handler, with a hook to inject failures.

#include <atomic>
#include <functional>
#include <mutex>

#include "ingest/sqlite/transactional_handler.hpp"
#include "support/test_support.hpp"

namespace ingest::test {

/// The one number `sql` answers in the SQLite file at `path` (a count, a pragma).
inline std::int64_t count_rows(const std::string& path, const char* sql) {
  sqlite::database db(path, {.create = false});
  sqlite::statement s(db, sql);
  s.step();
  return s.column_int(0);
}

class sqlite_sink {
 public:
  explicit sqlite_sink(const std::string& path) : db_(path), keys_(db_), insert_(prepare(db_)) {
    handler_ = sqlite::transactional_handler(db_, keys_, [this](sqlite::database&, const delivery& d) {
      if (on_write) on_write(d);
      insert(d);
    });
  }

  sqlite::database& db() { return db_; }
  sqlite::idempotency_store& keys() { return keys_; }
  /// Writes the row of `d` (inside the caller's transaction).
  void insert(const delivery& d) {
    insert_.bind(1, d.message.receipt_id).bind(2, d.message.idempotency_key).bind(3, d.message.payload);
    insert_.run();
  }

  /// Runs inside the transaction before each new row is written; may throw.
  std::function<void(const delivery&)> on_write;
  /// Runs after the handler returned (the commit is done); may throw to simulate a
  /// crash between commit and ack.
  std::function<void(const batch&)> after_commit;

  /// The batch handler; calls are serialised (one connection).
  batch_handler handler() {
    return [this](batch& b) {
      std::lock_guard lock(mutex_);
      ++calls_;
      for (const auto& item : b.items())
        if (item.message.attempts > 1) ++redelivered_;
      handler_(b);
      if (after_commit) after_commit(b);
    };
  }

  std::int64_t rows() { return scalar("SELECT count(*) FROM rows"); }
  std::int64_t distinct_receipts() { return scalar("SELECT count(DISTINCT receipt_id) FROM rows"); }
  std::int64_t rows_for(const std::string& key) {
    std::lock_guard lock(mutex_);
    sqlite::statement s(db_, "SELECT count(*) FROM rows WHERE key = ?1");
    s.bind(1, key);
    s.step();
    return s.column_int(0);
  }
  int calls() const { return calls_; }
  /// Deliveries handed to this sink that were not the first of their message.
  int redelivered() const { return redelivered_; }

 private:
  static sqlite::statement prepare(sqlite::database& db) {
    db.exec("CREATE TABLE IF NOT EXISTS rows(receipt_id TEXT NOT NULL, key TEXT NOT NULL, payload TEXT NOT NULL)");
    return sqlite::statement(db, "INSERT INTO rows(receipt_id, key, payload) VALUES (?1, ?2, ?3)");
  }
  std::int64_t scalar(const char* sql) {
    std::lock_guard lock(mutex_);
    sqlite::statement s(db_, sql);
    s.step();
    return s.column_int(0);
  }

  std::mutex mutex_;
  sqlite::database db_;
  sqlite::idempotency_store keys_;
  sqlite::statement insert_;
  batch_handler handler_;
  std::atomic<int> calls_{0};
  std::atomic<int> redelivered_{0};
};

}  // namespace ingest::test
