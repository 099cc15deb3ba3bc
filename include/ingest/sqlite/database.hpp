#pragma once
/// @file
/// A small owning wrapper over one SQLite connection: open with the durability
/// settings the library relies on, prepared statements, RAII transactions.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

struct sqlite3;
struct sqlite3_stmt;

namespace ingest::sqlite {

struct database_options {
  bool create = true;  ///< create the file if missing
  bool read_only = false;
  bool wal = true;               ///< journal_mode=WAL
  bool synchronous_full = true;  ///< synchronous=FULL: a commit is on disk when it returns
  std::chrono::milliseconds busy_timeout{std::chrono::seconds(5)};
};

/// Error category of SQLite result codes (name "sqlite"); values are extended result codes.
const std::error_category& sqlite_category() noexcept;

/// One connection. Move-only; not thread-safe (one thread at a time).
///
/// Errors throw `ingest::error` whose code is in `sqlite_category()` and whose text
/// carries SQLite's message and the statement.
///
/// @code
/// ingest::sqlite::database db("sink.db");
/// ingest::sqlite::transaction tx(db);
/// db.exec("INSERT INTO t VALUES (1)");
/// tx.commit();
/// @endcode
class database {
 public:
  explicit database(const std::string& path, database_options options = {});
  database(database&&) noexcept = default;
  database& operator=(database&&) noexcept = default;
  ~database();

  /// Runs one or more statements without results.
  void exec(std::string_view sql);
  /// Rows changed by the last statement.
  std::int64_t changes() const noexcept;
  /// Rowid of the last row inserted on this connection.
  std::int64_t last_insert_rowid() const noexcept;
  /// The raw handle, for direct use of the SQLite C API. Still owned by this object.
  sqlite3* native_handle() const noexcept { return db_.get(); }
  const std::string& path() const noexcept { return path_; }

 private:
  struct closer {
    void operator()(sqlite3* db) const noexcept;
  };
  std::unique_ptr<sqlite3, closer> db_;
  std::string path_;
};

/// A prepared statement. Move-only. Bind indexes start at 1; column indexes at 0.
class statement {
 public:
  statement(database& db, std::string_view sql);
  statement(statement&&) noexcept = default;
  statement& operator=(statement&&) noexcept = default;
  ~statement();

  statement& bind(int index, std::int64_t value);
  statement& bind(int index, double value);
  statement& bind(int index, std::string_view text);
  statement& bind_blob(int index, std::string_view bytes);
  statement& bind_null(int index);

  /// Advances; true while a row is available.
  bool step();
  /// step() for statements without results; resets afterwards.
  void run();
  /// Resets for re-execution and clears bindings.
  void reset() noexcept;

  std::int64_t column_int(int index) const;
  double column_double(int index) const;
  std::string column_text(int index) const;
  bool column_is_null(int index) const;

 private:
  struct finalizer {
    void operator()(sqlite3_stmt* stmt) const noexcept;
  };
  sqlite3* db_ = nullptr;
  std::unique_ptr<sqlite3_stmt, finalizer> stmt_;
};

/// `BEGIN IMMEDIATE` on construction; rolls back in the destructor unless committed.
class transaction {
 public:
  explicit transaction(database& db);
  ~transaction();
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;

  void commit();
  void rollback();

 private:
  database& db_;
  bool open_ = true;
};

}  // namespace ingest::sqlite
