#pragma once
/// @file
/// The PostgreSQL idempotency store: one table in the caller's database, written in
/// the caller's transaction.

#include <string>

#include "ingest/idempotency_store.hpp"
#include "ingest/postgres/connection.hpp"

namespace ingest::postgres {

/// Where the PostgreSQL idempotency store keeps its records.
struct idempotency_store_options {
  std::string table = "ingest_idempotency";  ///< letters, digits and '_' only
  bool create_table = true;  ///< `CREATE TABLE IF NOT EXISTS` when the store is made
  /// `record_many` tries one plain `INSERT` of the batch's keys first (see the class).
  /// False: always `ON CONFLICT DO NOTHING`, for servers where a unique-violation
  /// `ERROR` in the log (naming the key) is not wanted, or where round trips are dear.
  bool plain_insert_first = true;
};

/// `ingest::idempotency_store` on a PostgreSQL connection.
///
/// The table: `key text PRIMARY KEY, fingerprint text, state smallint, result text,
/// created_at bigint, completed_at bigint` (milliseconds since the epoch), with an
/// index on `created_at` for `prune`. All calls join the caller's open transaction on
/// `db` (READ COMMITTED, PostgreSQL's default; at REPEATABLE READ a key committed by
/// another transaction meanwhile is a serialization failure, which is transient).
///
/// **Across workers and machines.** Two transactions recording the same key at once
/// do not both win: the second waits on the first's row (the primary key) until the
/// first commits (then it finds the key `completed` or `in_progress`) or rolls back
/// (then the key is its own). `record_many` inserts its keys in sorted order, so two
/// batches that share keys never deadlock on them. When every key is new it costs one
/// plain `INSERT ... SELECT FROM unnest(...)` of binary arrays under a savepoint, when
/// a transaction is open (one index descent per key: `ON CONFLICT` would probe the
/// index first and then insert; the savepoint takes a subtransaction and two more
/// round trips). When a key was there (a redelivery, a key reused with another
/// payload, a key another transaction committed meanwhile), that statement fails with
/// a unique violation, which PostgreSQL logs as an `ERROR` naming the key; it is
/// rolled back to the savepoint, and the batch takes one `ON CONFLICT DO NOTHING
/// RETURNING` statement and one more to read the records of the keys that were there.
/// After such a failure the next 16 calls of the store go straight to `ON CONFLICT`
/// (redeliveries come in runs). Outside a transaction, and with `plain_insert_first =
/// false`, it always takes `ON CONFLICT`. When `record_many` throws inside a
/// transaction, roll the transaction back.
///
/// @code
/// ingest::postgres::idempotency_store keys(db);
/// ingest::postgres::transaction tx(db);
/// if (keys.record(key, fp, receipt).status == ingest::key_status::fresh) insert_row(db, ...);
/// tx.commit();
/// @endcode
class idempotency_store final : public ingest::idempotency_store {
 public:
  /// Binds to `db` (not owned; it must outlive the store) and, with `create_table`,
  /// creates the table if missing. Throws `ingest::error`.
  explicit idempotency_store(connection& db, idempotency_store_options options = {});

  key_check claim(std::string_view key, std::string_view fingerprint) override;
  void complete(std::string_view key, std::string_view result) override;
  key_check record(std::string_view key, std::string_view fingerprint, std::string_view result) override;
  std::vector<key_check> record_many(const std::vector<std::string>& keys, const std::vector<std::string>& fingerprints,
                                     const std::vector<std::string>& results) override;
  std::optional<idempotency_record> find(std::string_view key) override;
  std::size_t prune(time_point cutoff) override;

  /// The `CREATE TABLE IF NOT EXISTS` statements of the store's table, to run in a
  /// migration of your own. Throws `ingest::error` for a bad table name.
  static std::string schema(const std::string& table = "ingest_idempotency");
  /// Runs `schema(table)` on `db` under a transaction-scoped advisory lock, so that
  /// processes starting together on an empty database create the table once (two
  /// concurrent `CREATE TABLE IF NOT EXISTS` can fail on PostgreSQL). In the caller's
  /// transaction when one is open, else in its own. Throws `ingest::error`.
  static void create_table(connection& db, const std::string& table = "ingest_idempotency");

 private:
  key_check insert(std::string_view key, std::string_view fingerprint, std::string_view result, bool completed);
  // Inserts keys all expected new with one plain INSERT (one index descent per key,
  // where ON CONFLICT probes first); false, with nothing inserted, when one was there.
  bool insert_all_new(const param& keys, const param& fingerprints, const param& results, std::int64_t now,
                      std::size_t count);
  key_check compare(std::string_view fingerprint, int row, const result& found) const;

  connection& db_;
  std::string table_;
  bool plain_insert_first_ = true;
  int plain_insert_pause_ = 0;  // calls left that skip the plain insert
};

}  // namespace ingest::postgres
