#pragma once
/// @file
/// The SQLite idempotency store: one table in the caller's database.

#include <memory>

#include "ingest/idempotency_store.hpp"
#include "ingest/sqlite/database.hpp"

namespace ingest::sqlite {

/// Where the SQLite idempotency store keeps its records.
struct idempotency_store_options {
  std::string table = "ingest_idempotency";  ///< letters, digits and '_' only
};

/// `ingest::idempotency_store` on an SQLite connection.
///
/// Creates its table (`key TEXT PRIMARY KEY, fingerprint, state, result, created_at,
/// completed_at`, WITHOUT ROWID) if missing. All calls join the caller's transaction
/// on `db`; the store keeps prepared statements, so it must not outlive `db`.
///
/// @code
/// ingest::sqlite::idempotency_store keys(db);
/// ingest::sqlite::transaction tx(db);
/// if (keys.record(key, fp, receipt).status == ingest::key_status::fresh) insert_row(db, ...);
/// tx.commit();
/// @endcode
class idempotency_store final : public ingest::idempotency_store {
 public:
  /// Binds to `db` (not owned; it must outlive the store) and creates the table if
  /// missing. Throws `ingest::error`.
  explicit idempotency_store(database& db, idempotency_store_options options = {});
  ~idempotency_store() override;

  key_check claim(std::string_view key, std::string_view fingerprint) override;
  void complete(std::string_view key, std::string_view result) override;
  key_check record(std::string_view key, std::string_view fingerprint, std::string_view result) override;
  std::vector<key_check> record_many(const std::vector<std::string>& keys, const std::vector<std::string>& fingerprints,
                                     const std::vector<std::string>& results) override;
  std::optional<idempotency_record> find(std::string_view key) override;
  std::size_t prune(time_point cutoff) override;

 private:
  key_check insert(std::string_view key, std::string_view fingerprint, std::string_view result, bool completed);

  struct statements;
  database& db_;
  std::unique_ptr<statements> stmts_;
};

}  // namespace ingest::sqlite
